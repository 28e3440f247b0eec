-- 0001 jobs: the SQLite store's first schema. Migrations run in one transaction when a store is opened;
-- conveyor_meta's schema_version names the last one applied.
-- Times are unix seconds (REAL) from the engine's clock. `seq` gives enqueue order.
CREATE TABLE conveyor_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE conveyor_jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    task             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    run_at           REAL    NOT NULL,
    enqueued_at      REAL    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    timeout          REAL,
    started_at       REAL,
    finished_at      REAL,
    expires_at       REAL,
    lease_token      TEXT,
    lease_expires_at REAL,
    worker_id        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress         REAL,
    progress_message TEXT,
    result           TEXT,
    errors           TEXT    NOT NULL DEFAULT '[]'
);

-- The claim reads this index in order and stops after `limit` rows.
CREATE INDEX conveyor_jobs_ready ON conveyor_jobs (queue, priority DESC, run_at, seq) WHERE state = 'queued';
CREATE INDEX conveyor_jobs_scheduled ON conveyor_jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX conveyor_jobs_leases ON conveyor_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX conveyor_jobs_expires ON conveyor_jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX conveyor_jobs_state ON conveyor_jobs (state, queue, seq);

CREATE TABLE conveyor_paused_queues (queue TEXT PRIMARY KEY);

CREATE TABLE conveyor_locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL
);

-- One row per schedule the app defines (the definition stays in code). `last_tick` moves only
-- forward, in the same transaction that enqueues the tick's job: that is the exactly-once.
CREATE TABLE conveyor_schedules (
    name          TEXT PRIMARY KEY,
    last_tick     REAL    NOT NULL,
    paused        INTEGER NOT NULL DEFAULT 0,
    last_job_id   TEXT,
    last_fired_at REAL
);
