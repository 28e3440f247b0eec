-- finish: record a batch of attempts' outcomes in one statement.
-- in:  :finishes, a JSON array with one array per attempt:
--      [id, token, state (completed|failed|cancelled|scheduled|queued), result (JSON text or null),
--       error (an object or null), delay, release (1 = handed back unstarted: the attempt is not
--       counted), expires_at (null unless the state is final)]
--      :now :cancelled_expires_at
-- out: the ids recorded, each with the state its job was left in.
-- guarantee: changes nothing for a job not running under its lease token. A job whose cancel was
--            requested while it ran is never retried or handed back: it ends cancelled.
UPDATE conveyor_jobs
SET state = CASE WHEN cancel_requested AND f.state IN ('scheduled', 'queued') THEN 'cancelled'
                 WHEN f.state = 'scheduled' AND f.delay <= 0 THEN 'queued'
                 ELSE f.state END,
    result = f.result,
    errors = CASE WHEN f.error IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(f.error)) END,
    run_at = CASE WHEN f.state IN ('scheduled', 'queued') THEN :now + f.delay ELSE run_at END,
    attempts = attempts - f.release,
    finished_at = CASE WHEN f.state IN ('completed', 'failed', 'cancelled') OR cancel_requested THEN :now END,
    expires_at = CASE WHEN f.state IN ('completed', 'failed', 'cancelled') THEN f.expires_at
                      WHEN cancel_requested THEN :cancelled_expires_at END,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    cancel_requested = 0
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
             json_extract(value, '$[2]') AS state, json_extract(value, '$[3]') AS result,
             json_extract(value, '$[4]') AS error, json_extract(value, '$[5]') AS delay,
             json_extract(value, '$[6]') AS release, json_extract(value, '$[7]') AS expires_at
      FROM json_each(:finishes)) AS f
WHERE conveyor_jobs.id = f.id AND conveyor_jobs.lease_token = f.token AND conveyor_jobs.state = 'running'
RETURNING conveyor_jobs.id, conveyor_jobs.state
