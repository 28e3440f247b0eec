-- finish: record attempts' outcomes (see record_outcomes in lib.lua).
-- KEYS: the common layout, with the queued and scheduled sets of the jobs' queues.
-- ARGV: the common header, the cancelled retention seconds, then 8 values per outcome.
-- returns: per outcome the state the job was left in, or '' if the lease was no longer held.
-- guarantee: changes nothing for a job that is not running under that token.
begin_counts()
local outcomes = record_outcomes(ARGS_AT + 1, #ARGV, tonumber(arg(1)), now())
end_counts()
return outcomes
