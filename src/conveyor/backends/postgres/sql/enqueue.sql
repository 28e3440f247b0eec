-- enqueue: insert a batch of new jobs in one statement; ids already stored are left alone.
-- in:  parallel arrays %(ids)s %(tasks)s %(queues)s %(priorities)s %(payloads)s %(delays)s
--      %(run_ats)s (NULL = now + delay) %(max_attempts)s %(timeouts)s
-- out: the rows inserted; the engine reads the others (already stored) in the same transaction.
-- guarantee: the batch lands whole or not at all, in the caller's transaction when it gives one.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO {schema}.jobs (id, task, queue, priority, state, payload, run_at, enqueued_at, max_attempts, timeout)
SELECT n.id, n.task, n.queue, n.priority,
       CASE WHEN coalesce(n.run_at, c.now + n.delay) > c.now THEN 'scheduled' ELSE 'queued' END,
       n.payload, coalesce(n.run_at, c.now + n.delay), c.now, n.max_attempts, n.timeout
FROM unnest(%(ids)s::text[], %(tasks)s::text[], %(queues)s::text[], %(priorities)s::int[], %(payloads)s::text[],
            %(delays)s::float8[], %(run_ats)s::float8[], %(max_attempts)s::int[], %(timeouts)s::float8[])
         WITH ORDINALITY AS n(id, task, queue, priority, payload, delay, run_at, max_attempts, timeout, ord),
     clock c
ORDER BY n.ord
ON CONFLICT (id) DO NOTHING
RETURNING *
