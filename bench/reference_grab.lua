-- The field's standard one-script red-packet grab, kept fixed as the
-- reference that hongbao's own scripts are measured against (bench/ceiling.sh):
-- dedup, pop a pre-split share, record the claim, append to the packet's
-- own stream, all on one slot. It is not hongbao's script and never changes
-- with it.
-- KEYS[1] claims hash, KEYS[2] shares list, KEYS[3] the packet's stream
-- ARGV[1] user id
-- Returns the share, or 0 when the user already has one, -1 when none is left.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
local share = redis.call('LPOP', KEYS[2])
if not share then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], share)
redis.call('XADD', KEYS[3], '*', 'user', ARGV[1], 'share', share)
return share
