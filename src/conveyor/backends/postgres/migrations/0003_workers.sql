-- 0003: live workers, as each reports itself, and per-minute totals of what they did.
CREATE TABLE {schema}.workers (
    id         text             PRIMARY KEY,
    info       text             NOT NULL,  -- WorkerInfo as JSON
    last_seen  double precision NOT NULL,
    expires_at double precision NOT NULL
);

CREATE TABLE {schema}.stats (
    minute     double precision NOT NULL,
    queue      text             NOT NULL,
    completed  bigint           NOT NULL,
    failed     bigint           NOT NULL,
    retried    bigint           NOT NULL,
    started    bigint           NOT NULL,
    wait_total double precision NOT NULL,
    wait_max   double precision NOT NULL,
    PRIMARY KEY (minute, queue)
);
