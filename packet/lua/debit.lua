#!lua
-- Step 2 of creating a packet: debit the sender once per packet id.
-- KEYS[1] wallet hash, KEYS[2] ledger hash, KEYS[3] sent index (zset),
-- KEYS[4] per-year totals hash
-- ARGV[1] packet id, ARGV[2] total in fen, ARGV[3] sent index member
-- ("<created_at, 16 digits>:<packet id>"), ARGV[4] year of created_at (UTC)
-- Returns 'ok' (debited now or before), 'void' (the sweeper gave up on this
-- packet first, so it must never be debited) or 'insufficient'.
local field = 'd:' .. ARGV[1]
local prev = redis.call('HGET', KEYS[2], field)
if prev == 'void' then
  return 'void'
elseif prev then
  return 'ok'
end
local balance = redis.call('HGET', KEYS[1], 'balance') or '0'
-- Both are non-negative decimal integers without leading zeros, so comparing
-- length then text is an exact integer comparison with no Lua number involved.
if #balance < #ARGV[2] or (#balance == #ARGV[2] and balance < ARGV[2]) then
  return 'insufficient'
end
redis.call('HINCRBY', KEYS[1], 'balance', '-' .. ARGV[2])
redis.call('HINCRBY', KEYS[1], 'sent_total', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'sent_count', 1)
-- In the same step as the debit, so the sender's list and yearly totals
-- hold every packet debited and nothing else. Scores are all 0: the index
-- is ordered by member, which sorts by time, then id.
redis.call('ZADD', KEYS[3], 0, ARGV[3])
redis.call('HINCRBY', KEYS[4], ARGV[4] .. ':sent_total', ARGV[2])
redis.call('HINCRBY', KEYS[4], ARGV[4] .. ':sent_count', 1)
redis.call('HSET', KEYS[2], field, ARGV[2])
return 'ok'
