-- ARGV: prefix, now, concurrency, initial delay, lease deadline, how many, max pages
-- (-1: none), worker, then one random factor per request for the gap (0: not randomised)
local now, conc, delay0 = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local deadline, n, max_pages = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local worker = ARGV[8]
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P..'delayed', '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P..'delayed', id)
  local rec = redis.call('HGET', P..'req', id)
  if rec then
    local prio, host = parse(rec)
    push(host, id, prio, now, conc)
  end
end
for _, host in ipairs(redis.call('ZRANGEBYSCORE', P..'sleeping', '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P..'sleeping', host)
  place(host, now, conc)
end
if max_pages >= 0 then
  local room = max_pages - (tonumber(redis.call('HGET', P..'counts', 'pages')) or 0)
               - redis.call('SCARD', P..'fetching')
  if room < n then n = math.max(room, 0) end
end
local out = {}
local tries = 0
while #out < 2 * n and tries < n + 100 do
  tries = tries + 1
  local top = redis.call('ZRANGE', P..'ready', 0, 0)
  if #top == 0 then break end
  local host = top[1]
  local key = P..'slot:'..host
  local s = redis.call('HMGET', key, 'a', 'ns', 'd', 'cd')
  local active, ns = tonumber(s[1]) or 0, tonumber(s[2]) or 0
  if active >= conc or ns > now then
    place(host, now, conc)
  else
    local popped = redis.call('ZPOPMIN', P..'q:'..host)
    if #popped == 0 then
      redis.call('ZREM', P..'ready', host)
    else
      local id = popped[1]
      local cd = tonumber(s[4]) or tonumber(redis.call('HGET', P..'cdelay', host)) or 0
      local d = tonumber(s[3]) or math.max(delay0, cd)
      local gap = d
      local factor = tonumber(ARGV[9 + #out / 2]) or 0
      if gap > 0 and factor > 0 then gap = gap * factor end
      if cd > gap then gap = cd end
      local next_start = ns
      if gap > 0 and now + gap > ns then next_start = now + gap end
      redis.call('HSET', key, 'a', active + 1, 'ls', now, 'ps', ns, 'ns', next_start, 'd', d,
                 'cd', cd, 'g', gap)
      redis.call('ZADD', P..'leased', deadline, id)
      redis.call('HSET', P..'owner', id, worker)
      redis.call('SADD', P..'wl:'..worker, id)
      redis.call('SADD', P..'fetching', id)
      redis.call('HINCRBY', P..'counts', 'queued', -1)
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', P..'req', id) or ''
      settle(host, redis.call('ZRANGE', P..'q:'..host, 0, 0, 'WITHSCORES'), active + 1,
             next_start, now, conc)  -- as place(), with the slot at hand
    end
  end
end
local wake = {}
for _, z in ipairs({'sleeping', 'delayed'}) do
  local first = redis.call('ZRANGE', P..z, 0, 0, 'WITHSCORES')
  if #first > 0 then wake[#wake + 1] = first[2] end
end
return {out, wake}
