-- schedule_fire: move the schedule past the ticks this scheduler fired.
-- in:  :name :advance_to (NULL for a manual run) :last_job_id (NULL when no job is made) :now
-- guarantee: the engine checked last_tick < :advance_to and enqueues the ticks' jobs in the same
-- BEGIN IMMEDIATE transaction, so of any number of schedulers firing one tick exactly one makes its job.
UPDATE conveyor_schedules
SET last_tick = coalesce(:advance_to, last_tick),
    last_job_id = coalesce(:last_job_id, last_job_id),
    last_fired_at = CASE WHEN :last_job_id IS NULL THEN last_fired_at ELSE :now END
WHERE name = :name
