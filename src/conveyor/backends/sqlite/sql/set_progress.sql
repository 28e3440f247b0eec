-- set_progress: a running job reports progress.
-- in: :id :token :progress :message
-- guarantee: changes nothing unless the job is running under lease :token.
UPDATE conveyor_jobs SET progress = :progress, progress_message = :message
WHERE id = :id AND lease_token = :token AND state = 'running'
