-- acquire_lock: take the named lock, or extend it if `owner` holds it already.
-- KEYS: the common layout (no queues). ARGV: the common header, name, owner, ttl seconds.
-- returns: 1 when `owner` holds the lock afterwards, else 0.
local t = now()
local held = redis.call('HGET', K_LOCKS, arg(1))
if held then
  local lock = cjson.decode(held)
  if lock.owner ~= arg(2) and tonumber(lock.expires_at) > t then return 0 end
end
redis.call('HSET', K_LOCKS, arg(1), cjson.encode({owner = arg(2), expires_at = num(t + tonumber(arg(3)))}))
return 1
