#!lua
-- Pay a grabbed share into the grabber's wallet, once per (packet, user).
-- The claim in the packet is the truth; this runs right after the grab and
-- again from the sweeper for any claim a crash left unpaid.
-- KEYS[1] wallet hash, KEYS[2] ledger hash, KEYS[3] history list,
-- KEYS[4] per-year totals hash
-- ARGV[1] packet id, ARGV[2] amount, ARGV[3] history entry (JSON),
-- ARGV[4] history length cap, ARGV[5] year of the grab (UTC)
-- Returns 1 when credited now, 0 when it had been already.
local field = 'c:' .. ARGV[1]
if redis.call('HSETNX', KEYS[2], field, ARGV[2]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'balance', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'recv_total', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'recv_count', 1)
redis.call('HINCRBY', KEYS[4], ARGV[5] .. ':recv_total', ARGV[2])
redis.call('HINCRBY', KEYS[4], ARGV[5] .. ':recv_count', 1)
-- Trim only once the list is a quarter over its cap: one command fewer on
-- almost every credit; readers never look past the cap.
local cap = tonumber(ARGV[4])
if redis.call('LPUSH', KEYS[3], ARGV[3]) > cap + math.floor(cap / 4) then
  redis.call('LTRIM', KEYS[3], 0, cap - 1)
end
return 1
