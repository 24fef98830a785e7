-- Step 1 of creating a packet: store it as 'pending' with its pre-split
-- shares. Idempotent: a second run (or a run after the sweeper left a
-- 'cancelled' tombstone) changes nothing and returns the existing status.
-- KEYS[1] meta hash, KEYS[2] shares list
-- ARGV[1..11] id, room, sender_id, sender_name, kind, total, count, greeting,
--             created_at, visible_at, expires_at; ARGV[12..] the shares
local status = redis.call('HGET', KEYS[1], 'status')
if status then
  return status
end
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'room', ARGV[2], 'sender_id', ARGV[3], 'sender_name', ARGV[4],
  'kind', ARGV[5], 'total', ARGV[6], 'count', ARGV[7], 'greeting', ARGV[8],
  'created_at', ARGV[9], 'visible_at', ARGV[10], 'expires_at', ARGV[11],
  'status', 'pending')
redis.call('RPUSH', KEYS[2], unpack(ARGV, 12))
return 'created'
