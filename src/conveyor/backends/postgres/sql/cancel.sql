-- cancel: a waiting job is cancelled at once; a running one is marked for its worker to stop.
-- in:  %(id)s %(retention)s
-- out: the job after the change (no row if it is finished or missing).
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
UPDATE {schema}.jobs j
SET state = CASE WHEN j.state = 'running' THEN 'running' ELSE 'cancelled' END,
    cancel_requested = (j.state = 'running'),
    finished_at = CASE WHEN j.state = 'running' THEN NULL ELSE clock.now END,
    expires_at = CASE WHEN j.state = 'running' THEN NULL ELSE clock.now + %(retention)s END
FROM clock
WHERE j.id = %(id)s AND j.state IN ('scheduled', 'queued', 'running')
RETURNING j.*
