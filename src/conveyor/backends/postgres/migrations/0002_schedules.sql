-- 0002: schedule state. The definitions stay in code; `last_tick` moves only forward, in the
-- transaction that enqueues the tick's job: that is the exactly-once.
CREATE TABLE {schema}.schedules (
    name          text             PRIMARY KEY,
    last_tick     double precision NOT NULL,
    paused        boolean          NOT NULL DEFAULT false,
    last_job_id   text,
    last_fired_at double precision
);
