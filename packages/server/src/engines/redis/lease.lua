-- Herald: a lease held by one node at a time (the ingestion leader).
-- KEYS[1]  lease key
-- ARGV[1]  this node's id   ARGV[2]  lease time, ms   ARGV[3]  'acquire' (or renew) | 'release'
-- Returns 1 when this node holds the lease afterwards (acquire) or released it (release), else 0.
local holder = redis.call('GET', KEYS[1])
if ARGV[3] == 'release' then
  if holder == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
  return 0
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
