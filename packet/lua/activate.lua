#!lua
-- Step 3 of creating a packet: open it for grabs once the sender is debited.
-- KEYS[1] meta hash. Returns the status after the call.
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'active')
  return 'active'
end
return status or 'missing'
