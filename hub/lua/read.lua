#!lua
-- Read a room's position and, atomically with it, either its durable frames
-- after a given position (recovery) or its kept recent frames.
-- KEYS[1] meta hash: e = epoch, s = seq of the last durable frame
-- KEYS[2] history stream: one entry per durable frame, fields s (seq), d (frame)
-- KEYS[3] recent list: kept frames, oldest first
-- ARGV[1] a fresh epoch from the caller, used only when the room has none
-- ARGV[2] meta TTL (ms), ARGV[3] history age cap (ms)
-- ARGV[4] what to read besides the position: 'position', 'recent' or 'recover'
-- ARGV[5] since epoch, ARGV[6] since seq, ARGV[7] most frames to recover
--   (recover only)
-- Returns {seq, epoch, status, frames...}. Status is 'ok', or 'gone' when
-- the history cannot cover since: another epoch, since ahead of the room,
-- too many frames missed, or the frames after since trimmed or too old.
local meta, hist, recent = KEYS[1], KEYS[2], KEYS[3]
local mode = ARGV[4]

local epoch = redis.call('HGET', meta, 'e')
local s = '0'
if epoch then
  s = redis.call('HGET', meta, 's') or '0'
else
  -- Same as publish.lua: a new epoch starts a new history.
  epoch = ARGV[1]
  redis.call('DEL', hist, recent)
  redis.call('HSET', meta, 'e', epoch, 's', s)
end
redis.call('PEXPIRE', meta, ARGV[2])

local out = {s, epoch, 'ok'}
if mode == 'recent' then
  for _, f in ipairs(redis.call('LRANGE', recent, 0, -1)) do
    out[#out + 1] = f
  end
  return out
end
if mode ~= 'recover' then
  return out
end

local seq, since = tonumber(s), tonumber(ARGV[6])
local n = seq - since
if ARGV[5] ~= epoch or n < 0 or n > tonumber(ARGV[7]) then
  out[3] = 'gone'
  return out
end
if n == 0 then
  return out
end
-- The n newest entries are exactly the missed frames, if nothing after
-- since was trimmed.
local entries = redis.call('XREVRANGE', hist, '+', '-', 'COUNT', n)
if #entries < n then
  out[3] = 'gone'
  return out
end
local oldest = entries[#entries]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(string.match(oldest[1], '^(%d+)'))
if tonumber(oldest[2][2]) ~= since + 1 or ms < now - tonumber(ARGV[3]) then
  out[3] = 'gone'
  return out
end
for i = #entries, 1, -1 do
  out[#out + 1] = entries[i][2][4]
end
return out
