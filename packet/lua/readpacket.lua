#!lua flags=no-writes
-- Read one packet whole, in one atomic step, for the audit.
-- KEYS[1] meta hash, KEYS[2] shares list, KEYS[3] claims hash
-- Returns {meta as a flat list, shares, claims as a flat list}.
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('LRANGE', KEYS[2], 0, -1),
  redis.call('HGETALL', KEYS[3]),
}
