-- retry_now: run a scheduled or finished job now. A finished job starts over with its full attempt
-- budget (attempts back to 0, max_attempts unchanged); its earlier errors are kept.
-- in:  %(id)s
-- out: the job after the change (no row if it is queued, running or missing).
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
UPDATE {schema}.jobs j
SET attempts = CASE WHEN j.state = 'scheduled' THEN j.attempts ELSE 0 END,
    state = 'queued', run_at = clock.now, result = NULL, finished_at = NULL, expires_at = NULL,
    cancel_requested = false, progress = NULL, progress_message = NULL
FROM clock
WHERE j.id = %(id)s AND j.state IN ('scheduled', 'completed', 'failed', 'cancelled')
RETURNING j.*
