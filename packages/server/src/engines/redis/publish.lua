-- Herald: publish one publication to a channel's stream and to every subtree stream above it, in
-- one atomic step. Each stream's top offset goes up by exactly 1; history is appended (trimmed to
-- the namespace's size, expiring with its TTL); the publication is sent on each stream's pub/sub
-- channel in offset order. All keys share the namespace's hash tag, so they live in one slot.
--
-- KEYS[1]            idempotency key (only read/written when ARGV[2] == '1')
-- KEYS[2i], KEYS[2i+1]  meta hash and history stream of stream i (i = 1..n; stream 1 is the channel)
-- ARGV[1]  a new epoch, for a stream whose meta is missing (new or lost) or another server's (below)
-- ARGV[2]  '1' when an idempotency key is given
-- ARGV[3]  idempotency window, ms
-- ARGV[4]  history size (0: keep no history)
-- ARGV[5]  history TTL, ms
-- ARGV[6]  meta TTL (how long epoch and top offset outlive the last publish), ms
-- ARGV[7]  channel
-- ARGV[8]  data (JSON text)
-- ARGV[9]  'PUBLISH' or 'SPUBLISH' (Redis Cluster: sharded pub/sub)
-- ARGV[9+i] pub/sub channel of stream i
-- Returns {duplicate (0/1), epoch, offset} of the channel's own stream, and the number of streams
-- that got a new epoch because their meta was another server's (see below).
--
-- Each meta records, in field `s`, the identity of the Redis server that wrote it: its run id (new
-- at every start of redis-server) and its replication id (new whenever a server becomes a master).
-- Neither comes back with restored data, and replicas receive the identity of their master. So a
-- meta whose `s` is not this server's was restored from a snapshot or an AOF, or came from a master
-- this server replicated (and was promoted, maybe behind): its top offset may be lower than one
-- already handed out. Its stream gets a new epoch before anything is published again; it keeps its
-- top offset and history, which are a true prefix of the old epoch's, so the new epoch still has
-- every offset once and `backlog` still serves what survived, while every cursor of the old epoch
-- is told `recovered: false`.
-- Both ids are needed: a master made a replica of another (taking its data) and promoted again keeps
-- its run id but gets a new replication id; some Redis forks keep a master's replication id across
-- a restart. Every script run checks (two INFO calls, about 10 µs), so no node has to notice the
-- change first, and however many nodes publish, a stream gets one new epoch per server change. A
-- meta without `s` (written before Herald recorded it) counts as another server's.

local idem = ARGV[2] == '1'
if idem then
  local seen = redis.call('GET', KEYS[1])
  if seen then
    local epoch, offset = string.match(seen, '^(.*):(%d+)$')
    return {1, epoch, tonumber(offset)}
  end
end

-- This server's identity: 64 bits each of its run id and replication id (both random hex).
local runId = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
local replId = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or '?'
local server = string.sub(runId, 1, 16) .. string.sub(replId, 1, 16)
local renewed = 0
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
  local m = redis.call('HMGET', meta, 'e', 's')
  local epoch = m[1]
  if not epoch then
    -- New stream, or its meta was lost (expired, evicted, Redis restarted without persistence): a
    -- new epoch from offset 1, and the old epoch's history goes with it.
    epoch = newEpoch
    redis.call('DEL', hist)
    redis.call('HSET', meta, 'e', epoch, 't', 0, 's', server)
  elseif m[2] ~= server then
    -- Another server's meta (restored, replicated): a new epoch over the same offsets and history.
    epoch = newEpoch
    renewed = renewed + 1
    redis.call('HSET', meta, 'e', epoch, 's', server)
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
return {0, firstEpoch, firstOffset, renewed}
