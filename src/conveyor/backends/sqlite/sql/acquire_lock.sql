-- acquire_lock: take the named lock, or extend it if :owner holds it already.
-- in:  :name :owner :now :expires_at
-- out: one row when :owner holds the lock afterwards.
INSERT INTO conveyor_locks (name, owner, expires_at) VALUES (:name, :owner, :expires_at)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE conveyor_locks.owner = excluded.owner OR conveyor_locks.expires_at <= :now
RETURNING owner
