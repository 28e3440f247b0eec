-- fetch: the best :limit queued jobs of one queue, by priority (high first), due time, enqueue order.
-- in:  :queue :limit
-- out: seq, priority, run_at of the candidates; the engine merges the queues' candidates and claims.
-- why one queue at a time: the ready index is keyed by queue first, so this is an index walk that stops
-- after :limit rows; one query over several queues would sort the whole backlog on every fetch.
SELECT seq, priority, run_at FROM conveyor_jobs INDEXED BY conveyor_jobs_ready
WHERE state = 'queued' AND queue = :queue
ORDER BY priority DESC, run_at, seq
LIMIT :limit
