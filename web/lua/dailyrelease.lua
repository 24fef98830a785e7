-- Give back what dailyreserve.lua reserved for a create that did not
-- happen (or happened only in part).
-- KEYS[1] the sender's hash for the day of the reservation
-- ARGV[1] total in fen, ARGV[2] packets to give back, ARGV[3] the
-- Idempotency-Key ('' for none), ARGV[4] '1' when this request lets go of
-- its hold on the key (it opened nothing), '0' when it keeps it
-- Returns 1 when the amounts were given back, 0 when another request with
-- the same key still holds them (or the day has expired).
-- 'k:' .. idem and the '-' .. amount below build a hash field of KEYS[1]
-- and an increment, never a key name: the script touches KEYS[1] alone.
local key, idem = KEYS[1], ARGV[3]
if redis.call('EXISTS', key) == 0 then
  return 0
end
if idem ~= '' and ARGV[4] == '1' then
  if redis.call('HINCRBY', key, 'k:' .. idem, -1) > 0 then
    return 0
  end
  redis.call('HDEL', key, 'k:' .. idem)
end
redis.call('HINCRBY', key, 'total', '-' .. ARGV[1])
redis.call('HINCRBY', key, 'count', '-' .. ARGV[2])
return 1
