#!lua
-- Lease due packets to one sweeper: every packet whose score (due time) has
-- passed is pushed lease_ms into the future and returned, so sweepers racing
-- on the same index share the work instead of repeating it. Correctness does
-- not rest on this: every step a sweeper takes is idempotent.
-- KEYS[1] due index (zset: packet id -> due ms)
-- ARGV[1] now ms, ARGV[2] lease ms, ARGV[3] max items
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], until_ms, id)
end
return ids
