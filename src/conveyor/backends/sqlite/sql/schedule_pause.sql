-- schedule_pause: pause (:paused = 1) or resume (:paused = 0) a schedule, registering it if needed.
-- in:  :name :paused :now
-- out: the schedule's row. Resuming moves last_tick to :now, so ticks passed while paused are skipped.
INSERT INTO conveyor_schedules (name, last_tick, paused) VALUES (:name, :now, :paused)
ON CONFLICT (name) DO UPDATE SET
    paused = excluded.paused,
    last_tick = CASE WHEN excluded.paused = 0 AND conveyor_schedules.paused = 1
                     THEN max(conveyor_schedules.last_tick, :now) ELSE conveyor_schedules.last_tick END
RETURNING *
