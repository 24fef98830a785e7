#!lua
-- Grab one share each for a batch of users on one packet: the hot-packet
-- path. A fixed number of Redis commands per batch (one HMGET for the
-- duplicates, one LPOP of n shares, one HSET of every claim, one HSET of
-- what is left, and with a ledger one XADD to the settlement outbox), in
-- the order of ARGV. The "#!lua" line makes Redis refuse the script up front
-- when it is out of memory, instead of popping a share it cannot record.
-- An exclusive packet refuses users outside its to set (one SMISMEMBER
-- for the batch) and a password packet refuses a grab whose phrase hash
-- differs; neither refusal is a claim, so the user may try again.
-- KEYS[1] meta hash, KEYS[2] shares list, KEYS[3] claims hash,
-- KEYS[4] outbox stream (claims waiting to be committed to the ledger),
-- KEYS[5] to set (the user ids of an exclusive packet)
-- ARGV[1] '1' to append the new claims to the outbox, '0' not to;
-- ARGV[2..] quadruples: user_id, token (unique to one grab call), name,
-- SHA-256 hex of the grab's NFC-normalised password ('' for none)
-- A claim is 'seq|amount|at_ms|token|name'.
-- Returns {room, at_ms, duration_ms or -1, outbox entry id or '', r_1, r_2, ...}
-- where r_i is
-- 'amount|remaining|seq' for a share (also when the user's claim was made
-- by this same grab, whose reply was lost and which go-redis retried),
-- 'already_grabbed|<claim>' for a user who holds a claim from another grab,
-- or a refusal code (not_found, not_yet, not_for_you, expired,
-- wrong_password, already_grabbed, sold_out).
local m = redis.call('HMGET', KEYS[1], 'status', 'visible_at', 'expires_at', 'count', 'room',
  'to_n', 'password_sha')
local n = (#ARGV - 1) / 4
local out = {m[5] or '', 0, -1, ''}
local function refuseAll(code)
  for i = 1, n do
    out[4 + i] = code
  end
  return out
end
local status = m[1]
if not status or status == 'pending' or status == 'cancelled' then
  return refuseAll('not_found')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
out[2] = now
if now < tonumber(m[2]) then
  return refuseAll('not_yet')
end
local count = tonumber(m[4])
local users = {}
for i = 1, n do
  users[i] = ARGV[4 * i - 2]
end
local prior = redis.call('HMGET', KEYS[3], unpack(users))
local allowed = nil
if m[6] then
  allowed = redis.call('SMISMEMBER', KEYS[5], unpack(users))
end
local password = m[7]
local eligible, seen = {}, {}
for i = 1, n do
  local p = prior[i]
  if p then
    local seq, amount, token = string.match(p, '^(%d+)|(%d+)|%d+|([^|]*)|')
    if token == ARGV[4 * i - 1] then
      out[4 + i] = amount .. '|' .. (count - tonumber(seq)) .. '|' .. seq
    else
      out[4 + i] = 'already_grabbed|' .. p
    end
  elseif allowed and allowed[i] == 0 then
    out[4 + i] = 'not_for_you'
  elseif seen[users[i]] then
    out[4 + i] = 'already_grabbed'
  elseif status == 'expired' or now >= tonumber(m[3]) then
    out[4 + i] = 'expired'
  elseif password and ARGV[4 * i + 1] ~= password then
    out[4 + i] = 'wrong_password'
  else
    seen[users[i]] = true
    eligible[#eligible + 1] = i
  end
end
if #eligible == 0 then
  return out
end
local shares = {}
if status ~= 'empty' then
  shares = redis.call('LPOP', KEYS[2], #eligible) or {}
end
local base = redis.call('HLEN', KEYS[3])
local fields = {}
local left = nil
for j, i in ipairs(eligible) do
  local share = shares[j]
  if share then
    local amount, after = string.match(share, '^(%d+):(%d+)$')
    local seq = base + j
    left = after
    fields[#fields + 1] = users[i]
    fields[#fields + 1] = seq .. '|' .. amount .. '|' .. now .. '|' .. ARGV[4 * i - 1] .. '|' .. ARGV[4 * i]
    out[4 + i] = amount .. '|' .. (count - seq) .. '|' .. seq
  else
    out[4 + i] = 'sold_out'
  end
end
if #fields > 0 then
  redis.call('HSET', KEYS[3], unpack(fields))
  if ARGV[1] == '1' then
    out[4] = redis.call('XADD', KEYS[4], '*', unpack(fields))
  end
  local taken = base + #shares
  redis.call('HSET', KEYS[1], 'left_count', count - taken, 'left_amount', left)
  if taken == count then
    out[3] = now - tonumber(m[2])
    redis.call('HSET', KEYS[1], 'status', 'empty', 'emptied_at', now)
  end
end
return out
