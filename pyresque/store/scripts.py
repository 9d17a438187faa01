"""The Lua scripts behind :class:`~.datastore.DataStore`, each with the keys it touches.

Every multi-step change that another client must never see half-done is one script: reserving
a job with its working-on record and status, a job's bookkeeping (alone or batched with the next
reserve), tracked and unique pushes, concurrency slots, the failed list's compare-and-act edits.
Key *names* are not spelled here: the DataStore passes them in ``KEYS`` (:mod:`pyresque.wire.keys`).
"""

# Shared by the worker's scripts. Every key they read or count may hold anything (other programs
# write the keyspace): a step on a key of the wrong type is skipped and reported in the reply's
# tail ("<key> <problem>"), never an error that would leave the script half done.
_SAFE_LUA = r"""
local problems = {}
local function note(key, what) if #problems < 50 then problems[#problems + 1] = key .. ' ' .. what end end
local function get_string(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then note(key, 'is not a string: ignored'); return false end
  return value
end
local function count(key)
  if type(redis.pcall('INCRBY', key, 1)) == 'table' then note(key, 'is not an integer: not counted') end
end
"""

# Records a reserved item: SET worker:<id> to the working-on record and, when the payload carries
# a php-resque id whose status key exists, status RUNNING (keeping "started").
# Returns the packet's "started" (or false when the job is not tracked).
_RECORD_LUA = _SAFE_LUA + r"""
local function record(item, queue_json, worker_key, ns, run_at, now)
  local payload_json = item
  local ok, job = pcall(cjson.decode, item)
  if not ok then payload_json = cjson.encode(item) end
  redis.call('SET', worker_key,
    '{"queue":' .. queue_json .. ',"run_at":"' .. run_at .. '","payload":' .. payload_json .. '}')
  if ok and type(job) == 'table' and type(job['id']) == 'string' then
    local prefix = job['prefix']
    local skey = ns .. 'job:'
    if type(prefix) == 'string' and prefix ~= '' then skey = skey .. prefix .. '_' end
    skey = skey .. job['id'] .. ':status'
    local current = get_string(skey)
    if current then
      local started = string.match(current, '"started":(%d+)') or now
      redis.call('SET', skey,
        '{"status":2,"updated":' .. now .. ',"started":' .. started .. ',"result":null}')
      return started
    end
  end
  return false
end
"""

# KEYS: queue:<q1> .. queue:<qn>, worker:<id>, pause-all-workers
# ARGV: namespace, run_at, now, json(q1) .. json(qn)
# Pops the first item in queue order and records it in the same atomic step, so a reserved job
# is never only in the worker's memory. Honours Ruby's pause-all-workers flag at no extra cost.
# Returns {index, item, started, problems...}: index 0 when every queue is empty, -1 while paused.
_POP_LUA = r"""
-- queues are KEYS[k0 + 1 .. k0 + n], their JSON names ARGV[a0 + 1 .. a0 + n] (indexed, not
-- unpacked: a QUEUE=* worker may pass tens of thousands)
local function pop(k0, a0, n, worker_key, pause_key, ns, run_at, now)
  local paused = get_string(pause_key)
  if paused and string.lower(paused) == 'true' then return {-1, false, false, unpack(problems)} end
  for i = 1, n do
    local item = redis.pcall('LPOP', KEYS[k0 + i])
    if type(item) == 'table' then
      note(KEYS[k0 + i], 'is not a list: skipped')
    elseif item then
      local started = record(item, ARGV[a0 + i], worker_key, ns, run_at, now)
      return {i, item, started, unpack(problems)}
    end
  end
  return {0, false, false, unpack(problems)}
end
"""
RESERVE_LUA = _RECORD_LUA + _POP_LUA + r"""
local n = #KEYS - 2
return pop(0, 3, n, KEYS[n + 1], KEYS[n + 2], ARGV[1], ARGV[2], ARGV[3])
"""

#: A metrics hash takes no new job class past this many fields (a class has up to 18): the
#: totals never expire, and class names come from payloads anyone may write.
METRICS_MAX_FIELDS = 20_000

# One run in a metrics hash (FINISH_LUA's ARGV[7..10]): its fields are counters only pyresque
# writes, but the key may hold anything. A key that is not such a hash, or holds too many classes,
# is skipped and reported; a field that is not a number loses that one count. Returns 1 when the
# class is new in the hash (the minute's first run of it: time to set the hash's expiry), else
# another number, or false when nothing was recorded.
_METRICS_LUA = r"""
local function tally(key, class)
  local added = redis.pcall('HINCRBY', key, class .. '|p', 1)
  if type(added) == 'table' then note(key, 'is not a hash of counters: metrics not recorded'); return false end
  if added == 1 and redis.call('HLEN', key) > MAX_FIELDS then
    redis.call('HDEL', key, class .. '|p')
    note(key, 'holds too many job classes: metrics of ' .. class .. ' not recorded')
    return false
  end
  local broken = ARGV[9] == '1' and type(redis.pcall('HINCRBY', key, class .. '|f', 1)) == 'table'
  broken = type(redis.pcall('HINCRBY', key, class .. '|us', ARGV[8])) == 'table' or broken
  broken = type(redis.pcall('HINCRBY', key, class .. '|' .. ARGV[10], 1)) == 'table' or broken
  if broken then note(key, 'holds a field that is not a number: a metric of ' .. class .. ' not counted') end
  return added
end
""".replace("MAX_FIELDS", str(METRICS_MAX_FIELDS))

# KEYS: worker:<id>, stat:processed, stat:processed:<id>, status key, failed, stat:failed,
#       stat:failed:<id>, pyresque_failure:<job> (the status key's failure summary),
#       pyresque_metrics:<minute>, pyresque_metrics_total
# ARGV: status packet or '', status TTL ('' = none: a job waiting for its retry), failure record
#       or '', '1' on a retry, the job's exact working-on record ('' = unknown), failure summary
#       or '' (written, with the status's TTL, only beside a final status that was written),
#       then the run's metrics: job class ('' = record none), microseconds, '1' when it failed,
#       its histogram field ('b<i>'), the minute hash's TTL
# Job bookkeeping in one step. A retry (after a lost reply: Redis restart, network) acts only
# while the working-on record is still this job's, so it never counts a job twice nor deletes
# the record of the job reserved in the same (lost) call. The failure record is pushed before
# anything that could fail, and counters on keys that are not counters are skipped, so the
# outcome (status, failure record) is never lost half-way, nor written twice by a retry.
_FINISH_LUA = _METRICS_LUA + r"""
local function finish()
  if ARGV[4] == '1' then
    local current = get_string(KEYS[1])
    if not current or (ARGV[5] ~= '' and current ~= ARGV[5]) then return 0 end
  end
  if ARGV[3] ~= '' and type(redis.pcall('RPUSH', KEYS[5], ARGV[3])) == 'table' then
    note(KEYS[5], 'is not a list: a failure record was not stored')
  end
  if ARGV[1] ~= '' and ARGV[2] == '' then redis.call('SET', KEYS[4], ARGV[1], 'XX')
  elseif ARGV[1] ~= '' and redis.call('SET', KEYS[4], ARGV[1], 'XX', 'EX', ARGV[2]) and ARGV[6] ~= '' then
    local written = redis.pcall('SET', KEYS[8], ARGV[6], 'EX', ARGV[2])  -- {ok = 'OK'}, or {err = ...}
    if type(written) == 'table' and written['err'] then
      note(KEYS[8], 'could not be written: the failure summary was not stored')
    end
  end
  redis.call('DEL', KEYS[1])
  count(KEYS[2])
  count(KEYS[3])
  if ARGV[3] ~= '' then
    count(KEYS[6])
    count(KEYS[7])
  end
  if ARGV[7] ~= '' then
    if tally(KEYS[9], ARGV[7]) == 1 then redis.call('EXPIRE', KEYS[9], ARGV[11]) end
    tally(KEYS[10], ARGV[7])
  end
  return 1
end
"""
# Returns {1 (applied) or 0 (a retry that found the record gone), problems...}.
FINISH_LUA = _RECORD_LUA + _FINISH_LUA + "return {finish(), unpack(problems)}\n"

# KEYS: the ten FINISH_LUA keys, then queue:<q1> .. queue:<qn>, pause-all-workers
# ARGV: the eleven FINISH_LUA args, then namespace, run_at, now, json(q1) .. json(qn)
# The previous job's bookkeeping and the next reserve in one round trip (polling mode): the
# same two atomic steps as FINISH_LUA then RESERVE_LUA, sent together.
FINISH_RESERVE_LUA = _RECORD_LUA + _FINISH_LUA + _POP_LUA + r"""
finish()
local n = #KEYS - 11
return pop(10, 14, n, KEYS[1], KEYS[n + 11], ARGV[12], ARGV[13], ARGV[14])
"""

# KEYS: queues, queue:<q>, status key (or a dummy);  ARGV: queue name, item, WAITING packet or ''
# Enqueue: the status first (when tracked), then SADD + RPUSH, atomically.
PUSH_LUA = r"""
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3]) end
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('RPUSH', KEYS[2], ARGV[2])
"""

# KEYS: unique lock, status key (or a dummy), queues, queue:<q>;  ARGV: lock TTL ms, packet or '', q, item
# A ``@unique`` job is pushed only if no identical one holds the lock (queued or running).
PUSH_UNIQUE_LUA = r"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[4], ARGV[4])
return 1
"""

# KEYS: concurrency zset;  ARGV: member, limit, now, lease end
# Take one of a class's slots; slots whose lease ended (their worker died) are freed first.
ACQUIRE_SLOT_LUA = r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
"""

# KEYS: worker:<id>, queue:<q>, status key (or a dummy);  ARGV: item, WAITING packet or ''
# Put a reserved job back at the end of its queue (its class is at its concurrency limit), or
# at its head (ARGV[3] = 'head': the worker was told to stop before it could start the job).
REQUEUE_RESERVED_LUA = r"""
if ARGV[3] == 'head' then redis.call('LPUSH', KEYS[2], ARGV[1]) else redis.call('RPUSH', KEYS[2], ARGV[1]) end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('SET', KEYS[3], ARGV[2], 'XX') end
return 1
"""

# KEYS: status key;  ARGV: packet, TTL ('' for none)
# php-resque's rule: only tracked jobs are updated, so a missing key stays missing.
UPDATE_STATUS_LUA = r"""
if ARGV[2] == '' then
  return redis.call('SET', KEYS[1], ARGV[1], 'XX')
end
return redis.call('SET', KEYS[1], ARGV[1], 'XX', 'EX', ARGV[2])
"""

# KEYS: failed;  ARGV: index, expected record, replacement ('' removes), marker (for a removal)
# Acts on the failed list only if the record at the index is still the one the caller saw, so
# a list that changed underneath (resque-web's known race) is never edited at the wrong place.
# LREM removes by value, so a removal first marks the slot with a value no other record holds:
# random per call, since any fixed one could be planted in the list by whoever writes Redis.
EDIT_FAILED_LUA = r"""
local current = redis.call('LINDEX', KEYS[1], ARGV[1])
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[4])
  redis.call('LREM', KEYS[1], 1, ARGV[4])
else
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
"""


# KEYS: pruning_dead_workers_in_progress;  ARGV: our worker id
# Release the prune lock only if we still hold it. (Ruby lets it expire after 60 s; releasing
# ours at once lets the next worker start prune promptly.)
RELEASE_LOCK_LUA = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS: failed, queues, queue:<q>, status key, its pyresque_failure summary;
# ARGV: index, expected record, updated record, queue name, payload, status packet ('' for none),
#       marker ('' keeps the record, updated; else the record is removed, as in EDIT_FAILED_LUA)
# Ruby's requeue (LSET the record with retried_at, SADD queues, RPUSH the job) in one step, only if
# the record at the index is still the one the caller saw; or, with a marker, the job moved out of
# the list: pushed again and its record deleted in the same step. A script, not WATCH: workers
# appending failures would abort a WATCHed transaction again and again.
REQUEUE_FAILED_LUA = r"""
if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[7] ~= '' then
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[7])
  redis.call('LREM', KEYS[1], 1, ARGV[7])
else
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
end
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[4], ARGV[6])
  redis.call('DEL', KEYS[5])
end
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[5])
return 1
"""


# KEYS: worker:<id>:started, workers:heartbeat, workers, pyresque_prune_horizons
# ARGV: worker id, started, heartbeat, prune horizon, the oldest heartbeat that is still alive
# Register a worker id unless another live worker holds it (a restarted container with the same
# hostname and pid 1): its started key differs from ours and its heartbeat is fresh. ISO-8601
# heartbeats of one format compare as strings. Returns 1, or 0 when the id is taken.
REGISTER_LUA = _SAFE_LUA + r"""
local started = get_string(KEYS[1])
if started and started ~= ARGV[2] then
  local beat = redis.pcall('HGET', KEYS[2], ARGV[1])
  if type(beat) == 'string' and beat >= ARGV[5] then return {0} end
end
local function write(key, ...)
  local reply = redis.pcall(...)  -- SET answers a status table ({ok = 'OK'}): only .err is a refusal
  if type(reply) == 'table' and reply['err'] then note(key, 'is not the type Resque uses: not written') end
end
write(KEYS[3], 'SADD', KEYS[3], ARGV[1])
write(KEYS[1], 'SET', KEYS[1], ARGV[2])
write(KEYS[2], 'HSET', KEYS[2], ARGV[1], ARGV[3])
write(KEYS[4], 'HSET', KEYS[4], ARGV[1], ARGV[4])
return {1, unpack(problems)}
"""

# KEYS: reserved list 1, its queue 1, reserved list 2, its queue 2, ...
# Puts every job a waiting worker's BLMOVE parked back at the head of the queue it came from, in
# its original order (the list's head is the job taken last). A list or queue of the wrong type
# leaves its job where it is (not lost) and is reported. Returns {moved, problems...}.
RESTORE_PARKED_LUA = _SAFE_LUA + r"""
local moved = 0
for i = 1, #KEYS, 2 do
  while true do
    local item = redis.pcall('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'LEFT')
    if type(item) == 'table' then
      if item['err'] then note(KEYS[i], 'could not be put back on ' .. KEYS[i + 1] .. ': ' .. item['err']) end
      break
    end
    if not item then break end
    moved = moved + 1
  end
end
return {moved, unpack(problems)}
"""
