-- finish: record attempts' outcomes.
-- KEYS: the common layout, with the queued and scheduled sets of the jobs' queues.
-- ARGV: the common header, the cancelled retention seconds, then 8 values per outcome: job id, lease token, target state
--       (completed|failed|cancelled|scheduled|queued), result JSON ('' = none), error JSON ('' = none),
--       delay seconds (retries), release (1 = handed back unstarted: the attempt is not counted),
--       retention seconds (finished states).
-- returns: per outcome 1 if recorded, 0 if the lease was no longer held.
-- guarantee: changes nothing for a job that is not running under that token. A job whose cancel was
--            requested while it ran is never retried or handed back: it ends cancelled.
local t = now()
local out = {}
for b = ARGS_AT + 1, #ARGV, 8 do
  local id, token, target = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local job = load(id)
  if not job or job.state ~= 'running' or job.lease_token ~= token then
    out[#out + 1] = 0
  else
    leave(job)
    if ARGV[b + 3] ~= '' then redis.call('HSET', K_RESULTS, id, ARGV[b + 3]) else redis.call('HDEL', K_RESULTS, id) end
    if ARGV[b + 4] ~= '' then append_error(id, ARGV[b + 4]) end
    clear_lease(job)
    if ARGV[b + 6] == '1' then job.attempts = job.attempts - 1 end
    local waits = target == 'scheduled' or target == 'queued'
    if waits and job.cancel_requested then
      target = 'cancelled'
      finish_at(job, t, tonumber(arg(1)))
      job.cancel_requested = nil
    elseif waits then
      local delay = tonumber(ARGV[b + 5])
      job.run_at = num(t + delay)
      if delay <= 0 then target = 'queued' end
    else
      finish_at(job, t, tonumber(ARGV[b + 7]))
      job.cancel_requested = nil
    end
    enter(job, target)
    out[#out + 1] = 1
  end
end
return out
