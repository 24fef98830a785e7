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
-- What a batch costs per grab is kept small: one token names the call (not
-- one per grab), a grab's position follows from meta's left_count (no HLEN),
-- the outbox entry names the batch's positions (not its claims, which the
-- claims hash holds), and a claim is parsed only for a user who already
-- holds one. create.lua keeps a big packet's claims hash a hash table, so
-- that looking a grabber up does not scan it.
-- KEYS[1] meta hash, KEYS[2] shares list, KEYS[3] claims hash,
-- KEYS[4] outbox stream (positions waiting to be committed to the ledger),
-- KEYS[5] to set (the user ids of an exclusive packet)
-- ARGV[1] '1' to record the new claims' positions in the outbox, '0' not to;
-- ARGV[2] token: unique to this call (a retry of the call repeats it), and
-- recorded in its claims: with the user, it names one grab;
-- ARGV[3..] triples: user_id, name, SHA-256 hex of the grab's NFC-normalised
-- password ('' for none)
-- A claim is 'seq|amount|at_ms|token|name'; an outbox entry is
-- {'/first', seq, '/last', seq}, the batch's positions.
-- Returns {room, at_ms, duration_ms or -1, outbox entry id or '', count,
-- left_count after the batch, r_1, r_2, ...} where r_i is
-- 'amount|seq' for a share (also when the user's claim was made by this
-- same call, whose reply was lost and which go-redis retried),
-- 'already_grabbed|<claim>' for a user who holds a claim from another grab,
-- or a refusal code (not_found, not_yet, not_for_you, expired,
-- wrong_password, already_grabbed, sold_out).
local m = redis.call('HMGET', KEYS[1], 'status', 'visible_at', 'expires_at', 'count', 'room',
  'to_n', 'password_sha', 'left_count')
local n = (#ARGV - 2) / 3
local token = ARGV[2]
local out = {m[5] or '', 0, -1, '', 0, 0}
local function refuseAll(code)
  for i = 1, n do
    out[6 + i] = code
  end
  return out
end
local status = m[1]
if not status or status == 'pending' or status == 'cancelled' then
  return refuseAll('not_found')
end
local count, left = tonumber(m[4]), tonumber(m[8])
out[5], out[6] = count, left
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
out[2] = now
if now < tonumber(m[2]) then
  return refuseAll('not_yet')
end
local users = {}
for i = 1, n do
  users[i] = ARGV[3 * i]
end
local prior = redis.call('HMGET', KEYS[3], unpack(users))
local allowed = nil
if m[6] then
  allowed = redis.call('SMISMEMBER', KEYS[5], unpack(users))
end
local password = m[7]
local closed = status == 'expired' or now >= tonumber(m[3])
local eligible, seen = {}, {}
for i = 1, n do
  local p = prior[i]
  if p then
    local seq, amount, made = string.match(p, '^(%d+)|(%d+)|%d+|([^|]*)|')
    if made == token and not seen[users[i]] then
      -- this call made the claim: a retry, answered as the first time
      seen[users[i]] = true
      out[6 + i] = amount .. '|' .. seq
    else
      out[6 + i] = 'already_grabbed|' .. p
    end
  elseif allowed and allowed[i] == 0 then
    out[6 + i] = 'not_for_you'
  elseif seen[users[i]] then
    out[6 + i] = 'already_grabbed'
  elseif closed then
    out[6 + i] = 'expired'
  elseif password and ARGV[3 * i + 2] ~= password then
    out[6 + i] = 'wrong_password'
  else
    seen[users[i]] = true
    eligible[#eligible + 1] = i
  end
end
if #eligible == 0 then
  return out
end
local shares = {}
if status ~= 'empty' and left > 0 then
  shares = redis.call('LPOP', KEYS[2], math.min(#eligible, left)) or {}
end
local base = count - left
local fields = {}
local at = '|' .. now .. '|' .. token .. '|'
for j, i in ipairs(eligible) do
  local share = shares[j]
  if share then
    local colon = string.find(share, ':', 1, true)
    local amount = string.sub(share, 1, colon - 1)
    local seq = tostring(base + j)
    fields[2 * j - 1] = users[i]
    fields[2 * j] = seq .. '|' .. amount .. at .. ARGV[3 * i + 1]
    out[6 + i] = amount .. '|' .. seq
  else
    out[6 + i] = 'sold_out'
  end
end
if #shares > 0 then
  redis.call('HSET', KEYS[3], unpack(fields))
  if ARGV[1] == '1' then
    out[4] = redis.call('XADD', KEYS[4], '*', '/first', base + 1, '/last', base + #shares)
  end
  left = left - #shares
  out[6] = left
  local last = shares[#shares]
  local rest = string.sub(last, string.find(last, ':', 1, true) + 1)
  if left == 0 then
    out[3] = now - tonumber(m[2])
    redis.call('HSET', KEYS[1], 'left_count', 0, 'left_amount', rest, 'status', 'empty', 'emptied_at', now)
  else
    redis.call('HSET', KEYS[1], 'left_count', left, 'left_amount', rest)
  end
end
return out
