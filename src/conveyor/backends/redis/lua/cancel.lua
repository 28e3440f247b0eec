-- cancel: a waiting job is cancelled at once; a running one is marked for its worker to stop.
-- KEYS: the common layout, with the job's queue's sets. ARGV: the common header, job id, cancelled retention.
-- returns: {'ok', job JSON, payload, result, errors}, or {'missing'}, or {'refused', state}.
local t = now()
local job = load(arg(1))
if not job then return {'missing'} end
if job.state == 'running' then
  job.cancel_requested = true
  save(job)
elseif job.state == 'queued' or job.state == 'scheduled' then
  leave(job)
  finish_at(job, t, tonumber(arg(2)))
  enter(job, 'cancelled')
else
  return {'refused', job.state}
end
local stored = reply(job)
return {'ok', stored[1], stored[2], stored[3], stored[4]}
