-- heartbeat: extend the leases a worker still holds.
-- in:  %(ids)s %(tokens)s (parallel arrays) %(lease)s
-- out: id, cancel_requested of every lease still held (the others were lost).
-- guarantee: rows are locked in seq order, as finish.sql locks them, so a heartbeat and the same
--            worker's finish of some of those jobs wait for each other instead of deadlocking.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
held AS (
    SELECT j.seq FROM {schema}.jobs j
    JOIN unnest(%(ids)s::text[], %(tokens)s::text[]) AS h(id, token) ON j.id = h.id AND j.lease_token = h.token
    WHERE j.state = 'running'
    ORDER BY j.seq
    FOR UPDATE OF j
)
UPDATE {schema}.jobs j
SET lease_expires_at = clock.now + %(lease)s
FROM held, clock
WHERE j.seq = held.seq
RETURNING j.id, j.cancel_requested
