-- report_worker: a worker's announcement replaces its last one, and its per-minute totals are
-- added to the stored sums; announcements past their time to live and sums older than the
-- retention are dropped. Runs alone: it does not take the job layout or lib.lua.
-- KEYS: 1 workers (hash id -> "last seen<TAB>info JSON")   2 worker expiry (zset id -> expires at)
--       3 stats (hash "minute<TAB>queue" -> JSON sums)    4 stats index (zset field -> minute)
-- ARGV: worker id, info JSON, ttl, stats retention, then 8 per total: minute, queue, completed,
--       failed, retried, started, wait_total, wait_max.
-- returns: the server's clock, as text.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local id = ARGV[1]
redis.call('HSET', KEYS[1], id, string.format('%.17g', now) .. '\t' .. ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), id)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('HDEL', KEYS[1], gone)
  redis.call('ZREM', KEYS[2], gone)
end

local SUMMED = {'completed', 'failed', 'retried', 'started', 'wait_total'}
for b = 5, #ARGV, 8 do
  local field = ARGV[b] .. '\t' .. ARGV[b + 1]
  local raw = redis.call('HGET', KEYS[3], field)
  local sums = raw and cjson.decode(raw) or {completed = 0, failed = 0, retried = 0, started = 0,
                                              wait_total = 0, wait_max = 0}
  for i, name in ipairs(SUMMED) do sums[name] = sums[name] + tonumber(ARGV[b + 1 + i]) end
  sums.wait_max = math.max(sums.wait_max, tonumber(ARGV[b + 7]))
  redis.call('HSET', KEYS[3], field, cjson.encode(sums))
  redis.call('ZADD', KEYS[4], tonumber(ARGV[b]), field)
end
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. (now - tonumber(ARGV[4])))) do
  redis.call('HDEL', KEYS[3], old)
  redis.call('ZREM', KEYS[4], old)
end
return string.format('%.17g', now)
