-- enqueue: insert one new job; the caller has already filtered out ids that exist.
-- in:  :id :task :queue :priority :payload :run_at :now :max_attempts :timeout
-- guarantee: runs inside the caller's batch transaction, so a batch lands whole or not at all.
INSERT INTO conveyor_jobs (id, task, queue, priority, state, payload, run_at, enqueued_at,
                           attempts, max_attempts, timeout)
VALUES (:id, :task, :queue, :priority,
        CASE WHEN :run_at > :now THEN 'scheduled' ELSE 'queued' END,
        :payload, :run_at, :now, 0, :max_attempts, :timeout)
