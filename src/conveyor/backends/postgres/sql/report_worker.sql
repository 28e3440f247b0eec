-- report_worker: a worker's announcement replaces its last one; expired ones are dropped.
-- Parameters: id, info (JSON), ttl (seconds). Returns the server's clock.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
upsert AS (
    INSERT INTO {schema}.workers (id, info, last_seen, expires_at)
    SELECT %(id)s, %(info)s, now, now + %(ttl)s FROM clock
    ON CONFLICT (id) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen,
                                   expires_at = excluded.expires_at
),
expired AS (DELETE FROM {schema}.workers WHERE expires_at <= (SELECT now FROM clock) AND id <> %(id)s)
SELECT now FROM clock
