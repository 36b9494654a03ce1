-- Herald: read a stream's position and history. Creates the stream's meta (a new epoch, top 0)
-- when it has none, so that a stream read before its first publication keeps its epoch. A meta that
-- another Redis server wrote (restored, replicated: see publish.lua) gets a new epoch over the same
-- offsets and history first, so no cursor is recovered across offsets a restore or failover took
-- back. Drops publications older than the stream's TTL first, so `oldest` is exact.
--
-- KEYS[1]  meta hash of the stream      KEYS[2]  history stream
-- ARGV[1]  a new epoch, for a meta that is missing or another server's
-- ARGV[2]  TTL of a meta created here (a stream only read so far), ms
-- ARGV[3]  '1' when a since position is given   ARGV[4] since epoch   ARGV[5] since offset
-- ARGV[6]  limit (0: position only)
-- ARGV[7]  '1' for newest first
-- Returns {epoch, top, oldest, entries, renewed}; entries as XRANGE returns them (id "<offset>-0");
-- renewed is 1 when the stream got a new epoch because its meta was another server's, else 0.

local meta = KEYS[1]
local hist = KEYS[2]
-- This server's identity: 64 bits each of its run id and replication id (both random hex).
local runId = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
local replId = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or '?'
local server = string.sub(runId, 1, 16) .. string.sub(replId, 1, 16)
local renewed = 0
local m = redis.call('HMGET', meta, 'e', 't', 'l', 's')
local epoch, top, ttl = m[1], tonumber(m[2]), tonumber(m[3] or '0')
if not epoch then
  epoch = ARGV[1]
  top = 0
  ttl = 0
  redis.call('DEL', hist)
  redis.call('HSET', meta, 'e', epoch, 't', 0, 's', server)
  redis.call('PEXPIRE', meta, ARGV[2])
elseif m[4] ~= server then
  epoch = ARGV[1]
  renewed = 1
  redis.call('HSET', meta, 'e', epoch, 's', server)
end

local first = redis.call('XRANGE', hist, '-', '+', 'COUNT', 1)[1]
if first and ttl > 0 then
  local t = redis.call('TIME')
  local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - ttl
  -- Entries are in publish (time) order: trim the expired head, 100 entries at a time.
  local from = '-'
  while first and tonumber(first[2][2]) <= cutoff do
    local batch = redis.call('XRANGE', hist, from, '+', 'COUNT', 100)
    local keep = nil
    for _, e in ipairs(batch) do
      if tonumber(e[2][2]) > cutoff then
        keep = e
        break
      end
    end
    if keep then
      redis.call('XTRIM', hist, 'MINID', keep[1])
      first = keep
    elseif #batch < 100 then
      redis.call('DEL', hist)
      first = nil
    else
      from = '(' .. batch[#batch][1]
    end
  end
end

local oldest = top + 1
if first then
  oldest = tonumber(string.match(first[1], '^(%d+)'))
end

local limit = tonumber(ARGV[6])
local entries = {}
local sinceOk = ARGV[3] ~= '1' or ARGV[4] == epoch
if limit > 0 and first and sinceOk then
  local low = '-'
  if ARGV[3] == '1' then
    low = '(' .. ARGV[5] .. '-0'
  end
  if ARGV[7] == '1' then
    entries = redis.call('XREVRANGE', hist, '+', low, 'COUNT', limit)
  else
    entries = redis.call('XRANGE', hist, low, '+', 'COUNT', limit)
  end
end
return {epoch, top, oldest, entries, renewed}
