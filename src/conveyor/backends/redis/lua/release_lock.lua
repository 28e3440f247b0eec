-- release_lock: give up the named lock if `owner` holds it.
-- KEYS: the common layout (no queues). ARGV: the common header, name, owner.
local held = redis.call('HGET', K_LOCKS, arg(1))
if held and cjson.decode(held).owner == arg(2) then redis.call('HDEL', K_LOCKS, arg(1)) end
return 0
