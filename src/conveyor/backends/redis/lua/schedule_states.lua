-- schedule_states: the stored state of the named schedules; with a time, those not stored yet are
-- registered as having handled every tick up to it.
-- KEYS: the common layout (no queues). ARGV: the common header, register time ('' = read only), names.
-- returns: per name its state JSON, or '' when not stored.
local out = {}
for i = ARGS_AT + 1, #ARGV do
  local state = redis.call('HGET', K_SCHEDULES, ARGV[i])
  if not state and arg(1) ~= '' then
    state = cjson.encode({last_tick = arg(1), paused = false})
    redis.call('HSET', K_SCHEDULES, ARGV[i], state)
  end
  out[#out + 1] = state or ''
end
return out
