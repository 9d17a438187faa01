"""The async worker's Redis commands, on redis-py's asyncio client (``--async N``).

Why a second adapter: an event loop must never wait on a socket, and the async worker's hot path
(reserve, bookkeeping, heartbeats) is where it would. It sends the very same Lua scripts
(:mod:`.scripts`, by SHA from the sync :class:`~.datastore.DataStore`) with the very same keys
(the DataStore builds them from :mod:`pyresque.wire.keys`), so nothing on the wire differs from a
threaded slot's. What it adds is batching: the bookkeeping of every job that finished since the
last round trip and one reserve per free slot travel in one pipeline, finishes first (a slot's
record is deleted before the same slot reserves again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import redis
import redis.asyncio

from ..wire import payload as wire
from .connection import _NO_CLIENT_INFO, tls_options
from .datastore import AllPaused, Bookkeeping, DataStore, _started, _text


@dataclass
class Reserved:
    """One job a slot's reserve popped (its working-on record is written)."""

    worker_id: str
    queue: str
    item: bytes
    started: int | None
    record: str  # the exact working-on record, which its bookkeeping must find


def async_client(url: str, max_connections: int) -> redis.asyncio.Redis:
    """The asyncio twin of :func:`.connection.make_client` (RESP2, no CLIENT SETINFO)."""
    # blocking: a burst of per-job calls waits for a connection instead of failing "Too many connections"
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=None, protocol=2, socket_connect_timeout=5,
        encoding_errors="surrogateescape", **_NO_CLIENT_INFO, **tls_options(url))
    return redis.asyncio.Redis(connection_pool=pool)


class AsyncDataStore:
    """The async worker's commands; key names and scripts come from ``store``."""

    def __init__(self, client: redis.asyncio.Redis, store: DataStore) -> None:
        self.redis: Any = client
        self.store = store
        self.keys = store.keys
        #: keys of the wrong type the scripts skipped (see DataStore.problems); the sync store's list
        self.problems = store.problems

    async def close(self) -> None:
        await self.redis.aclose()

    async def load_scripts(self) -> None:
        """SCRIPT LOAD what the batches send by SHA (pipelines cannot fall back one by one)."""
        store = self.store
        for script in (store._reserve, store._finish, store._finish_reserve, store._register, store._acquire_slot,
                       store._requeue_reserved):
            await self.redis.execute_command("SCRIPT", "LOAD", script.script)

    async def _evalsha(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self.redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            await self.load_scripts()
            return await self.redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    # -- the batch: finishes, then reserves ---------------------------------------------------
    async def batch(self, finished: Sequence[tuple[str, Bookkeeping]], reservers: Sequence[str],
                    queues: Sequence[str], run_at: str, now: int) -> list[Reserved]:
        """Write each ``(worker id, bookkeeping)`` and reserve one job per id of ``reservers``, in
        one round trip. Raises :class:`AllPaused` (after the bookkeeping) while every worker is
        paused; a connection error leaves the caller to retry the bookkeeping (``retry=True``)."""
        try:
            return await self._batch(finished, reservers, queues, run_at, now)
        except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
            for _, booked in finished:
                booked.retry = True
            await self.load_scripts()
            return await self._batch(finished, reservers, queues, run_at, now)

    async def _batch(self, finished: Sequence[tuple[str, Bookkeeping]], reservers: Sequence[str],
                     queues: Sequence[str], run_at: str, now: int) -> list[Reserved]:
        store = self.store
        qkeys = [self.keys.queue(q) for q in queues]
        qtail = [self.keys.ns, run_at, now, *[wire.encode_ruby(q) for q in queues]]
        # a reserver whose own bookkeeping is pending sends both in one FINISH_RESERVE_LUA (the
        # sync worker's polling step): one command per job instead of two
        reserving = set(reservers)
        combined: dict[str, Bookkeeping] = {}
        plain: list[tuple[str, Bookkeeping]] = []
        for worker_id, booked in finished:
            if worker_id in reserving and worker_id not in combined:
                combined[worker_id] = booked
            else:
                plain.append((worker_id, booked))
        if not plain and not reservers:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for worker_id, booked in plain:
            keys, args = self._finish_call(worker_id, booked)
            pipe.execute_command("EVALSHA", store._finish.sha, len(keys), *keys, *args)
        for worker_id in reservers:
            booked_here = combined.get(worker_id)
            if booked_here is None:
                keys = qkeys + [self.keys.worker(worker_id), self.keys.pause_all]
                pipe.execute_command("EVALSHA", store._reserve.sha, len(keys), *keys, *qtail)
            else:
                keys, args = self._finish_call(worker_id, booked_here)
                keys = keys + qkeys + [self.keys.pause_all]
                pipe.execute_command("EVALSHA", store._finish_reserve.sha, len(keys), *keys, *args, *qtail)
        replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, (redis.exceptions.NoScriptError, redis.ConnectionError, redis.TimeoutError)):
                raise reply
            if isinstance(reply, redis.ResponseError):
                raise reply
        for reply in replies[:len(plain)]:
            self.problems.extend(_text(p) for p in reply[1:])
        found: list[Reserved] = []
        paused = False
        for worker_id, reply in zip(reservers, replies[len(plain):]):
            index, item, started = reply[:3]
            self.problems.extend(_text(p) for p in reply[3:])
            if int(index) == -1:
                paused = True
            elif int(index) > 0:
                queue = queues[int(index) - 1]
                found.append(Reserved(worker_id, queue, item, _started(started),
                                      wire.expected_working_on(queue, run_at, item)))
        if paused and not found:
            raise AllPaused()
        return found

    def _finish_call(self, worker_id: str, booked: Bookkeeping) -> tuple[list[str], list[Any]]:
        """FINISH_LUA's keys and args, built by the DataStore as for the sync worker. Its shape
        since the per-class metrics (#15): ``_finish_keys(worker_id, bookkeeping)`` and
        ``_finish_args(bookkeeping)``; before: ``_finish_keys(worker_id, status_key)`` and
        ``bookkeeping.args(ttl)`` (kept until both branches have met)."""
        store: Any = self.store
        if hasattr(store, "_finish_args"):
            return list(store._finish_keys(worker_id, booked)), list(store._finish_args(booked))
        return list(store._finish_keys(worker_id, booked.status_key)), list(booked.args(store.final_status_ttl))

    # -- workers ------------------------------------------------------------------------------
    async def server_time(self) -> float:
        seconds, micros = await self.redis.time()
        return float(seconds) + float(micros) / 1e6

    async def register_workers(self, worker_ids: Sequence[str], started: str, prune_horizon: float) -> list[bool]:
        """:meth:`DataStore.register_worker` for many ids in one round trip; False: id held."""
        try:
            replies = await self._register_many(worker_ids, started, prune_horizon)
        except redis.exceptions.NoScriptError:  # a restarted Redis: its script cache is empty
            await self.load_scripts()
            replies = await self._register_many(worker_ids, started, prune_horizon)
        for done in replies:
            self.problems.extend(_text(p) for p in done[1:])
        return [bool(done[0]) for done in replies]

    async def _register_many(self, worker_ids: Sequence[str], started: str, prune_horizon: float) -> list[Any]:
        now = await self.server_time()
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for worker_id in worker_ids:
            keys = [k.worker_started(worker_id), k.heartbeats, k.workers, k.prune_horizons]
            args = [worker_id, started, wire.iso_offset(now), f"{prune_horizon:g}", wire.iso_offset(now - prune_horizon)]
            pipe.execute_command("EVALSHA", self.store._register.sha, len(keys), *keys, *args)
        return list(await pipe.execute())

    async def heartbeats(self, worker_ids: Sequence[str]) -> list[bool]:
        """:meth:`DataStore.heartbeat` for many ids in one round trip; False: no longer registered."""
        if not worker_ids:
            return []
        beat = wire.iso_offset(await self.server_time())
        pipe = self.redis.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.hset(self.keys.heartbeats, worker_id, beat)
            pipe.sismember(self.keys.workers, worker_id)
        replies = await pipe.execute(raise_on_error=False)
        members = replies[1::2]
        return [isinstance(m, redis.ResponseError) or bool(m) for m in members]

    async def working_on(self, worker_id: str) -> bytes | None:
        return await self.redis.get(self.keys.worker(worker_id))

    # -- per job ------------------------------------------------------------------------------
    async def acquire_slot(self, slots_key: str, worker_id: str, limit: int, now: float, lease: float) -> bool:
        return bool(await self._evalsha(self.store._acquire_slot, [slots_key], [worker_id, limit, now, now + lease]))

    async def release_slot(self, slots_key: str, worker_id: str) -> None:
        await self.redis.zrem(slots_key, worker_id)

    async def release_unique(self, lock_key: str) -> None:
        await self.redis.delete(lock_key)

    async def requeue_reserved(self, worker_id: str, queue: str, item: bytes, status_key: str | None,
                               status_packet: str | None, at_head: bool = False) -> None:
        keys = [self.keys.worker(worker_id), self.keys.queue(queue), status_key or self.keys.status("-")]
        await self._evalsha(self.store._requeue_reserved, keys, [item, status_packet or "", "head" if at_head else "tail"])
