#!lua
-- Abandon a packet whose sender was never debited. A missing packet gets a
-- 'cancelled' tombstone so that a creation step arriving late does nothing.
-- KEYS[1] meta hash, KEYS[2] shares list. Returns the status after the call.
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled')
  redis.call('DEL', KEYS[2])
  return 'cancelled'
end
return status
