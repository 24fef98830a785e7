-- Grab one share each for a batch of users on one packet: the hot-packet
-- path. Same rules per user as grab.lua, in grab order of ARGV, but with a
-- fixed number of Redis commands per batch (one HMGET for the duplicates,
-- one LPOP of n shares, one HSET of every claim), so a hot packet costs
-- Redis little per grab.
-- KEYS[1] meta hash, KEYS[2] shares list, KEYS[3] claims hash
-- ARGV user_id_1, name_1, user_id_2, name_2, ...
-- Returns {room, at_ms, duration_ms or -1, r_1, r_2, ...} where r_i is
-- 'amount|remaining|seq' for a share, 'already_grabbed|<claim>' for a user
-- who holds a claim (so a grab retried after a lost reply can still be
-- credited), or a refusal code.
local m = redis.call('HMGET', KEYS[1], 'status', 'visible_at', 'expires_at', 'count', 'room')
local n = #ARGV / 2
local out = {m[5] or '', 0, -1}
local function refuseAll(code)
  for i = 1, n do
    out[3 + i] = code
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
if status == 'expired' or now >= tonumber(m[3]) then
  return refuseAll('expired')
end
local users = {}
for i = 1, n do
  users[i] = ARGV[2 * i - 1]
end
local prior = redis.call('HMGET', KEYS[3], unpack(users))
local eligible, seen = {}, {}
for i = 1, n do
  if prior[i] then
    out[3 + i] = 'already_grabbed|' .. prior[i]
  elseif seen[users[i]] then
    out[3 + i] = 'already_grabbed'
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
local count = tonumber(m[4])
for j, i in ipairs(eligible) do
  local amount = shares[j]
  if amount then
    local seq = base + j
    fields[#fields + 1] = users[i]
    fields[#fields + 1] = seq .. '|' .. amount .. '|' .. now .. '|' .. ARGV[2 * i]
    out[3 + i] = amount .. '|' .. (count - seq) .. '|' .. seq
  else
    out[3 + i] = 'sold_out'
  end
end
if #fields > 0 then
  redis.call('HSET', KEYS[3], unpack(fields))
  if base + #shares == count then
    out[3] = now - tonumber(m[2])
    redis.call('HSET', KEYS[1], 'status', 'empty', 'emptied_at', now)
  end
end
return out
