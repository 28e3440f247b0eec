-- promote: scheduled jobs of these queues whose time has come become queued (at most 1000 a call).
-- in: %(queues)s
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
due AS (
    SELECT seq FROM {schema}.jobs
    WHERE state = 'scheduled' AND queue = ANY(%(queues)s::text[]) AND run_at <= (SELECT now FROM clock)
    ORDER BY run_at
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.jobs j SET state = 'queued' FROM due WHERE j.seq = due.seq
