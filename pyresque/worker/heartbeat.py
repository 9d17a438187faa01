"""Heartbeats and dead-worker pruning, under Ruby's cluster-wide lock.

A worker is dead when (a) its ``workers:heartbeat`` entry is older than the prune interval
(any host; Ruby's rule), or (b) it is on this host and its pid is gone, or is not a Resque-titled
process (psutil). Workers on other hosts that never heartbeat (php-resque, old Ruby) are left
alone. A dead worker's in-flight job, read from its ``worker:<id>`` record, is failed with a
DirtyExit record and status FAILED, or put back at the head of its queue when its job class set
``requeue_on_dirty_exit = True`` (for idempotent jobs) and is already loaded here: a prune
never imports a module. A dead worker of this host whose forking helper still runs is left for
the next prune, so its job is never failed or requeued while its child may still run it.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from typing import Any, Callable

import redis

from .. import defaults
from ..jobs.resolver import JobResolver
from ..process.liveness import helper_of, process_is_resque
from ..store.datastore import DataStore
from ..store.waiting import orphaned_reservations, release_orphan, release_reservations
from ..wire import payload as wire

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class Pruner:
    def __init__(
        self,
        store: DataStore,
        worker_id: str,
        hostname: str,
        resolver: JobResolver | None = None,
        prune_interval: float = defaults.PRUNE_INTERVAL,
        log: Any = None,
        is_alive: Callable[[int], bool] = process_is_resque,
        helper_of: Callable[[int], int | None] = helper_of,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.hostname = hostname
        self.resolver = resolver or JobResolver()
        self.prune_interval = prune_interval
        self.log = log
        self.is_alive = is_alive
        self.helper_of = helper_of

    def prune(self) -> list[str]:
        """Prune dead workers if this worker wins the lock; returns the ids pruned."""
        if not self.store.take_prune_lock(self.worker_id) and not self._take_lock_of_the_dead():
            return []
        try:
            return self._prune_locked()
        finally:
            self.store.release_prune_lock(self.worker_id)

    def _take_lock_of_the_dead(self) -> bool:
        """The lock's holder, a worker of this host, was killed while pruning: rather than wait out
        the lock's 60 s (no prune at all meanwhile), free it and take it."""
        holder = self.store.prune_lock_holder()
        if holder is None:
            return False
        parsed = wire.parse_worker_id(holder)
        if parsed is None or parsed.host != self.hostname or self.is_alive(parsed.pid):
            return False
        self.store.release_prune_lock(holder)  # only if it still holds it
        return self.store.take_prune_lock(self.worker_id)

    def _prune_locked(self) -> list[str]:
        pruned: list[str] = []
        now = self.store.server_time()
        registered = set(self.store.worker_ids())
        horizons = self.store.prune_horizons()
        for wid, beat in self.store.heartbeats().items():
            if wid == self.worker_id:
                continue
            beat_time = wire.parse_time(beat)
            if (beat_time is None or now - beat_time > self._horizon(horizons.get(wid))) and not self._still_ending(wid):
                self._prune_one(wid, heartbeat_expired=True)
                pruned.append(wid)
        for wid in sorted(registered - set(pruned)):
            if wid == self.worker_id:
                continue
            parsed = wire.parse_worker_id(wid)
            if parsed is None or parsed.host != self.hostname or self.is_alive(parsed.pid):
                continue
            if self._still_ending(wid):
                continue
            self._prune_one(wid, heartbeat_expired=False)
            pruned.append(wid)
        beating = set(self.store.heartbeats())
        for wid in orphaned_reservations(self.store, registered - set(pruned)):
            if wid != self.worker_id and wid not in beating and release_orphan(self.store, wid) and self.log:
                self.log.warning("put back jobs a pruned waiter had parked", dead_worker=wid)
        return pruned

    def _still_ending(self, wid: str) -> bool:
        """A worker of this host whose forking helper still runs: the helper is killing and
        reaping its job child, which may still be running the job; prune it next time."""
        parsed = wire.parse_worker_id(wid)
        return parsed is not None and parsed.host == self.hostname and self.helper_of(parsed.pid) is not None

    def _horizon(self, declared: str | None) -> float:
        """How long a worker may go without a heartbeat: its own prune interval when it declared
        one (pyresque), else Ruby's default (Ruby beats every 60 s), and never less than ours."""
        try:
            theirs = float(declared) if declared is not None else defaults.PRUNE_INTERVAL
        except ValueError:
            theirs = defaults.PRUNE_INTERVAL
        return max(self.prune_interval, theirs if math.isfinite(theirs) else defaults.PRUNE_INTERVAL)

    def _prune_one(self, wid: str, heartbeat_expired: bool) -> None:
        """One dead worker; whatever its keys hold, the others are still pruned after it."""
        try:
            self.prune_worker(wid, heartbeat_expired)
        except _REDIS_DOWN:
            raise
        except Exception as exc:  # content we did not foresee: log it, never stop the prune
            if self.log is not None:
                self.log.error("could not prune a dead worker; the next prune tries again", dead_worker=wid,
                               error=f"{type(exc).__name__}: {exc}")

    def prune_worker(self, wid: str, heartbeat_expired: bool, quiet: bool = False) -> None:
        release_reservations(self.store, wid)  # a job its wait parked, back at its queue's head
        raw = self.store.working_on(wid)
        failure = requeue = None
        record = wire.in_flight(raw) if raw is not None else None
        if record is not None:
            job_class = str(record.payload.get("class", "<Unknown Job>"))
            if record.readable and self._requeue_allowed(job_class):
                requeue = (record.queue, wire.encode_payload(record.payload))
            else:
                message = (f"Worker {wid} did not gracefully exit while processing {job_class}" if heartbeat_expired
                           else "Job still being processed")
                failure = wire.encode_failure(wire.build_failure(
                    record.payload, "pyresque.DirtyExit", message, [], wid, record.queue))
            self.set_status(record.payload, wire.WAITING if requeue else wire.FAILED)
        self.store.unregister_worker(wid, failure_record=failure, requeue=requeue)
        if self.log is not None and not quiet:
            self.log.warning("pruned dead worker", dead_worker=wid, job=record.payload if record else None,
                             requeued=requeue is not None, heartbeat_expired=heartbeat_expired)

    def _requeue_allowed(self, job_class: str) -> bool:
        """Only a class this process already has can say so: a forged record must not make every
        starting worker import the module it names. Unknown means fail, as Resque does."""
        target = self.resolver.resolve_loaded(job_class)
        return bool(getattr(target, "requeue_on_dirty_exit", False))

    def started_of(self, payload: dict[str, Any]) -> tuple[str | None, int | None]:
        """A payload's status key (``None``: untracked) and the ``started`` its packet holds."""
        job_id, prefix = payload.get("id"), payload.get("prefix")
        if not isinstance(job_id, str):
            return None, None
        key = self.store.keys.status(job_id, prefix if isinstance(prefix, str) else "")
        current = self.store.get_status(key)
        try:
            return key, wire.decode_status(current).started if current is not None else None
        except ValueError:  # not a status packet (another program's value): no "started"
            return key, None

    def set_status(self, payload: dict[str, Any], status: int) -> None:
        """Set a tracked job's status (php's rule: only if its key exists), keeping ``started``."""
        key, started = self.started_of(payload)
        if key is None:
            return
        now = int(time.time())
        ttl = self.store.final_status_ttl if status in wire.FINAL_STATUSES else None
        self.store.update_status(key, wire.encode_status(status, now, started or now), ttl)


class BusyBeat:
    """Beats from a thread while a job runs in the worker's own thread (inline mode).

    No worker loop runs during such a job, and after the prune interval any prune (a neighbour's,
    Ruby's) would take the busy worker for dead: fail its job and unregister it. Ruby's worker
    beats from a thread for the same reason. ``with beat:`` around the job; ``stop()`` before
    unregistering, so that no beat lands after it.
    """

    def __init__(self, beat: Callable[[], object], interval: float) -> None:
        self.beat = beat
        self.interval = interval
        self.busy = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BusyBeat:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pyresque-heartbeat", daemon=True)
            # started with every signal blocked (a thread inherits the mask): POSIX may deliver a
            # signal to any thread not blocking it, and it must wake the main thread, which runs
            # the job (the SIGALRM time limit interrupts a sleep there)
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            try:
                self._thread.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self.busy = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.busy = False

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            if self.busy:
                try:
                    self.beat()
                except Exception:  # Redis away: the worker's loop deals with outages
                    pass

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()


def describe_heartbeat(value: str | None, now: float) -> str:
    if value is None:
        return "never"
    t = wire.parse_time(value)
    return "unreadable" if t is None else f"{max(0, int(now - t))}s ago"


__all__ = ["BusyBeat", "Pruner", "describe_heartbeat"]
