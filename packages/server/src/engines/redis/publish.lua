-- Herald: publish one publication to a channel's stream and to every subtree stream above it, in
-- one atomic step. Each stream's top offset goes up by exactly 1; history is appended (trimmed to
-- the namespace's size, expiring with its TTL); the publication is sent on each stream's pub/sub
-- channel in offset order. All keys share the namespace's hash tag, so they live in one slot.
--
-- KEYS[1]            idempotency key (only read/written when ARGV[2] == '1')
-- KEYS[2i], KEYS[2i+1]  meta hash and history stream of stream i (i = 1..n; stream 1 is the channel)
-- ARGV[1]  epoch for a stream whose meta is missing (new or lost)
-- ARGV[2]  '1' when an idempotency key is given
-- ARGV[3]  idempotency window, ms
-- ARGV[4]  history size (0: keep no history)
-- ARGV[5]  history TTL, ms
-- ARGV[6]  meta TTL (how long epoch and top offset outlive the last publish), ms
-- ARGV[7]  channel
-- ARGV[8]  data (JSON text)
-- ARGV[9]  'PUBLISH' or 'SPUBLISH' (Redis Cluster: sharded pub/sub)
-- ARGV[9+i] pub/sub channel of stream i
-- Returns {duplicate (0/1), epoch, offset} of the channel's own stream.

local idem = ARGV[2] == '1'
if idem then
  local seen = redis.call('GET', KEYS[1])
  if seen then
    local epoch, offset = string.match(seen, '^(.*):(%d+)$')
    return {1, epoch, tonumber(offset)}
  end
end

local newEpoch = ARGV[1]
local size = tonumber(ARGV[4])
local ttl = ARGV[5]
local metaTtl = ARGV[6]
local channel = ARGV[7]
local data = ARGV[8]
local pubCmd = ARGV[9]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = (#KEYS - 1) / 2
local firstEpoch, firstOffset

for i = 1, n do
  local meta = KEYS[2 * i]
  local hist = KEYS[2 * i + 1]
  local epoch = redis.call('HGET', meta, 'e')
  if not epoch then
    -- New stream, or its meta was lost (expired, evicted, Redis restarted): a new epoch, and the
    -- old epoch's history goes with it.
    epoch = newEpoch
    redis.call('DEL', hist)
    redis.call('HSET', meta, 'e', epoch, 't', 0)
  end
  local offset = redis.call('HINCRBY', meta, 't', 1)
  redis.call('HSET', meta, 'l', ttl)
  redis.call('PEXPIRE', meta, metaTtl)
  if size > 0 then
    if i == 1 then
      redis.call('XADD', hist, 'MAXLEN', size, offset .. '-0', 't', now, 'd', data)
    else
      redis.call('XADD', hist, 'MAXLEN', size, offset .. '-0', 't', now, 'c', channel, 'd', data)
    end
    redis.call('PEXPIRE', hist, ttl)
  else
    redis.call('DEL', hist)
  end
  redis.call(pubCmd, ARGV[9 + i], epoch .. '\n' .. offset .. '\n' .. now .. '\n' .. channel .. '\n' .. data)
  if i == 1 then
    firstEpoch = epoch
    firstOffset = offset
  end
end

if idem then
  redis.call('SET', KEYS[1], firstEpoch .. ':' .. firstOffset, 'PX', ARGV[3])
end
return {0, firstEpoch, firstOffset}
