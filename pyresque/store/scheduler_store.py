"""Every Redis command of delayed jobs, recurring schedules and the scheduler's master lock.

A sibling of :mod:`pyresque.store.datastore` (same rules: the only modules that talk to Redis; multi-step
changes are Lua scripts listing their keys), kept apart because these keys belong to
resque-scheduler's layout, not Resque's. Key names come from :mod:`pyresque.wire.keys`.
"""

from __future__ import annotations

from typing import Any, Sequence

import redis

from ..wire.keys import Keys

# KEYS: delayed:<ts>, timestamps:<item>, delayed_queue_schedule, side hash, status key
# ARGV: item, "delayed:<ts>", ts, payload as a JSON string ('' = none), status packet ('' = none),
#       side hash expiry (unix time)
# resque-scheduler's delayed_push (RPUSH, SADD, ZADD; it sends them separately) plus, for a job
# with an id, its full payload appended to the side hash under the item's exact bytes, and its
# WAITING status: all or nothing. The side value is a JSON list of strings, grown by string
# splicing so that no payload is ever re-encoded by cjson (which would round queue_time).
DELAY_LUA = r"""
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
return 1
"""

# KEYS: delayed:<ts>, delayed_queue_schedule, side hash, queues, failed, stat:failed,
#       then per item: queue:<q> (any key for a failure), timestamps:<item>
# ARGV: ts member, n, m, n expected items, m x (side field, expected value or '', new value or ''),
#       n x (kind 'q' or 'f', queue name, payload or failure record)
# Moves the first n items of one due bucket, only if they and the side fields are still exactly
# what the caller read (else returns 0 and nothing changed): pushes each to its queue (SADD
# queues + RPUSH) or its failure record to the failed list, SREMs its timestamps: entry, LTRIMs
# the bucket, and when the bucket is empty DELs it and its side hash and ZREMs the timestamp.
# One script: a scheduler that dies mid-move has moved all of a batch or none of it, and no item
# is ever both pushed and still in its bucket (resque-scheduler's WATCH/MULTI can push twice).
# Like Ruby, a copy of an item left behind a batch boundary loses its timestamps: entry one batch
# early.
# Returns 2 when the bucket is gone, 1 when items remain, 0 when it changed underneath.
MOVE_LUA = r"""
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
if n > 0 then
  local current = redis.call('LRANGE', KEYS[1], 0, n - 1)
  if #current ~= n then return 0 end
  for i = 1, n do
    if current[i] ~= ARGV[3 + i] then return 0 end
  end
end
local s = 3 + n
for j = 0, m - 1 do
  local value = redis.call('HGET', KEYS[3], ARGV[s + 3 * j + 1])
  if (value or '') ~= ARGV[s + 3 * j + 2] then return 0 end
end
for j = 0, m - 1 do
  local new = ARGV[s + 3 * j + 3]
  if new == '' then
    redis.call('HDEL', KEYS[3], ARGV[s + 3 * j + 1])
  else
    redis.call('HSET', KEYS[3], ARGV[s + 3 * j + 1], new)
  end
end
local a = s + 3 * m
local member = 'delayed:' .. ARGV[1]
for i = 1, n do
  local kind, queue, data = ARGV[a + 3 * i - 2], ARGV[a + 3 * i - 1], ARGV[a + 3 * i]
  if kind == 'q' then
    redis.call('SADD', KEYS[4], queue)
    redis.call('RPUSH', KEYS[5 + 2 * i], data)
  else
    redis.call('RPUSH', KEYS[5], data)
    redis.call('INCRBY', KEYS[6], 1)
  end
  redis.call('SREM', KEYS[6 + 2 * i], member)
end
if n > 0 then redis.call('LTRIM', KEYS[1], n, -1) end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 2
end
return 1
"""

# KEYS: delayed:<ts>, delayed_queue_schedule, side hash, timestamps:<item>, status key
# ARGV: ts member, item, side expected ('' = leave the side hash alone), side new ('' = HDEL)
# Removes one copy of an item from its bucket, with the side payload that went with it and its
# status key, only if the side entry is still what the caller read. SREMs the timestamps: entry
# once no copy is left, and drops an emptied bucket as resque-scheduler's clean_up_timestamp.
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
if not left then redis.call('SREM', KEYS[4], 'delayed:' .. ARGV[1]) end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
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
REFRESH_LOCK_LUA = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: master lock;  ARGV: our value
# Release only our own lock, in one step (Ruby checks, then DELs, in two).
RELEASE_LOCK_LUA = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: delayed:last_enqueued_at, queues, queue:<q>, status key
# ARGV: schedule name, expected last value ('' = none yet), new value, queue name, payload,
#       status packet ('' = untracked)
# Fires one recurring tick only if the schedule's last_enqueued_at is still what the caller
# read, so two schedulers that both think they are master (a stalled one whose lock expired)
# can never enqueue the same tick twice.
FIRE_LUA = r"""
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
if ARGV[6] ~= '' then redis.call('SET', KEYS[4], ARGV[6]) end
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class SchedulerStore:
    """resque-scheduler's keyspace on one Redis connection pool."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis: Any = client
        self.keys = keys
        self._delay = client.register_script(DELAY_LUA)
        self._move = client.register_script(MOVE_LUA)
        self._remove = client.register_script(REMOVE_LUA)
        self._acquire = client.register_script(ACQUIRE_LOCK_LUA)
        self._refresh = client.register_script(REFRESH_LOCK_LUA)
        self._release = client.register_script(RELEASE_LOCK_LUA)
        self._fire = client.register_script(FIRE_LUA)

    # -- delayed queue -----------------------------------------------------------------------
    def delay(self, ts: int, item: str, payload_element: str | None, status_key: str | None,
              status_packet: str | None, side_expire_at: int) -> None:
        """Add one item to the bucket ``delayed:<ts>`` (see DELAY_LUA)."""
        k = self.keys
        keys = [k.delayed(ts), k.timestamps(item), k.delayed_schedule, k.delayed_payloads(ts), status_key or k.status("-")]
        args: list[Any] = [item, k.delayed_member(ts), ts, payload_element or "",
                           (status_packet or "") if status_key else "", side_expire_at]
        self._delay(keys=keys, args=args)

    def due_timestamps(self, now: int, count: int) -> list[bytes]:
        """The earliest ``count`` due bucket members, oldest first."""
        return list(self.redis.zrangebyscore(self.keys.delayed_schedule, "-inf", now, start=0, num=count))

    def bucket_head(self, ts: bytes | str, count: int) -> list[bytes]:
        return list(self.redis.lrange(self.keys.delayed(_text(ts)), 0, count - 1))

    def bucket(self, ts: bytes | str) -> list[bytes]:
        return list(self.redis.lrange(self.keys.delayed(_text(ts)), 0, -1))

    def side_payloads(self, ts: bytes | str) -> dict[bytes, bytes]:
        return dict(self.redis.hgetall(self.keys.delayed_payloads(_text(ts))))

    def move_batch(self, ts: bytes | str, items: Sequence[bytes], side: Sequence[tuple[bytes, bytes, str]],
                   actions: Sequence[tuple[str, str, str]]) -> int:
        """Move the bucket's first ``len(items)`` items atomically (see MOVE_LUA).

        ``side``: (field, expected value, new value); ``actions``: per item ('q', queue, payload)
        or ('f', '', failure record). Returns 2 (bucket gone), 1 (items left) or 0 (changed).
        """
        k = self.keys
        member = _text(ts)
        keys = [k.delayed(member), k.delayed_schedule, k.delayed_payloads(member), k.queues, k.failed, k.stat("failed")]
        for item, (kind, queue, _) in zip(items, actions):
            keys.append(k.queue(queue) if kind == "q" else k.failed)
            keys.append(k.timestamps(_text(item)))
        args: list[Any] = [member, len(items), len(side), *items]
        for field, expected, new in side:
            args += [field, expected, new]
        for kind, queue, data in actions:
            args += [kind, queue, data]
        return int(self._move(keys=keys, args=args))

    def remove_item(self, ts: bytes | str, item: bytes, side_expected: bytes | None, side_new: str,
                    status_key: str | None) -> bool:
        """Remove one copy of ``item`` from ``delayed:<ts>`` (see REMOVE_LUA)."""
        k = self.keys
        member = _text(ts)
        keys = [k.delayed(member), k.delayed_schedule, k.delayed_payloads(member), k.timestamps(_text(item)),
                status_key or k.status("-")]
        args: list[Any] = [member, item, side_expected or "", side_new]
        return bool(self._remove(keys=keys, args=args))

    def timestamps(self) -> list[bytes]:
        """Every bucket member, earliest first."""
        return list(self.redis.zrange(self.keys.delayed_schedule, 0, -1))

    def bucket_sizes(self, members: Sequence[bytes]) -> list[int]:
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.llen(self.keys.delayed(_text(member)))
        return [int(n) for n in pipe.execute()]

    def timestamp_count(self) -> int:
        return int(self.redis.zcard(self.keys.delayed_schedule))

    # -- master lock -------------------------------------------------------------------------
    def acquire_lock(self, value: str, ttl: int) -> bool:
        return bool(self._acquire(keys=[self.keys.scheduler_lock], args=[value, ttl]))

    def refresh_lock(self, value: str, ttl: int) -> bool:
        return bool(self._refresh(keys=[self.keys.scheduler_lock], args=[value, ttl]))

    def release_lock(self, value: str) -> bool:
        return bool(self._release(keys=[self.keys.scheduler_lock], args=[value]))

    def lock_holder(self) -> str | None:
        value = self.redis.get(self.keys.scheduler_lock)
        return None if value is None else _text(value)

    # -- recurring schedules -----------------------------------------------------------------
    def persistent_schedules(self) -> dict[str, bytes]:
        return {_text(name): value for name, value in self.redis.hgetall(self.keys.persistent_schedules).items()}

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

    def drain_schedules_changed(self) -> list[str]:
        """SPOP every changed name, as resque-scheduler's master does."""
        names: list[str] = []
        while True:
            popped = self.redis.spop(self.keys.schedules_changed, 100)
            if not popped:
                return names
            names += [_text(name) for name in popped]

    def last_enqueued(self) -> dict[str, str]:
        return {_text(name): _text(value) for name, value in self.redis.hgetall(self.keys.last_enqueued_at).items()}

    def fire(self, name: str, expected: str | None, new: str, queue: str, payload: str,
             status_key: str | None, status_packet: str | None) -> bool:
        """Enqueue one recurring tick unless another scheduler already did (see FIRE_LUA)."""
        k = self.keys
        keys = [k.last_enqueued_at, k.queues, k.queue(queue), status_key or k.status("-")]
        args = [name, expected or "", new, queue, payload, (status_packet or "") if status_key else ""]
        return bool(self._fire(keys=keys, args=args))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
