-- Count one create (a packet or a rain) against its room's limit per
-- minute, shared by every instance.
-- KEYS[1] the room's counter for one minute (in the room's slot)
-- ARGV[1] the limit, ARGV[2] seconds the counter lives
-- Returns 1 counted, 0 refused (not counted).
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
