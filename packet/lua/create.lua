#!lua
-- Store a packet with its pre-split shares. Without a ledger it starts
-- 'pending' (the sender's wallet, in another slot, is debited next); with a
-- ledger the sender was debited in PostgreSQL first and it starts 'active'.
-- A rebuild from the ledger (Redis lost the packet) also restores the claims
-- already committed there. Idempotent: when the packet exists, nothing
-- changes and its status is returned.
-- KEYS[1] meta hash, KEYS[2] shares list, KEYS[3] claims hash,
-- KEYS[4] to set (the user ids of an exclusive packet)
-- ARGV[1..12] id, room, sender_id, sender_name, kind, total, count, greeting,
--             created_at, visible_at, expires_at, status
-- ARGV[13] left_amount (fen left in the shares, as text), ARGV[14] n claims
-- ARGV[15] to: JSON list of {id, name}, '' for anyone
-- ARGV[16] password, ARGV[17] its SHA-256 in hex ('' and '' for none)
-- ARGV[18] opens_at ('0' unless a countdown packet)
-- ARGV[19 .. 18+2n] user_id, claim pairs; the rest: shares as 'amount:left'
-- (the share, then what is left once it is taken), in grab order.
-- A packet of 32 shares or more gets a claims field named '' (no user id is
-- empty) whose value is longer than Redis's hash-max-listpack-value (64 by
-- default): Redis then keeps the claims hash as a hash table for good. A
-- smaller hash is a flat listpack that every lookup scans, and a grab batch
-- looks up each of its grabbers: on a packet of hundreds of claims that scan
-- is most of what a batch costs. Readers of the claims hash skip that field.
-- Returns 'created', or the existing status.
local status = redis.call('HGET', KEYS[1], 'status')
if status then
  return status
end
local n = tonumber(ARGV[14])
local first = 19 + 2 * n
local left_count = #ARGV - first + 1
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'room', ARGV[2], 'sender_id', ARGV[3], 'sender_name', ARGV[4],
  'kind', ARGV[5], 'total', ARGV[6], 'count', ARGV[7], 'greeting', ARGV[8],
  'created_at', ARGV[9], 'visible_at', ARGV[10], 'expires_at', ARGV[11],
  'status', ARGV[12], 'left_count', left_count, 'left_amount', ARGV[13])
-- unpack() is bounded by the Lua stack, so long lists go in chunks.
local function push(cmd, key, args, from, to, step)
  for i = from, to, step do
    redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, to)))
  end
end
if ARGV[15] ~= '' then
  local ids = {}
  for i, u in ipairs(cjson.decode(ARGV[15])) do
    ids[i] = u.id
  end
  push('SADD', KEYS[4], ids, 1, #ids, 1000)
  redis.call('HSET', KEYS[1], 'to', ARGV[15], 'to_n', #ids)
end
if ARGV[16] ~= '' then
  redis.call('HSET', KEYS[1], 'password', ARGV[16], 'password_sha', ARGV[17])
end
if ARGV[18] ~= '0' then
  redis.call('HSET', KEYS[1], 'opens_at', ARGV[18])
end
if tonumber(ARGV[7]) >= 32 then
  redis.call('HSET', KEYS[3], '', 'not a claim: a value this long keeps the claims hash a hash table (see create.lua)')
end
if n > 0 then
  push('HSET', KEYS[3], ARGV, 19, first - 1, 1000)
end
if left_count > 0 then
  push('RPUSH', KEYS[2], ARGV, first, #ARGV, 1000)
end
return 'created'
