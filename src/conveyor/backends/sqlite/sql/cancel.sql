-- cancel: a waiting job is cancelled at once; a running one is marked for its worker to stop.
-- in:  :id :now :expires_at
-- out: the job after the change (no row if it is finished or missing).
UPDATE conveyor_jobs
SET state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END,
    cancel_requested = CASE WHEN state = 'running' THEN 1 ELSE 0 END,
    finished_at = CASE WHEN state = 'running' THEN NULL ELSE :now END,
    expires_at = CASE WHEN state = 'running' THEN NULL ELSE :expires_at END
WHERE id = :id AND state IN ('scheduled', 'queued', 'running')
RETURNING *
