#!lua
-- Return an expired packet's remainder to its sender, once per packet.
-- KEYS[1] wallet hash, KEYS[2] ledger hash, KEYS[3] per-year totals hash
-- ARGV[1] packet id, ARGV[2] amount (may be '0'), ARGV[3] year of the
-- refund (UTC)
-- Returns 1 when refunded now, 0 when it had been already.
local field = 'r:' .. ARGV[1]
if redis.call('HSETNX', KEYS[2], field, ARGV[2]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'balance', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'refund_total', ARGV[2])
if ARGV[2] ~= '0' then
  redis.call('HINCRBY', KEYS[3], ARGV[3] .. ':refund_total', ARGV[2])
  redis.call('HINCRBY', KEYS[3], ARGV[3] .. ':refund_count', 1)
end
return 1
