-- acquire_lock: take the named lock, or extend it if %(owner)s holds it already.
-- in:  %(name)s %(owner)s %(ttl)s
-- out: one row when %(owner)s holds the lock afterwards.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO {schema}.locks AS l (name, owner, expires_at)
SELECT %(name)s, %(owner)s, clock.now + %(ttl)s FROM clock
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at <= extract(epoch FROM clock_timestamp())::float8
RETURNING owner
