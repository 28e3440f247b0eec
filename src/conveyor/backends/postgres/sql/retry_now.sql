-- retry_now: run a scheduled or finished job now. A finished job gets a fresh attempt budget
-- (max_attempts more attempts); its earlier errors are kept.
-- in:  %(id)s
-- out: the job after the change (no row if it is queued, running or missing).
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
UPDATE {schema}.jobs j
SET max_attempts = CASE WHEN j.state = 'scheduled' THEN j.max_attempts ELSE j.attempts + j.max_attempts END,
    state = 'queued', run_at = clock.now, result = NULL, finished_at = NULL, expires_at = NULL,
    cancel_requested = false, progress = NULL, progress_message = NULL
FROM clock
WHERE j.id = %(id)s AND j.state IN ('scheduled', 'completed', 'failed', 'cancelled')
RETURNING j.*
