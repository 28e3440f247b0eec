-- fetch: claim up to %(limit)s queued jobs from the unpaused queues: priority (high first), due time,
-- enqueue order.
-- in:  %(queues)s %(limit)s %(token)s %(worker_id)s %(lease)s
-- out: the claimed rows, now running under lease %(token)s with the attempt counted.
-- guarantee: FOR UPDATE SKIP LOCKED: two fetchers never claim one job and never wait on each other.
-- Each queue's best candidates are an index walk of jobs_ready that stops at the limit, so the claim
-- stays fast however long the backlog or the history.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
candidates AS (
    SELECT c.seq
    FROM unnest(%(queues)s::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT seq, priority, run_at FROM {schema}.jobs
        WHERE state = 'queued' AND queue = q.name
        ORDER BY priority DESC, run_at, seq
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE q.name NOT IN (SELECT queue FROM {schema}.paused_queues)
    ORDER BY c.priority DESC, c.run_at, c.seq
    LIMIT %(limit)s
)
UPDATE {schema}.jobs j
SET state = 'running', attempts = j.attempts + 1, lease_token = %(token)s,
    lease_expires_at = clock.now + %(lease)s, worker_id = %(worker_id)s, started_at = clock.now
FROM candidates, clock
WHERE j.seq = candidates.seq
RETURNING j.*
