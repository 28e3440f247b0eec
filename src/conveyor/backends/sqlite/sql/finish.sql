-- finish: record one attempt's outcome.
-- in:  :id :token :state (completed|failed|cancelled|scheduled|queued) :result :error (JSON or NULL)
--      :now :delay :release (1 = handed back unstarted: the attempt is not counted) :expires_at
--      :cancelled_expires_at
-- guarantee: changes nothing unless the job is running under lease :token. A job whose cancel was
--            requested while it ran is never retried or handed back: it ends cancelled.
UPDATE conveyor_jobs
SET state = CASE WHEN cancel_requested AND :state IN ('scheduled', 'queued') THEN 'cancelled'
                 WHEN :state = 'scheduled' AND :delay <= 0 THEN 'queued'
                 ELSE :state END,
    result = :result,
    errors = CASE WHEN :error IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(:error)) END,
    run_at = CASE WHEN :state IN ('scheduled', 'queued') THEN :now + :delay ELSE run_at END,
    attempts = attempts - :release,
    finished_at = CASE WHEN :state IN ('completed', 'failed', 'cancelled') OR cancel_requested THEN :now END,
    expires_at = CASE WHEN :state IN ('completed', 'failed', 'cancelled') THEN :expires_at
                      WHEN cancel_requested THEN :cancelled_expires_at END,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    cancel_requested = 0
WHERE id = :id AND lease_token = :token AND state = 'running'
