-- ARGV: prefix, now, per-host concurrency, then per request: digest, force, priority,
-- host, data, id ('' for a new request; a redirect carries its request's id)
local now, conc = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 6 do
  local new = redis.call('SADD', P..'seen', ARGV[i])
  if new == 0 and ARGV[i + 1] == '0' then
    out[#out + 1] = 0
  else
    local id, prio, host = ARGV[i + 5], tonumber(ARGV[i + 2]), ARGV[i + 3]
    if id == '' then
      id = tostring(redis.call('INCR', P..'seq'))
    elseif redis.call('ZREM', P..'leased', id) == 0 then
      id = tostring(redis.call('INCR', P..'seq'))  -- its lease expired: it is queued again
    else
      redis.call('SREM', P..'fetching', id)
      release(id)
    end
    redis.call('HSET', P..'req', id, prio..'|'..host..'|'..ARGV[i + 4])
    redis.call('HINCRBY', P..'counts', 'queued', 1)
    push(host, id, prio, now, conc)
    out[#out + 1] = 1
  end
end
return out
