#!lua
-- Close a packet past its expiry. The shares still in the list stay there as
-- the record of what is refunded; no grab can take them once the status is
-- 'expired'. Idempotent: a second run reports 'already'.
-- KEYS[1] meta hash, KEYS[2] shares list
-- Returns {'closed', shares...} when this call closed it, {'already', shares...}
-- when it was closed before, or {status} when it is not due (or not active).
local m = redis.call('HMGET', KEYS[1], 'status', 'expires_at')
local status = m[1]
local function withShares(word)
  local r = redis.call('LRANGE', KEYS[2], 0, -1)
  table.insert(r, 1, word)
  return r
end
if status == 'expired' then
  return withShares('already')
end
if status ~= 'active' then
  return {status or 'missing'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(m[2]) then
  return {'not_due'}
end
redis.call('HSET', KEYS[1], 'status', 'expired', 'closed_at', now)
return withShares('closed')
