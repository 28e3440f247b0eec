-- heartbeat: extend the leases a worker still holds.
-- in:  %(ids)s %(tokens)s (parallel arrays) %(lease)s
-- out: id, cancel_requested of every lease still held (the others were lost).
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
UPDATE {schema}.jobs j
SET lease_expires_at = clock.now + %(lease)s
FROM unnest(%(ids)s::text[], %(tokens)s::text[]) AS held(id, token), clock
WHERE j.id = held.id AND j.lease_token = held.token AND j.state = 'running'
RETURNING j.id, j.cancel_requested
