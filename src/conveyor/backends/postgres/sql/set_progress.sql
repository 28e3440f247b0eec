-- set_progress: a running job reports progress.
-- in: %(id)s %(token)s %(progress)s %(message)s
-- guarantee: changes nothing unless the job is running under lease %(token)s.
UPDATE {schema}.jobs SET progress = %(progress)s, progress_message = %(message)s
WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
