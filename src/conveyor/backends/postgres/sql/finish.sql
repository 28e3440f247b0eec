-- finish: record a batch of attempts' outcomes in one statement.
-- in:  parallel arrays %(ids)s %(tokens)s %(states)s (completed|failed|cancelled|scheduled|queued)
--      %(results)s %(errors)s (JSON or NULL) %(delays)s %(releases)s (1 = handed back unstarted: the
--      attempt is not counted) %(retentions)s (seconds a finished job is kept)
--      %(cancelled_retention)s
-- out: the ids recorded; a job not running under its token is left alone. A job whose cancel was
--      requested while it ran is never retried or handed back: it ends cancelled.
-- guarantee: rows are locked in seq order, as heartbeat.sql locks them (no deadlock between them).
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
f AS (
    SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::text[], %(states)s::text[], %(results)s::text[],
                         %(errors)s::text[], %(delays)s::float8[], %(releases)s::int[], %(retentions)s::float8[])
        AS f(id, token, state, result, error, delay, release, retention)
),
held AS (
    SELECT j.seq, f.* FROM {schema}.jobs j
    JOIN f ON j.id = f.id AND j.lease_token = f.token
    WHERE j.state = 'running'
    ORDER BY j.seq
    FOR UPDATE OF j
)
UPDATE {schema}.jobs j
SET state = CASE WHEN j.cancel_requested AND f.state IN ('scheduled', 'queued') THEN 'cancelled'
                 WHEN f.state = 'scheduled' AND f.delay <= 0 THEN 'queued'
                 ELSE f.state END,
    result = f.result,
    errors = CASE WHEN f.error IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(f.error::jsonb) END,
    run_at = CASE WHEN f.state IN ('scheduled', 'queued') THEN clock.now + f.delay ELSE j.run_at END,
    attempts = j.attempts - f.release,
    finished_at = CASE WHEN f.state IN ('completed', 'failed', 'cancelled') OR j.cancel_requested
                       THEN clock.now END,
    expires_at = CASE WHEN f.state IN ('completed', 'failed', 'cancelled') THEN clock.now + f.retention
                      WHEN j.cancel_requested THEN clock.now + %(cancelled_retention)s END,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    cancel_requested = false
FROM held AS f, clock
WHERE j.seq = f.seq
RETURNING j.id, j.state
