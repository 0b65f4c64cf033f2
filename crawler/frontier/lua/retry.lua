-- ARGV: prefix, id, priority, host, data, not before: a retry waits out its backoff
local id = ARGV[2]
if redis.call('ZREM', P..'leased', id) == 0 then
  return 0  -- its lease expired: it was queued again then
end
redis.call('SREM', P..'fetching', id)
release(id)
redis.call('HSET', P..'req', id, ARGV[3]..'|'..ARGV[4]..'|'..ARGV[5])
redis.call('ZADD', P..'delayed', ARGV[6], id)
redis.call('HINCRBY', P..'counts', 'queued', 1)
return 1
