-- 0001: jobs, paused queues, named locks, and the trigger that wakes idle workers.
-- Times are unix seconds (double precision) from the server's clock. `seq` gives enqueue order.
CREATE TABLE {schema}.jobs (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text             NOT NULL UNIQUE,
    task             text             NOT NULL,
    queue            text             NOT NULL,
    priority         integer          NOT NULL,
    state            text             NOT NULL CHECK (state IN ('scheduled', 'queued', 'running',
                                                               'completed', 'failed', 'cancelled')),
    payload          text             NOT NULL,
    run_at           double precision NOT NULL,
    enqueued_at      double precision NOT NULL,
    attempts         integer          NOT NULL DEFAULT 0,
    max_attempts     integer          NOT NULL,
    timeout          double precision,
    started_at       double precision,
    finished_at      double precision,
    expires_at       double precision,
    lease_token      text,
    lease_expires_at double precision,
    worker_id        text,
    cancel_requested boolean          NOT NULL DEFAULT false,
    progress         double precision,
    progress_message text,
    result           text,
    errors           jsonb            NOT NULL DEFAULT '[]'::jsonb
);

-- Partial indexes stay small however many finished rows are kept: the claim walks jobs_ready.
CREATE INDEX jobs_ready ON {schema}.jobs (queue, priority DESC, run_at, seq) WHERE state = 'queued';
CREATE INDEX jobs_scheduled ON {schema}.jobs (queue, run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_leases ON {schema}.jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_expires ON {schema}.jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX jobs_state ON {schema}.jobs (state, seq);

CREATE TABLE {schema}.paused_queues (queue text PRIMARY KEY);

CREATE TABLE {schema}.locks (
    name       text             PRIMARY KEY,
    owner      text             NOT NULL,
    expires_at double precision NOT NULL
);

-- Idle workers LISTEN on conveyor_<schema>; a statement that leaves jobs waiting names their
-- queues. NOTIFY is transactional: a job enqueued in the app's transaction wakes nobody until commit.
CREATE FUNCTION {schema}.notify_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('conveyor_' || TG_TABLE_SCHEMA, queue)
    FROM (SELECT DISTINCT queue FROM changed WHERE state IN ('queued', 'scheduled')) AS waiting;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON {schema}.jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_waiting();
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON {schema}.jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_waiting();
