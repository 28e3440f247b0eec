-- rescue_expired: running jobs whose lease expired (their worker died or froze).
-- KEYS: the common layout, with the queued and scheduled sets of the candidates' queues.
-- ARGV: the common header, failed retention seconds, cancelled retention seconds, then candidate ids
--       (read by the engine from the running set; each is checked again here).
-- returns: per rescued job {job JSON, payload, result, errors} in its new state.
-- guarantee: the rescue counts as the attempt it interrupted, so a job that kills its worker every
--            time ends failed after max_attempts; a cancel requested meanwhile sticks.
local t = now()
local out = {}
for i = ARGS_AT + 2, #ARGV do
  local job = load(ARGV[i])
  local expires = redis.call('ZSCORE', K_RUNNING, ARGV[i])
  if job and job.state == 'running' and expires and tonumber(expires) < t then
    leave(job)
    append_error(job.id, cjson.encode({attempt = job.attempts, type = 'WorkerLost', traceback = '', at = num(t),
      message = 'the worker running this job stopped renewing its lease (it crashed, was killed or froze)'}))
    clear_lease(job)
    job.run_at = num(t)
    local target = 'queued'
    if job.cancel_requested then
      target = 'cancelled'
      job.cancel_requested = nil
      finish_at(job, t, tonumber(arg(2)))
    elseif job.attempts >= job.max_attempts then
      target = 'failed'
      finish_at(job, t, tonumber(arg(1)))
    end
    enter(job, target)
    out[#out + 1] = reply(job)
  end
end
return out
