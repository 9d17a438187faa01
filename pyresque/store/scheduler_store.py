"""Every Redis command of delayed jobs, recurring schedules and the scheduler's master lock.

A sibling of :mod:`pyresque.store.datastore` (same rules: the only modules that talk to Redis; multi-step
changes are Lua scripts listing their keys), kept apart because these keys belong to
resque-scheduler's layout, not Resque's. Key names come from :mod:`pyresque.wire.keys`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import redis

from .. import defaults
from ..exceptions import KeyTypeError
from ..wire.keys import Keys

# KEYS: delayed:<ts>, timestamps:<item>, delayed_queue_schedule, side hash, status key
# ARGV: item, "delayed:<ts>", ts, payload as a JSON string ('' = none), status packet ('' = none),
#       side hash expiry (unix time)
# resque-scheduler's delayed_push (RPUSH, SADD, ZADD; it sends them separately) plus, for a job
# with an id, its full payload appended to the side hash under the item's exact bytes, and its
# WAITING status: all or nothing. The side value is a JSON list of strings, grown by string
# splicing so that no payload is ever re-encoded by cjson (which would round queue_time).
# A script stopped by an error keeps what it wrote, so the types are checked before any write:
# a key another program filled with something else is named in {0, key, type}, nothing written.
DELAY_LUA = r"""
local expected = {'list', 'set', 'zset', 'hash'}
for i = 1, 4 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and kind ~= expected[i] then return {0, KEYS[i], kind} end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3])
if ARGV[4] ~= '' then
  local current = redis.call('HGET', KEYS[4], ARGV[1])
  if current and string.sub(current, 1, 1) == '[' and string.sub(current, -1) == ']' and current ~= '[]' then
    current = string.sub(current, 1, -2) .. ',' .. ARGV[4] .. ']'
  else
    current = '[' .. ARGV[4] .. ']'
  end
  redis.call('HSET', KEYS[4], ARGV[1], current)
  redis.call('EXPIREAT', KEYS[4], ARGV[6])
end
if ARGV[5] ~= '' then redis.call('SET', KEYS[5], ARGV[5]) end
return {1}
"""

# KEYS: delayed:<ts>, delayed_queue_schedule, side hash, queues, failed, stat:failed,
#       then per item: queue:<q> (a failure: its status key, or any key), timestamps:<item>
# ARGV: ts member, n, m, status TTL, n expected items, m x (side field, expected value or '', new
#       value or ''), n x (kind 'q' or 'f', queue name (a failure: status packet or ''), payload or
#       failure record)
# Moves the first n items of one due bucket, only if they and the side fields are still exactly
# what the caller read (else {0} and nothing changed): pushes each to its queue (SADD queues +
# RPUSH) or its failure record to the failed list (with status FAILED when its status key
# exists), SREMs its timestamps: entry, LTRIMs the bucket, and when the bucket is empty DELs it
# and its side hash and ZREMs the timestamp.
# One script: a scheduler that dies mid-move has moved all of a batch or none of it, and no item
# is ever both pushed and still in its bucket (resque-scheduler's WATCH/MULTI can push twice).
# A script stopped by an error keeps what it wrote, so every push target is checked before the
# first write: a queue that is not a list returns {3, its names} (the caller fails those items
# instead), a failed list that is not a list returns {4}. Other keys of the wrong type (queues,
# stat:failed, timestamps:) are skipped and named after the code.
# Like Ruby, a copy of an item left behind a batch boundary loses its timestamps: entry one batch
# early.
# Returns {2, …} when the bucket is gone, {1, …} when items remain, {0} when it changed underneath.
MOVE_LUA = r"""
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local function holds(key, ...)
  local kind = redis.call('TYPE', key)['ok']
  for _, ok in ipairs({'none', ...}) do if kind == ok then return true end end
  return false
end
if n > 0 then
  local current = redis.call('LRANGE', KEYS[1], 0, n - 1)
  if #current ~= n then return {0} end
  for i = 1, n do
    if current[i] ~= ARGV[4 + i] then return {0} end
  end
end
local s = 4 + n
for j = 0, m - 1 do
  local value = redis.call('HGET', KEYS[3], ARGV[s + 3 * j + 1])
  if (value or '') ~= ARGV[s + 3 * j + 2] then return {0} end
end
local a = s + 3 * m
local blocked, failing = {}, false
for i = 1, n do
  if ARGV[a + 3 * i - 2] ~= 'q' then
    failing = true
  elseif not holds(KEYS[5 + 2 * i], 'list') then
    blocked[#blocked + 1] = ARGV[a + 3 * i - 1]
  end
end
if #blocked > 0 then return {3, unpack(blocked)} end
if failing and not holds(KEYS[5], 'list') then return {4} end
local problems = {}
local function try(note, ...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply['err'] then problems[#problems + 1] = note end
end
for j = 0, m - 1 do
  local new = ARGV[s + 3 * j + 3]
  if new == '' then
    redis.call('HDEL', KEYS[3], ARGV[s + 3 * j + 1])
  else
    redis.call('HSET', KEYS[3], ARGV[s + 3 * j + 1], new)
  end
end
local member = 'delayed:' .. ARGV[1]
for i = 1, n do
  local kind, arg, data = ARGV[a + 3 * i - 2], ARGV[a + 3 * i - 1], ARGV[a + 3 * i]
  if kind == 'q' then
    try(KEYS[4] .. ' is not a set: queue name not added', 'SADD', KEYS[4], arg)
    redis.call('RPUSH', KEYS[5 + 2 * i], data)
  else
    redis.call('RPUSH', KEYS[5], data)
    try(KEYS[6] .. ' is not an integer: not counted', 'INCRBY', KEYS[6], 1)
    if arg ~= '' and redis.call('EXISTS', KEYS[5 + 2 * i]) == 1 then
      redis.call('SET', KEYS[5 + 2 * i], arg, 'EX', ARGV[4])
    end
  end
  try(KEYS[6 + 2 * i] .. ' is not a set: left as it is', 'SREM', KEYS[6 + 2 * i], member)
end
if n > 0 then redis.call('LTRIM', KEYS[1], n, -1) end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[3])
  try(KEYS[2] .. ' is not a zset: timestamp not removed', 'ZREM', KEYS[2], ARGV[1])
  return {2, unpack(problems)}
end
return {1, unpack(problems)}
"""

# KEYS: delayed:<ts>, delayed_queue_schedule, side hash, timestamps:<item>, status key
# ARGV: ts member, item, side expected ('' = leave the side hash alone), side new ('' = HDEL)
# Removes one copy of an item from its bucket, with the side payload that went with it and its
# status key, only if the side entry is still what the caller read. SREMs the timestamps: entry
# once no copy is left, and drops an emptied bucket as resque-scheduler's clean_up_timestamp.
# Those two touch keys of resque-scheduler's that another program may have broken: after the
# LREM, an error must not stop the script half-way, so they are tried (pcall) and skipped.
# Returns 1 when removed, 0 when the item is gone or the side entry changed.
REMOVE_LUA = r"""
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[3], ARGV[2]) ~= ARGV[3] then return 0 end
end
if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 0 then return 0 end
if ARGV[3] ~= '' then
  if ARGV[4] == '' then redis.call('HDEL', KEYS[3], ARGV[2]) else redis.call('HSET', KEYS[3], ARGV[2], ARGV[4]) end
  redis.call('DEL', KEYS[5])
end
local left = false
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if item == ARGV[2] then left = true break end
end
if not left then redis.pcall('SREM', KEYS[4], 'delayed:' .. ARGV[1]) end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.pcall('ZREM', KEYS[2], ARGV[1])
end
return 1
"""

# The master lock may be anything another program left there, even a hash: every lock script
# reads it through holder(), its value for a string, '(a <type>)' for anything else, false if none.
_LOCK_HOLDER_LUA = r"""
local function holder(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return false end
  if kind ~= 'string' then return '(a ' .. kind .. ')' end
  return redis.call('GET', key)
end
"""

# KEYS: master lock;  ARGV: our value, TTL
# resque-scheduler's acquire (lock/resilient.rb): SETNX, then EXPIRE when it was ours to set.
ACQUIRE_LOCK_LUA = r"""
if redis.call('SETNX', KEYS[1], ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: master lock;  ARGV: our value, TTL
# resque-scheduler's locked?: refresh the TTL only while the lock holds our value.
REFRESH_LOCK_LUA = _LOCK_HOLDER_LUA + r"""
if holder(KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: master lock;  ARGV: our value
# Release only our own lock, in one step (Ruby checks, then DELs, in two).
RELEASE_LOCK_LUA = _LOCK_HOLDER_LUA + r"""
if holder(KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: master lock.  Returns {holder or false, PTTL in ms (-1: none, -2: no lock)}.
LOCK_STATE_LUA = _LOCK_HOLDER_LUA + r"""
return {holder(KEYS[1]), redis.call('PTTL', KEYS[1])}
"""

# KEYS: master lock;  ARGV: holder seen, TTL
# A lock without a TTL never expires, whoever set it: give it one, if it is still that holder's
# and still has none. Returns 1 when given.
EXPIRE_LOCK_LUA = _LOCK_HOLDER_LUA + r"""
if holder(KEYS[1]) == ARGV[1] and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: master lock;  ARGV: holder seen, its PTTL then (ms), our value, TTL
# Take over a lock whose holder stopped refreshing it: only if it is still that holder's and its
# TTL has not been reset since it was read (a refresh would have raised it). SET replaces a key of
# any type. Returns 1 when the lock is ours.
TAKE_OVER_LOCK_LUA = _LOCK_HOLDER_LUA + r"""
if holder(KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
return 1
"""

# KEYS: delayed:last_enqueued_at, queues, queue:<q>, status key
# ARGV: schedule name, expected last value ('' = none yet), new value, queue name, payload,
#       status packet ('' = untracked)
# Fires one recurring tick only if the schedule's last_enqueued_at is still what the caller
# read, so two schedulers that both think they are master (a stalled one whose lock expired)
# can never enqueue the same tick twice. A queue key that is not a list is found before the
# first write (an error would stop the script half-way): -1, nothing written. A queues set of the
# wrong type is skipped.
# Returns 1 when fired, 0 when another scheduler fired that tick, -1 when the queue is not a list.
FIRE_LUA = r"""
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
local kind = redis.call('TYPE', KEYS[3])['ok']
if kind ~= 'list' and kind ~= 'none' then return -1 end
if ARGV[6] ~= '' then redis.call('SET', KEYS[4], ARGV[6]) end
redis.pcall('SADD', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class Action(NamedTuple):
    """What a move does with one item: push ``data`` to ``queue`` (kind ``"q"``), or push the failure
    record ``data`` (kind ``"f"``) and, when the job is tracked, write ``packet`` to ``status_key``."""

    kind: str
    queue: str
    data: str
    status_key: str = ""
    packet: str = ""


#: MOVE_LUA's answers.
MOVE_CHANGED = 0  # the bucket or its side hash changed since it was read: nothing moved
MOVE_SOME_LEFT = 1
MOVE_GONE = 2  # the bucket is empty and gone
MOVE_QUEUES_NOT_LISTS = 3  # nothing moved: fail the items bound for these queues instead
MOVE_FAILED_NOT_LIST = 4  # nothing moved: there is nowhere to put a failure


class MoveReply(NamedTuple):
    """MOVE_LUA's answer: a ``MOVE_*`` code and, for MOVE_QUEUES_NOT_LISTS, those queues."""

    code: int
    queues: list[str]


class SchedulerStore:
    """resque-scheduler's keyspace on one Redis connection pool."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis: Any = client
        self.keys = keys
        #: Keys of the wrong type met (another program's doing), until :meth:`take_problems`.
        self.problems: list[str] = []
        self._delay = client.register_script(DELAY_LUA)
        self._move = client.register_script(MOVE_LUA)
        self._remove = client.register_script(REMOVE_LUA)
        self._acquire = client.register_script(ACQUIRE_LOCK_LUA)
        self._refresh = client.register_script(REFRESH_LOCK_LUA)
        self._release = client.register_script(RELEASE_LOCK_LUA)
        self._lock_state = client.register_script(LOCK_STATE_LUA)
        self._expire_lock = client.register_script(EXPIRE_LOCK_LUA)
        self._take_over = client.register_script(TAKE_OVER_LOCK_LUA)
        self._fire = client.register_script(FIRE_LUA)

    # -- delayed queue -----------------------------------------------------------------------
    def delay(self, ts: int, item: str, payload_element: str | None, status_key: str | None,
              status_packet: str | None, side_expire_at: int) -> None:
        """Add one item to the bucket ``delayed:<ts>`` (see DELAY_LUA)."""
        k = self.keys
        keys = [k.delayed(ts), k.timestamps(item), k.delayed_schedule, k.delayed_payloads(ts), status_key or k.status("-")]
        args: list[Any] = [item, k.delayed_member(ts), ts, payload_element or "",
                           (status_packet or "") if status_key else "", side_expire_at]
        done = self._delay(keys=keys, args=args)
        if not int(done[0]):
            raise KeyTypeError(f"{_text(done[1])} holds a {_text(done[2])}, not what resque-scheduler keeps "
                               "there: nothing was scheduled")

    def due_timestamps(self, now: int, count: int) -> list[bytes]:
        """The earliest ``count`` due bucket members, oldest first (none if the zset is not one)."""
        k = self.keys
        return list(self._tolerate(k.delayed_schedule, [], "no delayed job can move",
                                   lambda: self.redis.zrangebyscore(k.delayed_schedule, "-inf", now, start=0, num=count)))

    def bucket_head(self, ts: bytes | str, count: int) -> list[bytes] | None:
        """The first ``count`` items of a bucket; ``None`` (noted) when it is not a list."""
        key = self.keys.delayed(ts)
        return self._tolerate(key, None, "left as it is", lambda: list(self.redis.lrange(key, 0, count - 1)))

    def bucket(self, ts: bytes | str) -> list[bytes] | None:
        key = self.keys.delayed(ts)
        return self._tolerate(key, None, "left as it is", lambda: list(self.redis.lrange(key, 0, -1)))

    def side_payloads(self, ts: bytes | str) -> dict[bytes, bytes]:
        """The bucket's side hash; empty (noted) when it is not a hash, so its items still move."""
        key = self.keys.delayed_payloads(ts)
        return self._tolerate(key, {}, "ids of its jobs lost", lambda: dict(self.redis.hgetall(key)))

    def move_batch(self, ts: bytes | str, items: Sequence[bytes], side: Sequence[tuple[bytes, bytes, str]],
                   actions: Sequence[Action], status_ttl: int = defaults.STATUS_TTL) -> MoveReply:
        """Move the bucket's first ``len(items)`` items atomically (see MOVE_LUA).

        ``side``: (field, expected value, new value); ``actions``: one per item.
        """
        k = self.keys
        keys: list[Any] = [k.delayed(ts), k.delayed_schedule, k.delayed_payloads(ts), k.queues, k.failed, k.stat("failed")]
        for item, action in zip(items, actions):
            keys.append(k.queue(action.queue) if action.kind == "q" else action.status_key or k.failed)
            keys.append(k.timestamps(item))
        args: list[Any] = [ts, len(items), len(side), status_ttl, *items]
        for field, expected, new in side:
            args += [field, expected, new]
        for action in actions:
            args += [action.kind, action.queue if action.kind == "q" else action.packet, action.data]
        reply = self._move(keys=keys, args=args)
        code, rest = int(reply[0]), [_text(value) for value in reply[1:]]
        if code == MOVE_QUEUES_NOT_LISTS:
            return MoveReply(code, rest)
        if code == MOVE_FAILED_NOT_LIST:
            self._note(k.failed, f"is a {self.key_type(k.failed)}, not a list: bad delayed items cannot be failed, "
                                 "their bucket waits")
        self.problems += [_short(problem) for problem in rest]
        return MoveReply(code, [])

    def remove_item(self, ts: bytes | str, item: bytes, side_expected: bytes | None, side_new: str,
                    status_key: str | None) -> bool:
        """Remove one copy of ``item`` from ``delayed:<ts>`` (see REMOVE_LUA)."""
        k = self.keys
        keys: list[Any] = [k.delayed(ts), k.delayed_schedule, k.delayed_payloads(ts), k.timestamps(item),
                           status_key or k.status("-")]
        args: list[Any] = [ts, item, side_expected or "", side_new]
        return bool(self._remove(keys=keys, args=args))

    def timestamps(self) -> list[bytes]:
        """Every bucket member, earliest first (none if the zset is not one)."""
        key = self.keys.delayed_schedule
        return list(self._tolerate(key, [], "no delayed job can be read", lambda: self.redis.zrange(key, 0, -1)))

    def bucket_sizes(self, members: Sequence[bytes]) -> list[int | None]:
        """LLEN of each bucket; ``None`` for one that is not a list."""
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.llen(self.keys.delayed(member))
        return [None if isinstance(n, redis.ResponseError) else int(n) for n in pipe.execute(raise_on_error=False)]

    # -- keys another program broke ----------------------------------------------------------
    def take_problems(self) -> list[str]:
        """Keys of the wrong type skipped since the last call (the scheduler logs each once)."""
        taken, self.problems = self.problems, []
        return taken

    def _tolerate(self, key: str | bytes, default: Any, effect: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except redis.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            self._note(key, f"is a {self.key_type(key)}: {effect}")
            return default

    def _note(self, key: str | bytes, what: str) -> None:
        self.problems.append(_short(f"{_text(key)} {what}"))

    def key_type(self, key: str | bytes) -> str:
        return _text(self.redis.type(key))

    # -- master lock -------------------------------------------------------------------------
    def acquire_lock(self, value: str, ttl: int) -> bool:
        return bool(self._acquire(keys=[self.keys.scheduler_lock], args=[value, ttl]))

    def refresh_lock(self, value: str, ttl: int) -> bool:
        return bool(self._refresh(keys=[self.keys.scheduler_lock], args=[value, ttl]))

    def release_lock(self, value: str) -> bool:
        return bool(self._release(keys=[self.keys.scheduler_lock], args=[value]))

    def lock_state(self) -> tuple[bytes | None, int]:
        """(holder, PTTL in ms): the value (``(a hash)`` for a key of another type) or ``None``,
        and -1 when the lock has no TTL."""
        holder, pttl = self._lock_state(keys=[self.keys.scheduler_lock])
        return (holder or None), int(pttl)

    def lock_holder(self) -> str | None:
        holder = self.lock_state()[0]
        return None if holder is None else _text(holder)

    def expire_lock(self, holder: bytes, ttl: int) -> bool:
        """Give a lock without a TTL one, if ``holder`` still has it (see EXPIRE_LOCK_LUA)."""
        return bool(self._expire_lock(keys=[self.keys.scheduler_lock], args=[holder, ttl]))

    def take_over_lock(self, holder: bytes, pttl_seen: int, value: str, ttl: int) -> bool:
        """Make the lock ours if ``holder`` has not refreshed it since (see TAKE_OVER_LOCK_LUA)."""
        return bool(self._take_over(keys=[self.keys.scheduler_lock], args=[holder, pttl_seen, value, ttl]))

    # -- recurring schedules -----------------------------------------------------------------
    def persistent_schedules(self) -> dict[bytes, bytes]:
        """Name -> JSON config, both exactly as stored (none if the hash is not one)."""
        key = self.keys.persistent_schedules
        return dict(self._tolerate(key, {}, "no persisted schedule can be read", lambda: self.redis.hgetall(key)))

    def set_schedule(self, name: str, config_json: str) -> None:
        """resque-scheduler's set_schedule with ``persist: true``: HSET, then flag the change."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.persistent_schedules, name, config_json)
        pipe.sadd(self.keys.schedules_changed, name)
        pipe.execute()

    def remove_schedule(self, name: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.persistent_schedules, name)
        pipe.sadd(self.keys.schedules_changed, name)
        return bool(pipe.execute()[0])

    # -- what the running master loaded (pyresque's own key) ---------------------------------
    def publish_loaded(self, entries: dict[str, str], ttl: int) -> None:
        """Replace the published schedules (name -> JSON) in one transaction, expiring in ``ttl``."""
        key = self.keys.scheduler_loaded
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        if entries:
            pipe.hset(key, mapping=entries)
            pipe.expire(key, ttl)
        pipe.execute()

    def refresh_loaded(self, ttl: int) -> None:
        """Each master pass: keep the published schedules alive as long as the lock."""
        self.redis.expire(self.keys.scheduler_loaded, ttl)

    def clear_loaded(self) -> None:
        self.redis.delete(self.keys.scheduler_loaded)

    def loaded(self) -> dict[bytes, bytes]:
        """Name -> JSON, as published (none if the key is not a hash)."""
        key = self.keys.scheduler_loaded
        return dict(self._tolerate(key, {}, "the running scheduler's schedules cannot be read",
                                   lambda: self.redis.hgetall(key)))

    def drain_schedules_changed(self) -> list[str]:
        """SPOP every changed name, as resque-scheduler's master does."""
        names: list[str] = []
        key = self.keys.schedules_changed
        while True:
            popped = self._tolerate(key, None, "changes are seen on USR2 only", lambda: self.redis.spop(key, 100))
            if not popped:
                return names
            names += [_text(name) for name in popped]

    def last_enqueued(self) -> dict[str, str]:
        key = self.keys.last_enqueued_at
        last = self._tolerate(key, {}, "no recurring job can fire", lambda: self.redis.hgetall(key))
        return {_text(name): _text(value) for name, value in last.items()}

    def fire(self, name: str, expected: str | None, new: str, queue: str, payload: str,
             status_key: str | None, status_packet: str | None) -> int:
        """Enqueue one recurring tick unless another scheduler already did (see FIRE_LUA).

        Returns 1 (fired), 0 (already fired) or -1: not fired, because its queue or
        ``last_enqueued_at`` holds the wrong type (noted). A tick that cannot be recorded would
        fire again every pass, so it does not fire at all.
        """
        k = self.keys
        keys = [k.last_enqueued_at, k.queues, k.queue(queue), status_key or k.status("-")]
        args = [name, expected or "", new, queue, payload, (status_packet or "") if status_key else ""]
        done = int(self._tolerate(k.last_enqueued_at, -2, "no recurring job can fire",
                                  lambda: self._fire(keys=keys, args=args)))
        if done == -1:
            self._note(k.queue(queue), f"is a {self.key_type(k.queue(queue))}, not a list: schedule {name!r} cannot fire")
        return max(done, -1)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _short(text: str) -> str:
    """One line of at most 300 characters: a key may hold a whole item (``timestamps:<json>``)."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= 300 else text[:297] + "..."
