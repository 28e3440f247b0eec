-- rescue_expired: running jobs whose lease expired (their worker died or froze).
-- in:  :now :failed_expires_at :cancelled_expires_at
-- out: the rescued rows in their new state.
-- guarantee: the rescue counts as the attempt it interrupted, so a job that kills its worker
--            every time ends failed after max_attempts; a cancel requested meanwhile sticks (and,
--            done, the request is cleared, as a finish clears it).
UPDATE conveyor_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN attempts >= max_attempts THEN 'failed'
                 ELSE 'queued' END,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempts, 'type', 'WorkerLost',
        'message', 'the worker running this job stopped renewing its lease (it crashed, was killed or froze)',
        'traceback', '', 'at', :now)),
    run_at = :now,
    finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN :now END,
    expires_at = CASE WHEN cancel_requested THEN :cancelled_expires_at
                      WHEN attempts >= max_attempts THEN :failed_expires_at END,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, cancel_requested = 0
WHERE state = 'running' AND lease_expires_at < :now
RETURNING *
