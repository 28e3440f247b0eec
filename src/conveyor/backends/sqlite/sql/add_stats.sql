-- add_stats: add one worker's totals for a minute and queue to the stored sums.
-- Parameters: minute, queue, completed, failed, retried, started, wait_total, wait_max.
INSERT INTO conveyor_stats (minute, queue, completed, failed, retried, started, wait_total, wait_max)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (minute, queue) DO UPDATE SET
    completed  = completed + excluded.completed,
    failed     = failed + excluded.failed,
    retried    = retried + excluded.retried,
    started    = started + excluded.started,
    wait_total = wait_total + excluded.wait_total,
    wait_max   = max(wait_max, excluded.wait_max)
