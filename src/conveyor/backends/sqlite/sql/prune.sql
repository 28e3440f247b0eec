-- prune: delete finished jobs whose retention has passed.
-- in: :now
DELETE FROM conveyor_jobs WHERE expires_at IS NOT NULL AND expires_at <= :now
