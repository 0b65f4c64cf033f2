-- ARGV: prefix, worker, id...: the requests are complete; only those whose lease the
-- worker still holds are acknowledged (another worker redoes the others). How many.
local worker, n = ARGV[2], 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', P..'owner', id) == worker and
      redis.call('ZREM', P..'leased', id) == 1 then
    redis.call('HDEL', P..'req', id)
    redis.call('SREM', P..'fetching', id)
    release(id)
    n = n + 1
  end
end
redis.call('HINCRBY', P..'counts', 'acked', n)
return n
