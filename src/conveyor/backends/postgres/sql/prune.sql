-- prune: delete finished jobs whose retention has passed, at most 5000 a call.
WITH doomed AS (
    SELECT seq FROM {schema}.jobs
    WHERE expires_at IS NOT NULL AND expires_at <= extract(epoch FROM clock_timestamp())::float8
    LIMIT 5000
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.jobs j USING doomed WHERE j.seq = doomed.seq
