-- lib: the helpers every conveyor script shares; the engine puts this file in front of each script.
--
-- KEYS, built by keys.py, never made up here:
--   1 jobs (hash id -> job JSON)   2 payloads (hash)   3 results (hash)   4 errors (hash id -> JSON array)
--   5 seq (counter)   6 counts (hash "queue<TAB>state" -> n)   7 queues (set)
--   8 running (zset id -> lease expiry)   9 expiry (zset id -> time a finished job is pruned)
--   10 paused (set)   11 schedules (hash)   12 locks (hash)
--   13..17 one zset per state but running (id -> seq), for listing: scheduled queued completed failed
--          cancelled (every job that is not running is in exactly one; running jobs are listed from
--          the running set, which holds them all anyway, so a claim and a finish each write one set less)
--   then, per queue the script touches: its queued zset and its scheduled zset (id -> due time).
-- ARGV starts with: the wake channel, the number of queues n, the n queue names (in KEYS order);
-- each script's own arguments follow, read with arg(i).
-- Times come from the server's clock (TIME) and are stored as strings with 17 significant digits,
-- because cjson would round numbers to 14.

local K_JOBS, K_PAYLOADS, K_RESULTS, K_ERRORS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_SEQ, K_COUNTS, K_QUEUES = KEYS[5], KEYS[6], KEYS[7]
local K_RUNNING, K_EXPIRY, K_PAUSED, K_SCHEDULES, K_LOCKS = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local STATE_KEY = {scheduled = KEYS[13], queued = KEYS[14], completed = KEYS[15], failed = KEYS[16],
                   cancelled = KEYS[17]}
local WAKE = ARGV[1]
local NQ = tonumber(ARGV[2])
local QUEUE_NAMES, QUEUED_KEY, SCHEDULED_KEY = {}, {}, {}
for i = 1, NQ do
  local name = ARGV[2 + i]
  QUEUE_NAMES[i] = name
  QUEUED_KEY[name] = KEYS[16 + 2 * i]
  SCHEDULED_KEY[name] = KEYS[17 + 2 * i]
end
local ARGS_AT = 3 + NQ
local function arg(i) return ARGV[ARGS_AT + i - 1] end

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function num(x) return string.format('%.17g', x) end

local function key_of(keys, queue)
  local key = keys[queue]
  if not key then error('conveyor: the keys of queue ' .. queue .. ' were not passed to this script') end
  return key
end

local function load(id)
  local raw = redis.call('HGET', K_JOBS, id)
  if raw then return cjson.decode(raw) end
  return nil
end

-- Returns the JSON it stored, so a script replying with the job need not encode it again.
local function save(job)
  local encoded = cjson.encode(job)
  redis.call('HSET', K_JOBS, job.id, encoded)
  return encoded
end

-- Between begin_counts and end_counts (a script that moves many jobs), count changes add up here
-- and each field is written once at the end: a claim of n jobs writes 2 fields, not 2n. While a batch
-- is inserted (insert_batch), a queue's emptiness is checked once (after its first new job it is not empty).
local BATCH_COUNTS, BATCH_SEEN = nil, nil

local function write_count(field, delta)
  if delta ~= 0 and redis.call('HINCRBY', K_COUNTS, field, delta) <= 0 then redis.call('HDEL', K_COUNTS, field) end
end

local function count(queue, state, delta)
  local field = queue .. '\t' .. state
  if BATCH_COUNTS then BATCH_COUNTS[field] = (BATCH_COUNTS[field] or 0) + delta else write_count(field, delta) end
end

local function begin_counts() BATCH_COUNTS = {} end

-- While a batch is inserted, the new jobs' sorted-set entries are gathered per key and written with
-- one ZADD per key at the end (see place): one command per job fewer for each set it enters.
local BATCH_ADDS = nil

local function zadd(key, score, member)
  if not BATCH_ADDS then return redis.call('ZADD', key, score, member) end
  local pairs_of_key = BATCH_ADDS[key]
  if not pairs_of_key then pairs_of_key = {}; BATCH_ADDS[key] = pairs_of_key end
  pairs_of_key[#pairs_of_key + 1] = score
  pairs_of_key[#pairs_of_key + 1] = member
end

local function write_adds()
  for key, args in pairs(BATCH_ADDS) do
    for i = 1, #args, 2000 do  -- unpack is bounded by Lua's C stack (8,000 values)
      redis.call('ZADD', key, unpack(args, i, math.min(i + 1999, #args)))
    end
  end
  BATCH_ADDS = nil
end

local function end_counts()
  for field, delta in pairs(BATCH_COUNTS) do write_count(field, delta) end
  BATCH_COUNTS = nil
end

-- Equal scores (priorities) sort by member: due time in ms, then enqueue order, then the id.
local function queued_member(job)
  return string.format('%016d%016d', math.floor(tonumber(job.run_at) * 1000), job.seq) .. job.id
end
local MEMBER_ID_AT = 33

-- Take a job out of the structure of its current state (`popped`: a queued job's member is already
-- out of its queue's zset).
local function leave(job, popped)
  local state = job.state
  if state == 'queued' then
    if not popped then redis.call('ZREM', key_of(QUEUED_KEY, job.queue), queued_member(job)) end
  elseif state == 'scheduled' then redis.call('ZREM', key_of(SCHEDULED_KEY, job.queue), job.id)
  elseif state == 'running' then redis.call('ZREM', K_RUNNING, job.id)
  else redis.call('ZREM', K_EXPIRY, job.id) end
  if state ~= 'running' then redis.call('ZREM', STATE_KEY[state], job.id) end
  count(job.queue, state, -1)
end

-- Put a job (its times and state already set) into the structure of its state.
-- Idle workers are told when a queue gains its first job or a queue's earliest due time moves sooner
-- (during a batch, the earliest read may be later than the batch's own: a wake-up too many, never one too few).
local function place(job)
  local state = job.state
  if state == 'queued' then
    local key = key_of(QUEUED_KEY, job.queue)
    if not (BATCH_SEEN and BATCH_SEEN[job.queue]) and redis.call('ZCARD', key) == 0 then
      redis.call('PUBLISH', WAKE, job.queue)
    end
    zadd(key, -job.priority, queued_member(job))
  elseif state == 'scheduled' then
    local key = key_of(SCHEDULED_KEY, job.queue)
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] == nil or tonumber(job.run_at) < tonumber(first[2]) then redis.call('PUBLISH', WAKE, job.queue) end
    zadd(key, job.run_at, job.id)
  elseif state == 'running' then zadd(K_RUNNING, job.lease_expires_at, job.id)
  else zadd(K_EXPIRY, job.expires_at, job.id) end
  if state ~= 'running' then zadd(STATE_KEY[state], job.seq, job.id) end
  count(job.queue, state, 1)
end

-- Move a job (its times already set) to `state` and save it; returns its JSON.
local function enter(job, state)
  job.state = state
  place(job)
  return save(job)
end

local function append_error(id, error_json)
  local errors = redis.call('HGET', K_ERRORS, id)
  if errors then errors = string.sub(errors, 1, -2) .. ',' .. error_json .. ']' else errors = '[' .. error_json .. ']' end
  redis.call('HSET', K_ERRORS, id, errors)
end

local function clear_lease(job)
  job.lease_token, job.lease_expires_at, job.worker_id = nil, nil, nil
end

local function finish_at(job, t, ttl)
  job.finished_at = num(t)
  job.expires_at = num(t + ttl)
end

-- Store a new job unless its id is taken (HSETNX checks and stores in one call). `t_text` is
-- num(t), formatted once per batch. Returns the stored job and whether it was made now.
local function insert(id, task, queue, priority, payload, run_at, max_attempts, timeout, t, t_text, seq)
  local job = {id = id, task = task, queue = queue, priority = priority,
               run_at = run_at == t and t_text or num(run_at), enqueued_at = t_text, attempts = 0,
               max_attempts = max_attempts, seq = seq, state = run_at > t and 'scheduled' or 'queued'}
  if timeout ~= '' then job.timeout = timeout end
  if redis.call('HSETNX', K_JOBS, id, cjson.encode(job)) == 0 then return load(id), false end
  redis.call('HSET', K_PAYLOADS, id, payload)
  place(job)
  if BATCH_SEEN and job.state == 'queued' then BATCH_SEEN[queue] = true end
  return job, true
end

-- A job as the engine returns it: JSON (`encoded`, when the caller has just saved it), payload,
-- result, errors.
local function reply(job, encoded)
  return {encoded or cjson.encode(job), redis.call('HGET', K_PAYLOADS, job.id) or '',
          redis.call('HGET', K_RESULTS, job.id) or '', redis.call('HGET', K_ERRORS, job.id) or ''}
end

-- A batch of new jobs, 9 arguments each, from arg(first) to arg(last): id, task, queue, priority,
-- payload, delay, run_at ('' = now + delay), max_attempts, timeout ('' = none).
-- Returns {enqueue time, taken...}: the engine knows the rest of each job made now, and for each
-- id already taken there is {position in the batch (1-based), job JSON, payload, result, errors}.
local JOB_ARGS = 9
local function insert_batch(first, last, t)
  local t_text = num(t)
  local out = {t_text}
  -- One INCRBY reserves the batch's enqueue order (an id already stored leaves a gap, which is harmless).
  local size = math.floor((last - first) / JOB_ARGS) + 1  -- `last` is any index within the last job
  local seq = (size == 1 and redis.call('INCR', K_SEQ) or redis.call('INCRBY', K_SEQ, size)) - size
  local queues = nil
  if size > 1 then begin_counts(); BATCH_SEEN, BATCH_ADDS, queues = {}, {}, {} end
  for b = ARGS_AT + first - 1, ARGS_AT + last - 1, JOB_ARGS do
    local run_at = ARGV[b + 6] ~= '' and tonumber(ARGV[b + 6]) or t + tonumber(ARGV[b + 5])
    seq = seq + 1
    local job, created = insert(ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3]), ARGV[b + 4], run_at,
                                tonumber(ARGV[b + 7]), ARGV[b + 8], t, t_text, seq)
    if created then
      if queues then queues[job.queue] = true else redis.call('SADD', K_QUEUES, job.queue) end
    else
      local stored = reply(job)
      out[#out + 1] = {(b - ARGS_AT - first + 1) / JOB_ARGS + 1, stored[1], stored[2], stored[3], stored[4]}
    end
  end
  if queues then
    write_adds()
    end_counts()
    for queue in pairs(queues) do redis.call('SADD', K_QUEUES, queue) end
    BATCH_SEEN = nil
  end
  return out
end

local function delete(job)
  for _, key in ipairs({K_JOBS, K_PAYLOADS, K_RESULTS, K_ERRORS}) do redis.call('HDEL', key, job.id) end
end

-- Claim up to `limit` jobs from `queues` (names whose keys were passed): highest priority first,
-- then due time, then enqueue order; due scheduled jobs of those queues are queued first.
-- Returns per claimed job {job JSON, payload, result (always ''), errors}, now running with the
-- attempt counted.
-- A queue member whose job cannot be read (its metadata missing or not JSON: a write that failed
-- half-way, as a script refused mid-run by an ACL leaves it, or bytes written by something else)
-- is taken out of the queue and reported in the server's log, so one bad member cannot fail
-- every fetch of its queue. Returns the job, or nil for such a member.
local function load_member(zset, member, id)
  local raw = redis.call('HGET', K_JOBS, id)
  local ok, job = false, nil
  if raw then ok, job = pcall(cjson.decode, raw) end
  if ok and type(job) == 'table' then return job end
  redis.call('ZREM', zset, member)
  redis.log(redis.LOG_WARNING, 'conveyor: removed ' .. id .. ' from ' .. zset .. ': its job metadata is '
    .. (raw and 'not JSON' or 'missing'))
  return nil
end

local function claim(queues, limit, token, worker, lease, t)
  local candidates = {}
  -- From one queue the first `limit` members are the ones claimed: pop them rather than read them
  -- and remove each one.
  local popped = #queues == 1
  for _, queue in ipairs(queues) do
    local scheduled = key_of(SCHEDULED_KEY, queue)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', scheduled, '-inf', t, 'LIMIT', 0, 1000)) do
      local job = load_member(scheduled, id, id)
      if job then
        leave(job)
        enter(job, 'queued')
      end
    end
    if redis.call('SISMEMBER', K_PAUSED, queue) == 0 then
      local rows
      if popped then rows = redis.call('ZPOPMIN', key_of(QUEUED_KEY, queue), limit)
      else rows = redis.call('ZRANGE', key_of(QUEUED_KEY, queue), 0, limit - 1, 'WITHSCORES') end
      for i = 1, #rows, 2 do candidates[#candidates + 1] = {tonumber(rows[i + 1]), rows[i], queue} end
    end
  end
  table.sort(candidates, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local out = {}
  for i = 1, math.min(limit, #candidates) do
    local member = candidates[i][2]
    local job = load_member(key_of(QUEUED_KEY, candidates[i][3]), member, string.sub(member, MEMBER_ID_AT))
    if job then
      leave(job, popped)
      job.attempts = job.attempts + 1
      job.lease_token, job.worker_id = token, worker
      job.started_at, job.lease_expires_at = num(t), num(t + lease)
      -- No result to read: a job waits (queued or scheduled) only with its result deleted (see
      -- record_outcomes and retry_now).
      out[#out + 1] = {enter(job, 'running'), redis.call('HGET', K_PAYLOADS, job.id) or '', '',
                       redis.call('HGET', K_ERRORS, job.id) or ''}
    end
  end
  return out
end

-- Seconds from `t` until the first scheduled job of `queues` is due (0 if one is due already), or
-- '' if none is scheduled.
local function next_due_in(queues, t)
  local first = nil
  for _, queue in ipairs(queues) do
    local head = redis.call('ZRANGE', key_of(SCHEDULED_KEY, queue), 0, 0, 'WITHSCORES')
    if head[2] ~= nil and (first == nil or tonumber(head[2]) < first) then first = tonumber(head[2]) end
  end
  if first == nil then return '' end
  return num(math.max(0, first - t))
end

-- Record attempts' outcomes, 8 values each in ARGV[first..last]: job id, lease token, target state
-- (completed|failed|cancelled|scheduled|queued), result JSON ('' = none), error JSON ('' = none),
-- delay seconds (retries), release (1 = handed back unstarted: the attempt is not counted),
-- retention seconds (finished states). Returns per outcome the state the job was left in, or '' if the
-- lease was gone.
-- A job whose cancel was requested while it ran is never retried or handed back: it ends cancelled.
local function record_outcomes(first, last, cancelled_ttl, t)
  local out = {}
  for b = first, last, 8 do
    local id, token, target = ARGV[b], ARGV[b + 1], ARGV[b + 2]
    local job = load(id)
    if not job or job.state ~= 'running' or job.lease_token ~= token then
      out[#out + 1] = ''
    else
      leave(job)
      -- A running job has no result (see claim), so there is none to delete; and most tasks return
      -- nothing, so a null result is not stored: the engine reads a completed job without one as null.
      if ARGV[b + 3] ~= '' and ARGV[b + 3] ~= 'null' then redis.call('HSET', K_RESULTS, id, ARGV[b + 3]) end
      if ARGV[b + 4] ~= '' then append_error(id, ARGV[b + 4]) end
      clear_lease(job)
      if ARGV[b + 6] == '1' then job.attempts = job.attempts - 1 end
      local waits = target == 'scheduled' or target == 'queued'
      if waits and job.cancel_requested then
        target = 'cancelled'
        finish_at(job, t, cancelled_ttl)
        job.cancel_requested = nil
      elseif waits then
        local delay = tonumber(ARGV[b + 5])
        job.run_at = num(t + delay)
        if delay <= 0 then target = 'queued' end
      else
        finish_at(job, t, tonumber(ARGV[b + 7]))
        job.cancel_requested = nil
      end
      enter(job, target)
      out[#out + 1] = target
    end
  end
  return out
end

-- end of lib
