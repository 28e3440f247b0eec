-- retry_now: run a scheduled or finished job now. A finished job starts over with its full attempt
-- budget (attempts back to 0, max_attempts unchanged); its earlier errors are kept.
-- in:  :id :now
-- out: the job after the change (no row if it is queued, running or missing).
UPDATE conveyor_jobs
SET attempts = CASE WHEN state = 'scheduled' THEN attempts ELSE 0 END,
    state = 'queued', run_at = :now, result = NULL, finished_at = NULL, expires_at = NULL,
    cancel_requested = 0, progress = NULL, progress_message = NULL
WHERE id = :id AND state IN ('scheduled', 'completed', 'failed', 'cancelled')
RETURNING *
