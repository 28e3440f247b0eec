-- purge: delete the jobs in the given states (never running ones), of one queue or all.
-- KEYS: the common layout, with the sets of every queue that may hold them.
-- ARGV: the common header, queue ('' = all), then the states.
-- returns: how many were deleted.
local only = arg(1)
local deleted = 0
for i = ARGS_AT + 1, #ARGV do
  local state = ARGV[i]
  if state ~= 'running' then
    for _, id in ipairs(redis.call('ZRANGE', STATE_KEY[state], 0, -1)) do
      local job = load(id)
      if job and (only == '' or job.queue == only) then
        leave(job)
        delete(job)
        deleted = deleted + 1
      end
    end
  end
end
return deleted
