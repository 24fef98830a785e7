-- Reserve one create (a packet, or a rain's packets together) against its
-- sender's daily sending limits, all or nothing.
-- KEYS[1] the sender's hash for one UTC day: total (fen), count (packets),
--         k:<Idempotency-Key> -> requests holding that key's reservation
-- ARGV[1] total in fen, ARGV[2] packets, ARGV[3] the daily total limit,
-- ARGV[4] the daily count limit ('-1': none for either), ARGV[5] the
-- seconds the hash lives on (past the day's end), ARGV[6] the Idempotency-Key ('' for none)
-- Returns {result, total, count}: result 0 reserved (or already reserved
-- by an earlier request with the same key), 1 refused by the total limit,
-- 2 by the count limit; total and count are the day's after the call.
--
-- Amounts stay decimal strings: Redis adds them as integers (HINCRBY) and
-- they are compared as text, so no Lua number (a double) holds money.
-- 'k:' .. idem and the '-' .. amount below build a hash field of KEYS[1]
-- and an increment, never a key name: the script touches KEYS[1] alone.
local key, idem = KEYS[1], ARGV[6]
local function over(value, limit)
  if limit == '-1' then
    return false
  end
  -- Both are non-negative decimal integers without leading zeros.
  return #value > #limit or (#value == #limit and value > limit)
end
if idem ~= '' and redis.call('HINCRBY', key, 'k:' .. idem, 1) > 1 then
  -- A retry of a create already counted (or in flight): not counted twice.
  redis.call('EXPIRE', key, ARGV[5])
  return {0, redis.call('HGET', key, 'total') or '0', redis.call('HGET', key, 'count') or '0'}
end
redis.call('HINCRBY', key, 'total', ARGV[1])
redis.call('HINCRBY', key, 'count', ARGV[2])
local total, count = redis.call('HGET', key, 'total'), redis.call('HGET', key, 'count')
local result = 0
if over(total, ARGV[3]) then
  result = 1
elseif over(count, ARGV[4]) then
  result = 2
end
if result ~= 0 then
  redis.call('HINCRBY', key, 'total', '-' .. ARGV[1])
  redis.call('HINCRBY', key, 'count', '-' .. ARGV[2])
  if idem ~= '' then
    redis.call('HDEL', key, 'k:' .. idem)
  end
  total, count = redis.call('HGET', key, 'total'), redis.call('HGET', key, 'count')
end
redis.call('EXPIRE', key, ARGV[5])
return {result, total, count}
