#!lua
-- Publish a batch of frames to a room as one message. Durable frames get the
-- room's next seqs and go into its history (and kept ones into its recent
-- list) in this same script, so numbering, history and delivery can never
-- disagree.
-- KEYS[1] meta hash: e = epoch, s = seq of the last durable frame
-- KEYS[2] history stream: one entry per durable frame, fields s (seq), d (frame)
-- KEYS[3] recent list: kept frames, oldest first
-- ARGV[1] channel, ARGV[2] 'PUBLISH' or 'SPUBLISH'
-- ARGV[3] a fresh epoch from the caller, used only when the room has none
-- ARGV[4] history length cap, ARGV[5] history age cap (ms)
-- ARGV[6] meta TTL (ms), ARGV[7] recent list cap
-- ARGV[8], ARGV[9], ...: pairs of kind and frame, in publish order. Kind 'e'
--   is an ephemeral frame, published as it is; 'd' a durable frame and 'k' a
--   durable frame to keep, each passed without its opening '{'.
-- Returns {seq of the last durable frame, epoch}.
local meta, hist, recent = KEYS[1], KEYS[2], KEYS[3]
local histLen, histAge = ARGV[4], tonumber(ARGV[5])
local metaTTL, recentLen = ARGV[6], tonumber(ARGV[7])

local epoch = redis.call('HGET', meta, 'e')
local seq = 0
if epoch then
  seq = tonumber(redis.call('HGET', meta, 's')) or 0
else
  -- A new epoch starts a new history: entries of an old one must not be
  -- counted in it.
  epoch = ARGV[3]
  redis.call('DEL', hist, recent)
  redis.call('HSET', meta, 'e', epoch)
end

local out, kept, durable = {}, {}, false
for i = 8, #ARGV, 2 do
  local kind, f = ARGV[i], ARGV[i + 1]
  if kind ~= 'e' then
    durable = true
    seq = seq + 1
    local sep = ','
    if string.sub(f, 1, 1) == '}' then
      sep = ''
    end
    local s = string.format('%d', seq)
    f = '{"seq":' .. s .. ',"epoch":"' .. epoch .. '"' .. sep .. f
    redis.call('XADD', hist, 'MAXLEN', histLen, '*', 's', s, 'd', f)
    if kind == 'k' then
      kept[#kept + 1] = f
    end
  end
  out[#out + 1] = f
end

local s = string.format('%d', seq)
if durable then
  -- Age cap: stream IDs are Redis's clock in ms, so MINID drops entries
  -- older than the cap; the key's own expiry clears the history of a room
  -- that has gone quiet, which no later XADD would trim.
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', hist, 'MINID', string.format('%d-0', now - histAge))
  redis.call('PEXPIRE', hist, histAge)
  if #kept > 0 then
    redis.call('RPUSH', recent, unpack(kept))
    redis.call('LTRIM', recent, -recentLen, -1)
    redis.call('PEXPIRE', recent, metaTTL)
  end
end
redis.call('HSET', meta, 's', s)
redis.call('PEXPIRE', meta, metaTTL)
redis.call(ARGV[2], ARGV[1], table.concat(out, '\n'))
return {s, epoch}
