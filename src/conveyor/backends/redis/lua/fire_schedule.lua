-- fire_schedule: enqueue a schedule's jobs for the ticks after its last one, and move the last tick.
-- KEYS: the common layout, with the sets of the jobs' queue.
-- ARGV: the common header, name, advance_to ('' = a manual run), then per tick: the tick and the
--       9 job values of insert_batch.
-- returns: {} when another scheduler got there first (or the schedule is paused or unknown), else
--          {'fired', per tick fired: {1, enqueue time, job id} when its job was made now, or
--          {0, job JSON, payload, result, errors} when its id was taken}.
-- guarantee: last_tick only moves forward, checked and moved in this one atomic step, so of any
--            number of schedulers firing one tick exactly one makes its job.
local t = now()
local name, advance_to = arg(1), arg(2)
local raw = redis.call('HGET', K_SCHEDULES, name)
if not raw then return {} end
local state = cjson.decode(raw)
local last = tonumber(state.last_tick)
if advance_to ~= '' and (state.paused or last >= tonumber(advance_to)) then return {} end
local rows = {'fired'}
local per_tick = 1 + JOB_ARGS
for b = ARGS_AT + 2, #ARGV, per_tick do
  if advance_to == '' or tonumber(ARGV[b]) > last then
    local first = b + 1 - ARGS_AT + 1
    local made = insert_batch(first, first, t)
    local taken = made[2]
    rows[#rows + 1] = taken and {0, taken[2], taken[3], taken[4], taken[5]} or {1, made[1], ARGV[b + 1]}
    state.last_job_id = ARGV[b + 1]
    state.last_fired_at = num(t)
  end
end
if advance_to ~= '' then state.last_tick = advance_to end
redis.call('HSET', K_SCHEDULES, name, cjson.encode(state))
return rows
