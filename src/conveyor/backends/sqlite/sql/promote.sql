-- promote: scheduled jobs whose time has come become queued.
-- in: :now
UPDATE conveyor_jobs SET state = 'queued' WHERE state = 'scheduled' AND run_at <= :now
