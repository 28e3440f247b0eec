-- set_progress: a running job reports progress.
-- KEYS: the common layout (no queues). ARGV: the common header, job id, lease token, progress,
-- has message (1|0), message.
-- returns: 1 if stored, 0 if the lease is no longer held.
local job = load(arg(1))
if not job or job.state ~= 'running' or job.lease_token ~= arg(2) then return 0 end
job.progress = arg(3)
if arg(4) == '1' then job.progress_message = arg(5) else job.progress_message = nil end
save(job)
return 1
