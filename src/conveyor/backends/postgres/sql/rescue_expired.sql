-- rescue_expired: running jobs whose lease expired (their worker died or froze).
-- in:  %(failed_retention)s %(cancelled_retention)s
-- out: the rescued rows in their new state.
-- guarantee: the rescue counts as the attempt it interrupted, so a job that kills its worker every
--            time ends failed after max_attempts; a cancel requested meanwhile sticks.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
expired AS (
    SELECT seq FROM {schema}.jobs
    WHERE state = 'running' AND lease_expires_at < (SELECT now FROM clock)
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.jobs j
SET state = CASE WHEN j.cancel_requested THEN 'cancelled'
                 WHEN j.attempts >= j.max_attempts THEN 'failed'
                 ELSE 'queued' END,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'type', 'WorkerLost',
        'message', 'the worker running this job stopped renewing its lease (it crashed, was killed or froze)',
        'traceback', '', 'at', clock.now)),
    run_at = clock.now,
    finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN clock.now END,
    expires_at = CASE WHEN j.cancel_requested THEN clock.now + %(cancelled_retention)s
                      WHEN j.attempts >= j.max_attempts THEN clock.now + %(failed_retention)s END,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, cancel_requested = false
FROM expired, clock
WHERE j.seq = expired.seq
RETURNING j.*
