-- heartbeat: extend the leases a worker still holds.
-- in:  :leases (JSON array of [job_id, token]) :lease_expires_at
-- out: id, cancel_requested of every lease still held (the others were lost).
UPDATE conveyor_jobs
SET lease_expires_at = :lease_expires_at
WHERE state = 'running'
  AND (id, lease_token) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')
                            FROM json_each(:leases))
RETURNING id, cancel_requested
