-- Give back a create counted by roomreserve.lua that did not happen.
-- KEYS[1] the room's counter for the minute it was counted in
-- Returns 1 given back, 0 when the counter has expired.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('DECR', KEYS[1])
return 1
