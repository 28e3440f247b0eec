-- fetch: claim up to `limit` jobs from the header's queues: highest priority first, then due time,
-- then enqueue order. Due scheduled jobs of those queues are queued first.
-- KEYS: the common layout, with the queued and scheduled sets of each queue fetched.
-- ARGV: the common header (the queues), limit, lease token, worker id, lease seconds.
-- returns: per claimed job {job JSON, payload, result, errors}, now running with the attempt counted.
-- guarantee: atomic, so two fetchers never claim one job; paused queues give nothing.
local t = now()
local limit, token, worker, lease = tonumber(arg(1)), arg(2), arg(3), tonumber(arg(4))
local candidates = {}
for _, queue in ipairs(QUEUE_NAMES) do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', SCHEDULED_KEY[queue], '-inf', t, 'LIMIT', 0, 1000)) do
    local job = load(id)
    leave(job)
    enter(job, 'queued')
  end
  if redis.call('SISMEMBER', K_PAUSED, queue) == 0 then
    local rows = redis.call('ZRANGE', QUEUED_KEY[queue], 0, limit - 1, 'WITHSCORES')
    for i = 1, #rows, 2 do candidates[#candidates + 1] = {tonumber(rows[i + 1]), rows[i]} end
  end
end
table.sort(candidates, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local out = {}
for i = 1, math.min(limit, #candidates) do
  local job = load(string.sub(candidates[i][2], MEMBER_ID_AT))
  leave(job)
  job.attempts = job.attempts + 1
  job.lease_token, job.worker_id = token, worker
  job.started_at, job.lease_expires_at = num(t), num(t + lease)
  enter(job, 'running')
  out[#out + 1] = reply(job)
end
return out
