-- fetch: claim up to :limit queued jobs, by priority (high first), due time, enqueue order.
-- in:  :queues (JSON array) :limit :token :worker_id :now :lease_expires_at
-- out: the claimed rows, now running under lease :token, attempts counted.
-- guarantee: runs in a BEGIN IMMEDIATE transaction after promote, so two fetchers never claim one job.
UPDATE conveyor_jobs
SET state = 'running', attempts = attempts + 1, lease_token = :token,
    lease_expires_at = :lease_expires_at, worker_id = :worker_id, started_at = :now
WHERE seq IN (
    SELECT seq FROM conveyor_jobs
    WHERE state = 'queued'
      AND queue IN (SELECT value FROM json_each(:queues))
      AND queue NOT IN (SELECT queue FROM conveyor_paused_queues)
    ORDER BY priority DESC, run_at, seq
    LIMIT :limit
)
RETURNING *
