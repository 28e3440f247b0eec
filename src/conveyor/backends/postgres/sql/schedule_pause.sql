-- schedule_pause: pause (true) or resume (false) a schedule, registering it if needed.
-- in:  %(name)s %(paused)s %(now)s
-- out: the schedule's row. Resuming moves last_tick to %(now)s, so ticks passed while paused are skipped.
INSERT INTO {schema}.schedules AS s (name, last_tick, paused) VALUES (%(name)s, %(now)s, %(paused)s)
ON CONFLICT (name) DO UPDATE SET
    paused = excluded.paused,
    last_tick = CASE WHEN NOT excluded.paused AND s.paused THEN greatest(s.last_tick, %(now)s) ELSE s.last_tick END
RETURNING *
