-- ARGV: prefix, worker, token, id...: the requests are complete; only those whose lease the
-- worker still holds are acknowledged (another worker redoes the others). Returns the ids
-- not acknowledged. The answer is kept under the call's token for ten minutes, so that the
-- same call sent again (its connection dropped after Redis ran it) gets the same answer
-- instead of finding its own acknowledgements gone.
local worker, token = ARGV[2], ARGV[3]
local known = redis.call('GET', P..'ack:'..token)
if known then
  return cjson.decode(known)
end
local lost, n = {}, 0
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', P..'owner', id) == worker and
      redis.call('ZREM', P..'leased', id) == 1 then
    redis.call('HDEL', P..'req', id)
    redis.call('SREM', P..'fetching', id)
    release(id)
    n = n + 1
  else
    lost[#lost + 1] = id
  end
end
redis.call('HINCRBY', P..'counts', 'acked', n)
redis.call('SET', P..'ack:'..token, cjson.encode(lost), 'EX', 600)
return lost
