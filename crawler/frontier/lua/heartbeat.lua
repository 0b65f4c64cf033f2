-- ARGV: prefix, now, concurrency, deadline, worker, dead after, reclaim (1/0), id...:
-- the worker is alive; extend the leases it holds of these ids; then give back every
-- expired lease, and (with reclaim) every lease of a worker silent for `dead after`
-- seconds (dead, or frozen), freeing the host slots they held. Returns {given back, the
-- ids of these the worker no longer holds}
local now, conc, deadline = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local worker, dead_after, reclaim = ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'
redis.call('HSET', P..'alive', worker, now)
local lost = {}
for i = 8, #ARGV do
  if redis.call('HGET', P..'owner', ARGV[i]) == worker and
      redis.call('ZSCORE', P..'leased', ARGV[i]) then
    redis.call('ZADD', P..'leased', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
local function give_back(id)
  redis.call('ZREM', P..'leased', id)
  release(id)
  local rec = redis.call('HGET', P..'req', id)
  if not rec then return 0 end
  local prio, host = parse(rec)
  if redis.call('SREM', P..'fetching', id) == 1 then
    local key = P..'slot:'..host
    local active = math.max((tonumber(redis.call('HGET', key, 'a')) or 1) - 1, 0)
    redis.call('HSET', key, 'a', active)
    redis.call('ZREM', P..'sleeping', host)
  end
  redis.call('HINCRBY', P..'counts', 'queued', 1)
  push(host, id, prio, now, conc)
  return 1
end
local back = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P..'leased', '-inf', now, 'LIMIT', 0, 1000)) do
  back = back + give_back(id)
end
if reclaim then
  local alive = redis.call('HGETALL', P..'alive')
  for i = 1, #alive, 2 do
    local other, beat = alive[i], tonumber(alive[i + 1])
    if other ~= worker and now - beat > dead_after then
      for _, id in ipairs(redis.call('SMEMBERS', P..'wl:'..other)) do
        if redis.call('ZSCORE', P..'leased', id) then back = back + give_back(id) end
      end
      redis.call('DEL', P..'wl:'..other)
      redis.call('HDEL', P..'alive', other)
    end
  end
end
if back > 0 then redis.call('HINCRBY', P..'counts', 'redelivered', back) end
return {back, lost}
