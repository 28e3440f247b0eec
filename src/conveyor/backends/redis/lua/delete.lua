-- delete: remove a job that is not running, with its payload, result and errors.
-- KEYS: the common layout, with the job's queue's sets. ARGV: the common header, job id.
-- returns: {'ok', job JSON, payload, result, errors} as it was, or {'missing'}, or {'refused', state}.
local job = load(arg(1))
if not job then return {'missing'} end
if job.state == 'running' then return {'refused', job.state} end
local stored = reply(job)
leave(job)
delete(job)
return {'ok', stored[1], stored[2], stored[3], stored[4]}
