"""Every Redis command pyresque sends, grouped by concern like Resque's ``data_store.rb``.

Nothing above this room talks to Redis directly. Multi-step changes that must not be seen
half-done (reserve + working-on record, job bookkeeping, pruning) are MULTI transactions here or
Lua scripts (:mod:`.scripts`, each with the keys it touches listed in its header); the
scheduler's commands are :mod:`.scheduler_store`'s.
"""

from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import redis

from .. import defaults
from ..wire import payload as wire
from ..wire.keys import METRIC_BUCKET, METRIC_BUCKETS_MS, METRICS_RETENTION, Keys
from .failed_list import FailedListCommands
from .scripts import (
    ACQUIRE_SLOT_LUA,
    EDIT_FAILED_LUA,
    FINISH_LUA,
    FINISH_RESERVE_LUA,
    PUSH_LUA,
    PUSH_UNIQUE_LUA,
    REGISTER_LUA,
    RELEASE_LOCK_LUA,
    REQUEUE_FAILED_LUA,
    REQUEUE_RESERVED_LUA,
    RESERVE_LUA,
    UPDATE_STATUS_LUA,
)

#: ``PYRESQUE_METRICS=0`` in a worker's environment: record no per-class metrics (README "Metrics").
METRICS_ENV = "PYRESQUE_METRICS"
#: The longest class name the metrics keep (a payload's class may be any string, of any size).
METRIC_CLASS_CHARS = 200


@dataclass
class Bookkeeping:
    """What a finished job leaves to write: its final status packet and failure record, and the
    run for the per-class metrics (:meth:`timed`)."""

    status_key: str | None = None
    status_packet: str | None = None
    failure_record: str | None = None
    retry: bool = False  # a previous attempt may have been applied: act only if not
    final: bool = True  # False: the status waits for a retry and must not expire
    record: str = ""  # the job's exact working-on record, which a retry must still find
    _summary: str | None = field(default=None, repr=False)
    #: for the metrics: job class ('' records none), microseconds, failed, epoch second it ended
    run: tuple[str, int, bool, int] = ("", 0, False, 0)

    def timed(self, job_class: str, seconds: float, failed: bool) -> None:
        """Count this run in its class's metrics, in the minute it ends (now)."""
        self.run = (job_class[:METRIC_CLASS_CHARS], max(0, round(seconds * 1e6)), failed, int(time.time()))

    def args(self, status_ttl: int) -> list[Any]:
        ttl = status_ttl if self.final else ""
        job_class, micros, failed, _ = self.run
        bucket = f"{METRIC_BUCKET}{bisect.bisect_left(METRIC_BUCKETS_MS, micros / 1000)}"
        return [self.status_packet or "", ttl, self.failure_record or "", "1" if self.retry else "0", self.record,
                self.failure_summary(), job_class, micros, "1" if failed else "0", bucket, METRICS_RETENTION]

    def failure_summary(self) -> str:
        """The side key's JSON (the failure's words) for a tracked job that failed for good:
        decoded once from the failure record, here and not in the script, to spare Redis' time."""
        if not (self.final and self.status_packet and self.failure_record):
            return ""
        if self._summary is None:
            self._summary = wire.encode_failure_summary(self.failure_record, self.status_packet)
        return self._summary


class AllPaused(Exception):
    """Ruby's ``pause-all-workers`` flag is set: reserve nothing."""


class DataStore(FailedListCommands):
    """Resque's keyspace on one Redis connection pool (the failed list's commands: :mod:`.failed_list`)."""

    def __init__(self, client: redis.Redis, keys: Keys, status_ttl: int = defaults.STATUS_TTL,
                 metrics: bool | None = None) -> None:
        # Typed loosely: redis-py's stubs type replies as bytes | str by decode_responses.
        self.redis: Any = client
        self.keys = keys
        #: "<key> <problem>" for each key of the wrong type a script skipped since the caller last
        #: took them (:meth:`take_problems`): the worker logs each once, and goes on
        self.problems: list[str] = []
        self.final_status_ttl = status_ttl
        #: workers record per-class metrics with each job's bookkeeping (off: PYRESQUE_METRICS=0)
        self.metrics = os.environ.get(METRICS_ENV, "1").strip() != "0" if metrics is None else metrics
        self._reserve = client.register_script(RESERVE_LUA)
        self._register = client.register_script(REGISTER_LUA)
        self._finish = client.register_script(FINISH_LUA)
        self._finish_reserve = client.register_script(FINISH_RESERVE_LUA)
        self._update_status = client.register_script(UPDATE_STATUS_LUA)
        self._edit_failed = client.register_script(EDIT_FAILED_LUA)
        self._requeue_failed = client.register_script(REQUEUE_FAILED_LUA)
        self._release_lock = client.register_script(RELEASE_LOCK_LUA)
        self._push = client.register_script(PUSH_LUA)
        self._push_unique = client.register_script(PUSH_UNIQUE_LUA)
        self._acquire_slot = client.register_script(ACQUIRE_SLOT_LUA)
        self._requeue_reserved = client.register_script(REQUEUE_RESERVED_LUA)

    def allow_connections(self, count: int) -> None:
        """Let the pool hold at least ``count`` connections at once. redis-py caps a pool at 100
        and raises "Too many connections" beyond that; a threaded worker needs one per slot (each
        slot holds one for a whole BLPOP) plus its main thread's. A blocking pool waits instead."""
        pool = self.redis.connection_pool
        if isinstance(pool, redis.BlockingConnectionPool):
            return
        if isinstance(getattr(pool, "max_connections", None), int) and pool.max_connections < count:
            pool.max_connections = count

    # -- queue access ------------------------------------------------------------------------
    def push(self, queue: str, item: str, status_key: str | None = None, status_packet: str | None = None) -> None:
        """SADD queues + RPUSH, and the WAITING packet first when tracked, in one atomic step.

        php-resque pushes before it writes the status, so a blocking worker can pop the job
        before the key exists and RUNNING is never recorded (vector b4); here the key is
        always there first. One EVALSHA: one round trip, less client work than a pipeline.
        """
        keys = [self.keys.queues, self.keys.queue(queue), status_key or self.keys.status("-")]
        self.call(self._push, keys, [queue, item, status_packet if status_key else ""])

    def call(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA through the client's plain command path (cheaper than ``Script.__call__``);
        a server that lost its script cache (restart, SCRIPT FLUSH) gets it loaded again."""
        try:
            return self.redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return script(keys=keys, args=args)

    def push_unique(self, lock_key: str, lock_ttl: float, queue: str, item: str,
                    status_key: str | None, status_packet: str | None) -> bool:
        """Push unless an identical ``@unique`` job holds the lock; True when pushed."""
        keys = [lock_key, status_key or self.keys.status("-"), self.keys.queues, self.keys.queue(queue)]
        return bool(self._push_unique(keys=keys, args=[int(lock_ttl * 1000), status_packet or "", queue, item]))

    def release_unique(self, lock_key: str) -> None:
        self.redis.delete(lock_key)

    def acquire_slot(self, slots_key: str, worker_id: str, limit: int, now: float, lease: float) -> bool:
        return bool(self._acquire_slot(keys=[slots_key], args=[worker_id, limit, now, now + lease]))

    def release_slot(self, slots_key: str, worker_id: str) -> None:
        self.redis.zrem(slots_key, worker_id)

    def requeue_reserved(self, worker_id: str, queue: str, item: bytes, status_key: str | None,
                         status_packet: str | None, at_head: bool = False) -> None:
        keys = [self.keys.worker(worker_id), self.keys.queue(queue), status_key or self.keys.status("-")]
        self._requeue_reserved(keys=keys, args=[item, status_packet or "", "head" if at_head else "tail"])

    def push_many(self, queue: str, items: Sequence[tuple[str, str | None, str | None]]) -> None:
        """Bulk push in pipelines of ``defaults.BULK_BATCH``; each item is (payload, status key, packet)."""
        qkey = self.keys.queue(queue)
        for start in range(0, len(items), defaults.BULK_BATCH):
            batch = items[start:start + defaults.BULK_BATCH]
            pipe = self.redis.pipeline(transaction=True)
            statuses = {k: p for _, k, p in batch if k is not None}
            if statuses:
                pipe.mset(statuses)
            pipe.sadd(self.keys.queues, queue)
            pipe.rpush(qkey, *[item for item, _, _ in batch])
            pipe.execute()

    def queue_names(self) -> list[str]:
        names = self._tolerate(self.keys.queues, set(), lambda: self.redis.smembers(self.keys.queues))
        return sorted(_text(name) for name in names)

    def queue_sizes(self, names: Iterable[str]) -> dict[str, int]:
        names = list(names)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.keys.queue(name))
        return dict(zip(names, pipe.execute()))

    def queue_size(self, queue: str) -> int:
        return int(self.redis.llen(self.keys.queue(queue)))

    def peek(self, queue: str, start: int = 0, count: int = 1) -> list[bytes]:
        if count <= 0:
            return []
        return list(self.redis.lrange(self.keys.queue(queue), start, start + count - 1))

    def iter_queue(self, queue: str, page: int = 500) -> Iterator[bytes]:
        """Walk a queue in pages; items added or removed meanwhile may be seen or skipped."""
        start = 0
        while True:
            chunk = self.redis.lrange(self.keys.queue(queue), start, start + page - 1)
            yield from chunk
            if len(chunk) < page:
                return
            start += page

    def remove_item(self, queue: str, item: bytes) -> int:
        """LREM one exact item: atomic, and a no-op when a worker popped it first."""
        return int(self.redis.lrem(self.keys.queue(queue), 1, item))

    def delete_queue(self, queue: str) -> int:
        """DEL the list and SREM it from ``queues``; returns how many jobs were dropped."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.llen(self.keys.queue(queue))
        pipe.delete(self.keys.queue(queue))
        pipe.srem(self.keys.queues, queue)
        return int(pipe.execute()[0])

    # -- reserving (worker) ------------------------------------------------------------------
    def reserve(
        self, queues: Sequence[str], worker_id: str, run_at: str, now: int, finished: Bookkeeping | None = None
    ) -> tuple[str, bytes, int | None] | None:
        """Atomically pop the first job in queue order and write the working-on record.

        With ``finished``, the previous job's bookkeeping is applied first in the same call.
        Returns (queue, item, status started) or None; raises :class:`AllPaused` while Ruby's
        ``pause-all-workers`` is set (after applying ``finished``).
        """
        qkeys = [self.keys.queue(q) for q in queues]
        qargs = [wire.encode_ruby(q) for q in queues]
        if finished is None:
            keys = qkeys + [self.keys.worker(worker_id), self.keys.pause_all]
            found = self._reserve(keys=keys, args=[self.keys.ns, run_at, now, *qargs])
        else:
            keys = self._finish_keys(worker_id, finished) + qkeys + [self.keys.pause_all]
            args = self._finish_args(finished) + [self.keys.ns, run_at, now, *qargs]
            found = self._finish_reserve(keys=keys, args=args)
        index, item, started = found[:3]
        self.problems.extend(_text(p) for p in found[3:])
        if int(index) == -1:
            raise AllPaused()
        if int(index) == 0:
            return None
        return queues[int(index) - 1], item, _started(started)

    def finish_job(self, worker_id: str, finished: Bookkeeping) -> bool:
        """The bookkeeping after a job: one round trip; safe to retry (see FINISH_LUA)."""
        done = self._finish(keys=self._finish_keys(worker_id, finished), args=self._finish_args(finished))
        self.problems.extend(_text(p) for p in done[1:])
        return bool(done[0])

    def take_problems(self) -> list[str]:
        """The keys of the wrong type the scripts skipped since the last call."""
        taken, self.problems = self.problems, []
        return taken

    def _finish_keys(self, worker_id: str, finished: Bookkeeping) -> list[str]:
        k, status_key = self.keys, finished.status_key
        return [
            k.worker(worker_id), k.stat("processed"), k.worker_stat("processed", worker_id),
            status_key or k.status("-"), k.failed, k.stat("failed"), k.worker_stat("failed", worker_id),
            k.job_failure_of(status_key) if status_key else k.status("-"),
            k.metrics_minute(finished.run[3]), k.metrics_total,
        ]

    def _finish_args(self, finished: Bookkeeping) -> list[Any]:
        args = finished.args(self.final_status_ttl)
        if not self.metrics:
            args[6] = ""  # no class: the script records no metrics
        return args

    # -- job status --------------------------------------------------------------------------
    def set_status(self, key: str, packet: str) -> None:
        self.redis.set(key, packet)

    def update_status(self, key: str, packet: str, ttl: int | None) -> bool:
        return bool(self._update_status(keys=[key], args=[packet, "" if ttl is None else ttl]))

    def get_status(self, key: str) -> bytes | None:
        return self.redis.get(key)

    def get_status_and_failure(self, key: str) -> tuple[bytes | None, bytes | None]:
        """The status packet and its failure summary side key, in one round trip (MGET reads a
        key of another type as missing: never an error)."""
        packet, summary = self.redis.mget(key, self.keys.job_failure_of(key))
        return packet, summary

    def status_ttl(self, key: str) -> int:
        return int(self.redis.ttl(key))

    # -- workers -----------------------------------------------------------------------------
    def register_worker(self, worker_id: str, started: str, prune_horizon: float) -> bool:
        """Ruby's registration (``workers``, started, heartbeat) plus our prune horizon, in one
        step; ``False`` (nothing written) when a live worker with another start holds the id."""
        now = self.server_time()
        keys = [self.keys.worker_started(worker_id), self.keys.heartbeats, self.keys.workers, self.keys.prune_horizons]
        done = self._register(keys=keys, args=[worker_id, started, wire.iso_offset(now), f"{prune_horizon:g}",
                                               wire.iso_offset(now - prune_horizon)])
        self.problems.extend(_text(p) for p in done[1:])
        return bool(done[0])

    def unregister_worker(
        self, worker_id: str, failure_record: str | None = None, requeue: tuple[str, str] | None = None
    ) -> None:
        """Ruby's unregister pipeline, plus what becomes of a job still recorded as running."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        if failure_record is not None:
            pipe.rpush(k.failed, failure_record)
            pipe.incrby(k.stat("failed"), 1)
        if requeue is not None:
            queue, item = requeue
            pipe.sadd(k.queues, queue)
            pipe.lpush(k.queue(queue), item)  # back at the head: it was the next job to run
        pipe.srem(k.workers, worker_id)
        pipe.delete(k.worker(worker_id), k.worker_started(worker_id))
        pipe.hdel(k.heartbeats, worker_id)
        pipe.hdel(k.prune_horizons, worker_id)
        pipe.delete(k.worker_stat("processed", worker_id), k.worker_stat("failed", worker_id))
        names = ([k.failed, k.stat("failed")] if failure_record is not None else []) + (
            [k.queues, k.queue(requeue[0])] if requeue is not None else [])
        self._execute(pipe, names + [k.workers, "", k.heartbeats, k.prune_horizons, ""])

    def _execute(self, pipe: Any, keys: Sequence[str]) -> list[Any]:
        """Run a MULTI whose commands touch ``keys`` (in order): a command on a key of the wrong
        type is skipped by Redis and noted here; the others apply, and nothing is raised for it."""
        out = pipe.execute(raise_on_error=False)
        for key, reply in zip(keys, out):
            if isinstance(reply, redis.ResponseError):
                if not _content_error(reply):
                    raise reply
                self.problems.append(f"{key} {reply}".strip())
        return list(out)

    def _tolerate(self, key: str, default: Any, call: Any) -> Any:
        """One read of ``key``; a key of the wrong type reads as ``default`` and is noted."""
        try:
            return call()
        except redis.ResponseError as exc:
            if not _content_error(exc):
                raise
            self.problems.append(f"{key} is a {_text(self.redis.type(key))}: ignored")
            return default

    def worker_ids(self) -> list[str]:
        """Registered ids; one that is not UTF-8 keeps its bytes (surrogateescape), to be pruned."""
        ids = self._tolerate(self.keys.workers, set(), lambda: self.redis.smembers(self.keys.workers))
        return sorted(_name(w) for w in ids)

    def working_on(self, worker_id: str) -> bytes | None:
        return self.redis.get(self.keys.worker(worker_id))

    def worker_details(self, worker_ids: Sequence[str]) -> list[tuple[bytes | None, bytes | None, bytes | None, int, int]]:
        """Per worker: working-on record, started, heartbeat, processed, failed."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for wid in worker_ids:
            pipe.get(k.worker(wid))
            pipe.get(k.worker_started(wid))
            pipe.hget(k.heartbeats, wid)
            pipe.get(k.worker_stat("processed", wid))
            pipe.get(k.worker_stat("failed", wid))
        out = pipe.execute()
        rows = []
        for i in range(len(worker_ids)):
            job, started, beat, processed, failed = out[5 * i:5 * i + 5]
            rows.append((job, started, beat, wire.parse_counter(processed), wire.parse_counter(failed)))
        return rows

    def heartbeat(self, worker_id: str) -> bool:
        """Write Redis ``TIME`` as ISO-8601 (Ruby's rule: the server clock, not ours); in the same
        round trip, tell whether the worker is still registered (a Redis restarted without
        persistence, or an operator's cleanup, forgets it)."""
        now = self.server_time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.heartbeats, worker_id, wire.iso_offset(now))
        pipe.sismember(self.keys.workers, worker_id)
        beat, member = self._execute(pipe, [self.keys.heartbeats, self.keys.workers])
        return isinstance(member, redis.ResponseError) or bool(member)  # a broken set: nothing to mend

    def heartbeats(self) -> dict[str, str]:
        beats = self._tolerate(self.keys.heartbeats, {}, lambda: self.redis.hgetall(self.keys.heartbeats))
        return {_name(k): _text(v) for k, v in beats.items()}

    def prune_horizons(self) -> dict[str, str]:
        horizons = self._tolerate(self.keys.prune_horizons, {}, lambda: self.redis.hgetall(self.keys.prune_horizons))
        return {_text(k): _text(v) for k, v in horizons.items()}

    def drop_heartbeat(self, worker_id: str) -> None:
        self.redis.hdel(self.keys.heartbeats, worker_id)

    def server_time(self) -> float:
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    def take_prune_lock(self, worker_id: str, ttl: int = defaults.PRUNE_LOCK_TTL) -> bool:
        return bool(self.redis.set(self.keys.prune_lock, worker_id, nx=True, ex=ttl))

    def prune_lock_holder(self) -> str | None:
        value = self._tolerate(self.keys.prune_lock, None, lambda: self.redis.get(self.keys.prune_lock))
        return _text(value) if value is not None else None

    def release_prune_lock(self, worker_id: str) -> None:
        self._release_lock(keys=[self.keys.prune_lock], args=[worker_id])

    def all_paused(self) -> bool:
        value = self._tolerate(self.keys.pause_all, None, lambda: self.redis.get(self.keys.pause_all))
        return value is not None and _text(value).strip().lower() == "true"

    def set_pause_all(self, paused: bool) -> None:
        if paused:
            self.redis.set(self.keys.pause_all, "true")
        else:
            self.redis.delete(self.keys.pause_all)

    # -- stats -------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        processed, failed = self.redis.mget(self.keys.stat("processed"), self.keys.stat("failed"))
        return {"processed": wire.parse_counter(processed), "failed": wire.parse_counter(failed)}

    # == operator views and the supervising master (ops.py, master.py) =========================
    def registered(self, worker_ids: Sequence[str]) -> list[bool]:
        """Which of these ids are members of ``workers`` (the master's "has it started?")."""
        if not worker_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for wid in worker_ids:
            pipe.sismember(self.keys.workers, wid)
        return [bool(flag) for flag in pipe.execute()]

    def worker_glance(self, worker_ids: Sequence[str]) -> list[tuple[bytes | None, bytes | None, bytes | None]]:
        """Per worker: working-on record, started, heartbeat, in three commands (two MGETs and an
        HMGET: a Prometheus scrape of 1,000 workers) where :meth:`worker_details` sends five each."""
        if not worker_ids:
            return []
        k, ids = self.keys, list(worker_ids)
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget([k.worker(wid) for wid in ids])
        pipe.mget([k.worker_started(wid) for wid in ids])
        pipe.hmget(k.heartbeats, ids)
        records, started, beats = self._execute(pipe, ["", "", k.heartbeats])  # MGET reads other types as nil
        if isinstance(beats, redis.ResponseError):
            beats = [None] * len(ids)
        return list(zip(records, started, beats))

    def hashes(self, keys: Sequence[str]) -> list[dict[bytes, bytes]]:
        """HGETALL of each key in one round trip (the metrics' minutes); a key of another type
        reads as empty and is noted."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return [{} if isinstance(got, redis.ResponseError) else got for got in self._execute(pipe, keys)]

    def failed_size(self) -> int:
        """LLEN failed; 0 (noted) when the key is not a list."""
        return int(self._tolerate(self.keys.failed, 0, lambda: self.redis.llen(self.keys.failed)))

    def queue_heads(self, names: Sequence[str]) -> list[tuple[int, bytes | None]]:
        """Per queue: its length and its first (oldest) item, in one round trip; a queue key
        that is not a list reads as empty (noted)."""
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.keys.queue(name))
            pipe.lindex(self.keys.queue(name), 0)
        out = self._execute(pipe, [self.keys.queue(name) for name in names for _ in (0, 1)])
        broken = [isinstance(out[2 * i], redis.ResponseError) for i in range(len(names))]
        return [(0, None) if broken[i] else (int(out[2 * i]), out[2 * i + 1]) for i in range(len(names))]


def _content_error(exc: redis.ResponseError) -> bool:
    """An error that says what a key holds (another program's doing), not that Redis is away."""
    text = str(exc)
    return text.startswith("WRONGTYPE") or "not an integer" in text or "not a valid float" in text


def _name(value: Any) -> str:
    """A name read from Redis (a worker id), exactly: the client writes it back as the same bytes."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _started(value: Any) -> int | None:
    if value in (None, False, 0):
        return None
    return int(value)
