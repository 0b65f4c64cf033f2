-- Shared by the scripts. ARGV[1] is the key prefix; ARGV[2] the crawl's generation, which
-- must still be there (else the state was deleted or evicted: an error, nothing changed);
-- ARGV[3] carries the fetches that ended since the last script (done() is not a round trip
-- of its own) as JSON: [now, concurrency, autothrottle, policy delay, target concurrency,
-- max delay, [[id, host, latency or -1, status or -1, cached, backoff, when it ended],
-- ...]], or ''. Both are taken out of ARGV, so each script's own arguments start at
-- ARGV[2], and the fetch ends are applied first.
local P = ARGV[1]
local GEN = table.remove(ARGV, 2)
local DONES = table.remove(ARGV, 2)
if redis.call('GET', P..'gen') ~= GEN then
  return redis.error_reply('VANISHED the crawl state is gone')
end
local function release(id)
  -- the lease of `id` ends (acknowledged, retried, redirected, given back)
  local holder = redis.call('HGET', P..'owner', id)
  if holder then
    redis.call('SREM', P..'wl:'..holder, id)
    redis.call('HDEL', P..'owner', id)
  end
end
local function parse(rec)
  local a = string.find(rec, '|', 1, true)
  local b = string.find(rec, '|', a + 1, true)
  return tonumber(string.sub(rec, 1, a - 1)), string.sub(rec, a + 1, b - 1)
end
local function settle(host, head, active, ns, now, conc)
  -- put a host where it belongs, given its queue's head and its slot: ready, sleeping,
  -- or (when full) nowhere until one of its requests is done
  if #head == 0 then
    redis.call('ZREM', P..'ready', host)
    if active == 0 and ns <= now then
      redis.call('DEL', P..'slot:'..host)  -- idle: forgotten (its Crawl-delay is kept)
    end
    return
  end
  if active >= conc then
    redis.call('ZREM', P..'ready', host)
  elseif ns > now then
    redis.call('ZREM', P..'ready', host)
    redis.call('ZADD', P..'sleeping', ns, host)
  else
    redis.call('ZADD', P..'ready', head[2], host)
  end
end
local function place(host, now, conc)
  local s = redis.call('HMGET', P..'slot:'..host, 'a', 'ns')
  settle(host, redis.call('ZRANGE', P..'q:'..host, 0, 0, 'WITHSCORES'), tonumber(s[1]) or 0,
         tonumber(s[2]) or 0, now, conc)
end
local function push(host, id, prio, now, conc)
  local score = -prio * 1e12 ARRIVAL tonumber(id)  -- (+: the oldest first; -: the newest)
  redis.call('ZADD', P..'q:'..host, score, id)
  local ready = tonumber(redis.call('ZSCORE', P..'ready', host))
  if ready and ready <= score then
    return  -- the host is ready and its head ranks first: nothing moves (most links)
  end
  if not redis.call('ZSCORE', P..'sleeping', host) then
    place(host, now, conc)
  end
end
local function finish(id, host, now, conc, latency, status, cached, backoff, at, pdelay,
                      target, max_delay)
  -- a fetch ended: free its host's slot; with autothrottle, move the delay toward
  -- latency / target (HostSlot.finish); a cached response takes back its gap
  if redis.call('SREM', P..'fetching', id) == 0 then
    return  -- its lease expired and it was given back: the slot was freed then
  end
  if status >= 0 then redis.call('HINCRBY', P..'counts', 'pages', 1) end
  local key = P..'slot:'..host
  local s = redis.call('HMGET', key, 'a', 'ns', 'ps', 'd', 'cd', 'ls', 'g')
  local active = math.max((tonumber(s[1]) or 1) - 1, 0)
  local ns, ps = tonumber(s[2]) or 0, tonumber(s[3]) or 0
  local d, cd, ls = tonumber(s[4]) or 0, tonumber(s[5]) or 0, tonumber(s[6]) or 0
  local g = tonumber(s[7]) or 0
  if not cached and latency >= 0 and g > 0 then
    -- the gap counts from when the request went out, not from its pop (HostSlot.finish)
    local sent = now - latency
    if sent + g > ns then ns = sent + g end
    if sent > ls then ls = sent; redis.call('HSET', key, 'ls', ls) end
  end
  if cached then
    if ns > now then ns = math.max(ps, now) end
  elseif at and latency >= 0 then
    local floor = math.max(pdelay, cd)
    if backoff then
      d = math.min(max_delay, math.max(d * 2, latency, 1.0, floor))
      ns = math.max(ns, now + d)
    else
      local new = (d + latency / target) / 2
      if not (status >= 0 and (status < 200 or status >= 300) and new < d) then
        d = math.min(max_delay, math.max(floor, new))
        ns = math.max(ns, ls + d)
      end
    end
  end
  redis.call('HSET', key, 'a', active, 'ns', ns, 'd', d)
  if cached or active + 1 >= conc or not redis.call('ZSCORE', P..'ready', host) then
    -- it was full, sleeping, or its gap was taken back: it may be ready now (else a ready
    -- host stays ready; pop() checks its time)
    redis.call('ZREM', P..'sleeping', host)
    place(host, now, conc)
  end
end
if DONES ~= '' then
  local b = cjson.decode(DONES)
  for _, x in ipairs(b[7]) do
    finish(x[1], x[2], x[7], b[2], x[3], x[4], x[5] == 1, x[6] == 1, b[3] == 1, b[4], b[5], b[6])
  end
end
