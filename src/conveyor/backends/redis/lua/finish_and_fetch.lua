-- finish_and_fetch: record outcomes, then claim, in one call: what a busy worker does each time round.
-- KEYS: the common layout, with the sets of the queues fetched and of the finished jobs' queues.
-- ARGV: the common header (all those queues), limit, lease token, worker id, lease seconds, cancelled
--       retention seconds, the number n of queues to fetch from, their n names, then 8 values per
--       outcome (see record_outcomes in lib.lua).
-- returns: {outcomes (each the state a job was left in, or '': see record_outcomes), claimed jobs
--          ({job JSON, payload, result, errors} each), and, if limit > 0, the seconds until the
--          fetched queues' next scheduled job is due ('' = none is scheduled)}: a worker that goes
--          idle after the claim knows how long it may wait without asking again.
-- guarantee: atomic: the outcomes are recorded and the slots they free refilled in one step.
local t = now()
local fetch_count = tonumber(arg(6))
local fetch_queues = {}
for i = 1, fetch_count do fetch_queues[i] = arg(6 + i) end
begin_counts()
local outcomes = record_outcomes(ARGS_AT + 6 + fetch_count, #ARGV, tonumber(arg(5)), t)
if tonumber(arg(1)) <= 0 then
  end_counts()
  return {outcomes, {}}
end
local claimed = claim(fetch_queues, tonumber(arg(1)), arg(2), arg(3), tonumber(arg(4)), t)
end_counts()
return {outcomes, claimed, next_due_in(fetch_queues, t)}
