-- report_worker: a worker's announcement replaces its last one. Parameters: id, info JSON, now, expires_at.
INSERT INTO conveyor_workers (id, info, last_seen, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen, expires_at = excluded.expires_at
