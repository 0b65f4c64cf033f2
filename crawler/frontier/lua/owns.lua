-- ARGV: prefix, worker, id...: 1 for each id whose lease the worker holds, else 0
local worker, out = ARGV[2], {}
for i = 3, #ARGV do
  local held = redis.call('HGET', P..'owner', ARGV[i]) == worker and
      redis.call('ZSCORE', P..'leased', ARGV[i])
  out[#out + 1] = held and 1 or 0
end
return out
