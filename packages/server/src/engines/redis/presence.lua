-- Herald: presence of one channel (who is subscribed, on every node), in one atomic step per call.
-- All keys share the namespace's hash tag, so they live in one slot with the channel's other keys.
--
-- KEYS[1]  hash: client id -> entry, stored as "<byte length of user>:<user><entry JSON>"
-- KEYS[2]  sorted set: client id -> deadline (ms, Redis time)
-- KEYS[3]  hash: user id -> number of its clients present
-- KEYS[4]  sorted set of the namespace: channel -> latest deadline of its entries (the channels
--          that have presence, for the server API's `channels`)
-- ARGV[1]  op: 'join', 'leave', 'list' or 'count'
-- ARGV[2]  channel
-- ARGV[3]  the channel's pub/sub channel (joins and leaves are sent there, beside its publications)
-- ARGV[4]  'PUBLISH' or 'SPUBLISH' to send joins and leaves, '' to send none
-- join:    ARGV[5] most entries the channel holds; then per entry: client, user, entry JSON, ttl (ms)
-- leave:   ARGV[5] client
-- Op 'channels' takes only KEYS[1], the namespace's index, and ARGV[2] a prefix, ARGV[3] a limit:
-- it returns up to that many channels starting with the prefix that may have entries now.
--
-- Every call first removes the entries whose deadline has passed, with a leave each: whichever node
-- calls first (a refresh, a join, a read) reports it, and only once. Joins and leaves are sent as
-- "\nj\n<entry JSON>" and "\nl\n<entry JSON>" (a publication never starts with a newline).
-- The keys expire with the latest deadline of their entries, so a channel whose every node died
-- leaves nothing behind.

local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if op == 'channels' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local prefix, limit = ARGV[2], tonumber(ARGV[3])
  local out = {}
  if limit <= 0 then
    return out
  end
  for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if string.sub(name, 1, #prefix) == prefix then
      out[#out + 1] = name
      if #out >= limit then
        break
      end
    end
  end
  return out
end

local entries, deadlines, users, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local channel = ARGV[2]
local live = ARGV[3]
local pubCmd = ARGV[4]
local changed = false

local function send(kind, json)
  if pubCmd ~= '' then
    redis.call(pubCmd, live, '\n' .. kind .. '\n' .. json)
  end
end

local function remove(client)
  local stored = redis.call('HGET', entries, client)
  redis.call('ZREM', deadlines, client)
  changed = true
  if not stored then
    return 0
  end
  redis.call('HDEL', entries, client)
  local n = string.match(stored, '^(%d+):')
  local from = #n + 2
  local user = string.sub(stored, from, from + tonumber(n) - 1)
  if redis.call('HINCRBY', users, user, -1) <= 0 then
    redis.call('HDEL', users, user)
  end
  send('l', string.sub(stored, from + tonumber(n)))
  return 1
end

local function sweep()
  for _, client in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', now)) do
    remove(client)
  end
end

-- After a change: the keys live as long as the latest deadline, and the namespace's index says so.
local function settle()
  if not changed then
    return
  end
  local top = redis.call('ZRANGE', deadlines, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', entries, deadlines, users)
    redis.call('ZREM', index, channel)
    return
  end
  local deadline = tonumber(top[2])
  local ms = deadline - now + 1000
  redis.call('PEXPIRE', entries, ms)
  redis.call('PEXPIRE', deadlines, ms)
  redis.call('PEXPIRE', users, ms)
  redis.call('ZADD', index, deadline, channel)
  if redis.call('PTTL', index) < ms then
    redis.call('PEXPIRE', index, ms)
  end
end

sweep()

if op == 'join' then
  local max = tonumber(ARGV[5])
  local size = redis.call('ZCARD', deadlines)
  local added = 0
  for i = 6, #ARGV, 4 do
    local client, user, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local deadline = now + tonumber(ARGV[i + 3])
    if redis.call('ZSCORE', deadlines, client) then
      redis.call('ZADD', deadlines, 'GT', deadline, client)
      changed = true
    elseif size < max then
      redis.call('ZADD', deadlines, deadline, client)
      redis.call('HSET', entries, client, #user .. ':' .. user .. json)
      redis.call('HINCRBY', users, user, 1)
      size = size + 1
      added = added + 1
      changed = true
      send('j', json)
    end
  end
  settle()
  return added
elseif op == 'leave' then
  local removed = 0
  if redis.call('ZSCORE', deadlines, ARGV[5]) then
    removed = remove(ARGV[5])
  end
  settle()
  return removed
elseif op == 'list' then
  settle()
  local out = {}
  local all = redis.call('HGETALL', entries)
  for i = 2, #all, 2 do
    local stored = all[i]
    local n = string.match(stored, '^(%d+):')
    out[#out + 1] = string.sub(stored, #n + 2 + tonumber(n))
  end
  return out
elseif op == 'count' then
  settle()
  return {redis.call('ZCARD', deadlines), redis.call('HLEN', users)}
end
return redis.error_reply('unknown presence op ' .. tostring(op))
