-- retry_now: run a scheduled or finished job now. A finished job starts over with its full attempt
-- budget (attempts back to 0, max_attempts unchanged); its earlier errors are kept.
-- KEYS: the common layout, with the job's queue's sets. ARGV: the common header, job id.
-- returns: {'ok', job JSON, payload, result, errors}, or {'missing'}, or {'refused', state}.
local t = now()
local job = load(arg(1))
if not job then return {'missing'} end
if job.state == 'queued' or job.state == 'running' then return {'refused', job.state} end
leave(job)
if job.state ~= 'scheduled' then job.attempts = 0 end
redis.call('HDEL', K_RESULTS, job.id)
job.run_at = num(t)
job.finished_at, job.expires_at, job.cancel_requested, job.progress, job.progress_message = nil, nil, nil, nil, nil
enter(job, 'queued')
local stored = reply(job)
return {'ok', stored[1], stored[2], stored[3], stored[4]}
