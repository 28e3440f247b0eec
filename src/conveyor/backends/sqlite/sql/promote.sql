-- promote: scheduled jobs whose time has come become queued.
-- in: :now
-- why INDEXED BY: left to itself SQLite walks every scheduled row (the state index) on every fetch;
-- the due-time index stops at the first job not yet due.
UPDATE conveyor_jobs INDEXED BY conveyor_jobs_scheduled SET state = 'queued'
WHERE state = 'scheduled' AND run_at <= :now
