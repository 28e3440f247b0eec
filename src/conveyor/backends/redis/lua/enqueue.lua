-- enqueue: store a batch of new jobs; an id already stored returns that job instead.
-- KEYS: the common layout (lib.lua), with the queued and scheduled sets of every queue in the batch.
-- ARGV: the common header, then 9 values per job (see insert_batch in lib.lua).
-- returns: as insert_batch: the enqueue time, then the jobs whose ids were taken.
-- guarantee: the whole batch lands or none of it; a due job is queued, a later one scheduled.
return insert_batch(1, #ARGV - ARGS_AT + 1, now())
