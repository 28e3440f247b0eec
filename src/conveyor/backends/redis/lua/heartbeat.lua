-- heartbeat: extend the leases a worker still holds.
-- KEYS: the common layout (no queues). ARGV: the common header, lease seconds, then job id and token pairs.
-- returns: {job id, cancel requested 1|0} for each lease still held; the others were lost.
-- guarantee: a lease is extended only under its own token.
local t = now()
local expires = num(t + tonumber(arg(1)))
local out = {}
for i = ARGS_AT + 1, #ARGV, 2 do
  local job = load(ARGV[i])
  if job and job.state == 'running' and job.lease_token == ARGV[i + 1] then
    job.lease_expires_at = expires
    redis.call('ZADD', K_RUNNING, expires, job.id)
    save(job)
    out[#out + 1] = {job.id, job.cancel_requested and 1 or 0}
  end
end
return out
