-- set_schedule_paused: pause or resume a schedule, registering it if needed. Resuming moves its last
-- tick to `now`, so ticks passed while paused are skipped.
-- KEYS: the common layout (no queues). ARGV: the common header, name, paused (1|0), now.
-- returns: the schedule's state JSON.
local name, paused, at = arg(1), arg(2) == '1', arg(3)
local raw = redis.call('HGET', K_SCHEDULES, name)
local state = raw and cjson.decode(raw) or {last_tick = at, paused = paused}
if state.paused and not paused and tonumber(state.last_tick) < tonumber(at) then state.last_tick = at end
state.paused = paused
raw = cjson.encode(state)
redis.call('HSET', K_SCHEDULES, name, raw)
return raw
