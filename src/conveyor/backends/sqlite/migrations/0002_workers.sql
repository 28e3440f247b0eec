-- 0002 workers: live workers, as each reports itself, and per-minute totals of what they did.
CREATE TABLE conveyor_workers (
    id         TEXT PRIMARY KEY,
    info       TEXT NOT NULL,  -- WorkerInfo as JSON
    last_seen  REAL NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE conveyor_stats (
    minute     REAL    NOT NULL,
    queue      TEXT    NOT NULL,
    completed  INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    retried    INTEGER NOT NULL,
    started    INTEGER NOT NULL,
    wait_total REAL    NOT NULL,
    wait_max   REAL    NOT NULL,
    PRIMARY KEY (minute, queue)
) WITHOUT ROWID;
