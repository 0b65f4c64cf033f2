-- ARGV: prefix, worker, seconds: 1 when the worker is to run start(): nobody ran it to
-- its end and nobody runs it (one step: a check then a set could let a second worker in
-- between the first one's end and its release of the key)
if redis.call('EXISTS', P..'seeded') == 1 then return 0 end
if redis.call('SET', P..'seeding', ARGV[2], 'NX', 'EX', tonumber(ARGV[3])) then return 1 end
return 0
