-- add_stats: add workers' totals per minute and queue to the stored sums, and drop sums older than
-- the retention. Parameters: arrays minute, queue, completed, failed, retried, started, wait_total,
-- wait_max (one element per row), and keep_since.
WITH added AS (
    INSERT INTO {schema}.stats AS s (minute, queue, completed, failed, retried, started, wait_total, wait_max)
    SELECT * FROM unnest(%(minute)s::float8[], %(queue)s::text[], %(completed)s::bigint[], %(failed)s::bigint[],
                         %(retried)s::bigint[], %(started)s::bigint[], %(wait_total)s::float8[],
                         %(wait_max)s::float8[])
    ON CONFLICT (minute, queue) DO UPDATE SET
        completed  = s.completed + excluded.completed,
        failed     = s.failed + excluded.failed,
        retried    = s.retried + excluded.retried,
        started    = s.started + excluded.started,
        wait_total = s.wait_total + excluded.wait_total,
        wait_max   = greatest(s.wait_max, excluded.wait_max)
)
DELETE FROM {schema}.stats WHERE minute < %(keep_since)s
