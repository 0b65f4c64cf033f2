-- ARGV: prefix, host, until: no start on the host before then (Retry-After); or, with a
-- fourth argument, the host's Crawl-delay
local key = P..'slot:'..ARGV[2]
if ARGV[4] then
  local cd = tonumber(ARGV[4])
  local d = math.max(tonumber(redis.call('HGET', key, 'd')) or tonumber(ARGV[5]), cd)
  redis.call('HSET', key, 'cd', cd, 'd', d)
  redis.call('HSET', P..'cdelay', ARGV[2], cd)
  return 1
end
local ns = math.max(tonumber(redis.call('HGET', key, 'ns')) or 0, tonumber(ARGV[3]))
redis.call('HSET', key, 'ns', ns)
if redis.call('ZSCORE', P..'ready', ARGV[2]) then
  redis.call('ZREM', P..'ready', ARGV[2])
  redis.call('ZADD', P..'sleeping', ns, ARGV[2])
elseif redis.call('ZSCORE', P..'sleeping', ARGV[2]) then
  redis.call('ZADD', P..'sleeping', ns, ARGV[2])
end
return 1
