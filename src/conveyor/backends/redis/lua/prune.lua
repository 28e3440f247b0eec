-- prune: delete finished jobs whose retention has passed, at most `limit` per call.
-- KEYS: the common layout (no queues). ARGV: the common header, limit.
-- returns: how many were deleted (the engine calls again while it gets `limit`).
local t = now()
local ids = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', t, 'LIMIT', 0, tonumber(arg(1)))
for _, id in ipairs(ids) do
  local job = load(id)
  if job then
    leave(job)
    delete(job)
  else
    redis.call('ZREM', K_EXPIRY, id)
  end
end
return #ids
