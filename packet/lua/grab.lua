-- Grab one share: the hot path. One script, one hash slot, no retries.
-- KEYS[1] meta hash, KEYS[2] shares list, KEYS[3] claims hash (user -> claim)
-- ARGV[1] user id, ARGV[2] user name
-- Returns {'ok', amount, remaining, seq, at_ms, duration_ms or -1, room}
--      or {code} with code one of not_found, not_yet, expired,
--         already_grabbed, sold_out.
-- The claim value is "seq|amount|at_ms|name"; seq is the grab order.
local m = redis.call('HMGET', KEYS[1], 'status', 'visible_at', 'expires_at', 'count', 'room')
local status = m[1]
if not status or status == 'pending' or status == 'cancelled' then
  return {'not_found'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(m[2]) then
  return {'not_yet'}
end
if status == 'expired' or now >= tonumber(m[3]) then
  return {'expired'}
end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  return {'already_grabbed'}
end
if status == 'empty' then
  return {'sold_out'}
end
local amount = redis.call('LPOP', KEYS[2])
if not amount then
  return {'sold_out'}
end
local seq = redis.call('HLEN', KEYS[3]) + 1
redis.call('HSET', KEYS[3], ARGV[1], seq .. '|' .. amount .. '|' .. now .. '|' .. ARGV[2])
local remaining = tonumber(m[4]) - seq
local duration = -1
if remaining == 0 then
  duration = now - tonumber(m[2])
  redis.call('HSET', KEYS[1], 'status', 'empty', 'emptied_at', now)
end
return {'ok', amount, remaining, seq, now, duration, m[5]}
