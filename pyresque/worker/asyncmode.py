"""Async mode (``--async N``): one process, one event loop, up to N jobs in flight.

Why: a thread per job in flight (threaded mode) costs a stack and a GIL hand-off per switch; an
I/O-bound job written as ``async def perform`` (an HTTP call, a query) needs neither, so one
loop (uvloop when it is installed) can wait on hundreds at once. A plain ``def perform`` runs
in a bounded pool of threads (``PYRESQUE_ASYNC_THREADS``, default ``min(N, 32)``), so a sync
job never blocks the loop.

On the wire each job in flight is a slot exactly as in threaded mode (:mod:`.threaded`): its own
worker id ``host@<slot>:pid:queues``, working-on record (written by the reserve script in the
same step as the pop), status, failure record and heartbeat; resque-web lists one worker per
slot, and a SIGKILLed process is pruned slot by slot. The hot path (reserve, bookkeeping,
heartbeats, registration) uses redis-py's asyncio client (:mod:`pyresque.store.async_datastore`)
and is batched: the bookkeeping of the jobs that finished since the last round trip and one
reserve per free slot go in one pipeline, and never more reserves than free slots. Pruning,
moving delayed jobs, retries' scheduling and unregistration are rare and use the sync store in
a thread (off the loop).

Waiting for work: an idle async worker polls with a single reserve (one EVALSHA) whose interval
doubles from 5 ms after its last job to 100 ms: at most 10 commands/s per idle worker, plus the
heartbeat pipeline every ``--heartbeat-interval`` (no BLMOVE: one reserve covers every slot).

=========  ================================================================================
signal     async worker
=========  ================================================================================
QUIT       no new job; every job in flight finishes, then every slot unregisters; exit 0
TERM/INT   every job in flight is cancelled (its task sees ``CancelledError``, a thread's job
           ``DirtyExit``) and recorded DirtyExit now; the process exits. ``TERM_CHILD=1``: the
           job is told first (``CancelledError``; a thread's job ``JobTerminated``), recorded
           ``pyresque.JobTerminated``, and gets ``RESQUE_TERM_TIMEOUT`` seconds;
           ``GRACEFUL_TERM=1``: as QUIT
USR1       interrupt every job in flight as TERM does, keep working
USR2/CONT  pause / resume (no new job is reserved while paused)
(2nd)      a second TERM/INT while stopping records what is left and exits at once
=========  ================================================================================

A time limit cancels the job's task (or raises JobTimeout in its thread) and records
``pyresque.JobTimeout``; a job still running ``RESQUE_TERM_TIMEOUT`` later is recorded and left.
Limits (:mod:`.async_limits`): a memory ceiling after which the worker stops taking jobs and
retires (exit 0 once its jobs are done, so a master or systemd starts a fresh one), and a loop
lag probe that logs past a threshold and holds back new reservations while the loop lags.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any, Sequence

import redis

from .. import log
from ..exceptions import ConfigurationError, JobTerminated
from ..jobs import job as jobmod
from ..jobs.resolver import JobResolver
from ..process.pidfile import remove_pidfile, write_pidfile
from ..queue import Resque
from ..store.async_datastore import AsyncDataStore, Reserved, async_client
from ..store.datastore import AllPaused, Bookkeeping
from ..wire import payload as wire
from ..wire import procline
from . import signals
from .async_jobs import AsyncJobs, Flight, Slot, killed
from .async_limits import DaemonPool, LagProbe, MemoryCeiling
from .options import WorkerOptions
from .threaded import _Killed, _raise_in_thread, _TimedOut
from .worker import _REDIS_DOWN

_IDLE_POLL_MIN = 0.005
_IDLE_POLL_MAX = 0.1
_TICK = 0.05  # signals, time limits, the title: looked at this often
#: at most this many reserves and bookkeepings per round trip: a pipeline of 1,000 replies would
#: hold the loop ~50 ms while it parses them, and every job in flight would wait that long
_MAX_RESERVES = 64
_MAX_FINISHES = 128
_COALESCE = 0.001  # after a job ends, wait this long for others: their bookkeeping shares a round trip


class AsyncWorker(AsyncJobs):
    """A worker process that runs up to ``options.async_slots`` jobs at once on one event loop.

    Lifecycle: start-up as :class:`Worker` (prune, ``beforeFirstFork``), then every slot
    registers (one round trip) and the loop reserves for free slots, runs, book-keeps, beats and
    prunes until told to stop; then every slot unregisters. Exit code 0 for a requested stop,
    burst mode's empty queues and a retirement at the memory ceiling; 1 for an internal error.
    """

    def __init__(self, resque: Resque, queues: Sequence[str], options: WorkerOptions,
                 resolver: JobResolver | None = None, hostname: str | None = None) -> None:
        if options.async_slots < 1:
            raise ConfigurationError("async mode needs at least one slot")
        options = replace(options, fork=False)
        super().__init__(resque, queues, options, resolver, hostname)
        self.slots = [Slot(n, str(wire.WorkerId(self.hostname, self.pid, tuple(self.queue_patterns), n)))
                      for n in range(1, options.async_slots + 1)]
        self.free_slots = list(reversed(self.slots))  # free slots, a stack: slot 1 is taken first
        self.orphans: list[Slot] = []  # slots whose job's handling Redis cut short: recovered later
        self.astore: AsyncDataStore | None = None
        self.pending: list[tuple[str, Bookkeeping]] = []
        self.wake: asyncio.Event | None = None
        self.pool = DaemonPool(options.async_threads or min(options.async_slots, 32))
        self.lag = LagProbe(options.async_lag_warn, self.log)
        self.ceiling = MemoryCeiling(options.async_max_memory_mb, self.log)
        self._stop_deadline: float | None = None
        self._crashed = False
        self._background: set[asyncio.Task[Any]] = set()
        self._slot_registered = False
        self._recovering = False  # an outage was seen: re-register and recover at the next answer

    # == process ==============================================================================
    def work(self) -> int:
        procline.starting()
        self.inbox.install()
        signals.accept_deferred()
        code = 0
        try:
            write_pidfile(self.options.pidfile)
            if self._until_redis(self._startup):
                code = _run(self._main())
        except BaseException:
            self.log.exception("async worker stopped by an internal error")
            code = 1
        finally:
            self._safe_event("workerExit", self)
            remove_pidfile(self.options.pidfile)
            self.inbox.close()
            self.log.info("worker stopped", exit_code=code)
            log.flush()
        return code

    def _startup(self) -> None:
        self.pruner.prune()
        self._safe_event("beforeFirstFork", self)

    async def _main(self) -> int:
        self.wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(self.inbox.fds[0], self.wake.set)  # a signal wakes the loop at once
        url = self.resque.settings.url
        self.astore = async_client_store(url, self.store, len(self.slots))
        try:
            await self._until_registered()
            self.log.info("worker started", queues=self.queue_patterns, pid=self.pid, mode="async",
                          slots=len(self.slots), sync_threads=self.pool.size, moves_delayed=self.duty is not None,
                          event_loop=type(loop).__module__.split(".")[0])
            self._spawn(self.lag.run())
            self._spawn(self._timers())
            await self._dispatch()
            return 1 if self._crashed else 0
        finally:
            loop.remove_reader(self.inbox.fds[0])
            await self._teardown_async()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # == registration =========================================================================
    async def _until_registered(self) -> None:
        assert self.astore is not None
        while not self.shutdown:
            try:
                await self.astore.load_scripts()
                await self._register_slots(self.slots)
                self.outage.back()
                return
            except _REDIS_DOWN as exc:
                await self._backoff_async(exc)

    async def _register_slots(self, slots: Sequence[Slot]) -> None:
        assert self.astore is not None
        todo = list(slots)
        while todo:
            done = await self.astore.register_workers([s.id for s in todo], self._started, self.options.prune_interval)
            held = [slot for slot, ok in zip(todo, done) if not ok]
            for slot in held:
                taken, slot.id = slot.id, wire.tagged_worker_id(slot.id)
                self.log.warning("worker id held by another live worker; registering under a tagged id", taken=taken)
            todo = held
        self._slot_registered = True

    # == the loop =============================================================================
    async def _dispatch(self) -> None:
        """Reserve for free slots, start what came, and sleep until a job ends or a signal comes.

        Each pass costs O(jobs started or ended), never O(slots): free slots are a stack."""
        assert self.astore is not None and self.wake is not None
        poll = _IDLE_POLL_MIN
        while True:
            if self.inbox.pending:
                self._handle_signals()
            busy = len(self.slots) - len(self.free_slots) - len(self.orphans)
            if self.shutdown or self.ceiling.retiring:
                await self._flush()
                if not busy:
                    return
                await self._sleep(_TICK)
                continue
            hold = self.paused or not self.free_slots or self.lag.lagging or self.ceiling.check()
            if not hold and self.selection.all_paused():
                hold = True
            queues = [] if hold else self.selection.names()
            want = 0 if hold or not queues else (min(len(self.free_slots), _MAX_RESERVES) if poll == _IDLE_POLL_MIN else 1)
            reservers = [self.free_slots.pop() for _ in range(want)]
            try:
                found = await self._round_trip(reservers, queues)
            except AllPaused:
                self.free_slots.extend(reservers)
                self.selection.learned_paused()
                await self._sleep(1.0)
                continue
            except _REDIS_DOWN as exc:
                self.free_slots.extend(reservers)
                await self._redis_outage_async(exc)
                continue
            except redis.ResponseError as exc:
                self.free_slots.extend(reservers)
                self.store.problems.append(str(exc))
                self.outage.report(self.store)
                await self._sleep(1.0)
                continue
            except BaseException:
                self.free_slots.extend(reservers)
                raise
            self.outage.back()
            if self.store.problems:
                self.outage.report(self.store)
            by_id = {slot.id: slot for slot in reservers}
            for reserved in found:
                self._start(reserved, by_id.pop(reserved.worker_id))
            self.free_slots.extend(by_id.values())  # the ones the queues had no job for
            if self._recovering:
                await self._after_outage()
            if found:
                poll = _IDLE_POLL_MIN
                if len(found) < len(reservers):  # the queues ran dry before every reserver got a job
                    await self._sleep(poll)
                else:
                    await asyncio.sleep(0)  # let the new jobs start before the next round trip
                continue
            if reservers:  # every queue is empty
                if self.options.interval == 0 and not busy:
                    return  # burst mode: drained
                await self._sleep(poll)
                poll = min(poll * 2, _IDLE_POLL_MAX)
                continue
            if not queues and not hold and self.options.interval == 0 and not busy:
                return  # burst mode with globs that match no queue
            await self._sleep(poll if not queues and not hold else _TICK)
            if self.free_slots and len(self.free_slots) < len(self.slots):
                await asyncio.sleep(_COALESCE)  # let a few more jobs end: one round trip serves them all

    async def _round_trip(self, reservers: Sequence[Slot], queues: Sequence[str]) -> list[Reserved]:
        """The pending bookkeeping and the reserves, in one pipeline; bookkeeping kept on failure."""
        assert self.astore is not None
        finished, self.pending = self.pending[:_MAX_FINISHES], self.pending[_MAX_FINISHES:]
        ids = [s.id for s in reservers]
        if self.pending:  # a slot whose bookkeeping waits for the next trip must not reserve before it
            later = {worker_id for worker_id, _ in self.pending}
            ids = [i for i in ids if i not in later]
        if not finished and not ids:
            return []
        now = time.time()
        try:
            return await self.astore.batch(finished, ids, queues, wire.iso_z(now), int(now))
        except BaseException:
            for _, booked in finished:
                booked.retry = True
            self.pending[:0] = finished
            raise

    async def _flush(self) -> None:
        """Write the pending bookkeeping now, riding out an outage (unless stopping at once)."""
        while self.pending:
            try:
                await self._round_trip([], [])
                self.outage.report(self.store)
                self.outage.back()
            except _REDIS_DOWN as exc:
                await self._backoff_async(exc)
                if self.shutdown_now and self._stop_deadline is None:
                    self.log.error("giving up bookkeeping at shutdown; the next prune fails the jobs")
                    return

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking at once for a finished job or a signal."""
        assert self.wake is not None
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self.wake.clear()

    def _tick(self) -> None:
        """Signals, the master check, time limits and the stop deadline: cheap, every pass."""
        self._handle_signals()
        self._check_supervisor()
        now = time.monotonic()
        if self._stop_deadline is not None and now >= self._stop_deadline:
            self._stop_deadline = None
            self._abandon_all()
        self._enforce_limits(now)

    async def _timers(self) -> None:
        """Heartbeats for every slot, the prune, the delayed jobs' moving, the title."""
        assert self.astore is not None
        next_beat = time.monotonic() + self.options.heartbeat_interval
        while True:
            await asyncio.sleep(_TICK)
            self._tick()
            self._set_title()
            try:
                if self.duty is not None and time.monotonic() >= self.duty.due:
                    await asyncio.to_thread(self.duty.run_if_due)
                if time.monotonic() < next_beat:
                    continue
                next_beat = time.monotonic() + self.options.heartbeat_interval
                alive = await self.astore.heartbeats([s.id for s in self.slots])
                vanished = [slot for slot, ok in zip(self.slots, alive) if not ok]
                if vanished:
                    self.log.warning("this worker's registration vanished (Redis restarted?): registering again",
                                     slots=len(vanished))
                    await self._register_slots(vanished)
                await asyncio.to_thread(self.pruner.prune)
            except _REDIS_DOWN as exc:
                self.outage.down(exc)
            except Exception:
                self.log.exception("timer step failed; trying again at the next beat")

    # == interrupting =========================================================================
    def _interrupt(self, flight: Flight, exc_type: type, outcome: jobmod.Outcome, grace: float,
                   own_failure_stands: bool = False, cancelled_as: jobmod.Outcome | None = None) -> None:
        """Cancel the job's task (or raise ``exc_type`` in its thread); record ``outcome`` if it is
        still running ``grace`` seconds later."""
        if flight.interrupted is not None or flight.runner is None:
            if flight.runner is None and flight.interrupted is None:
                flight.interrupted = outcome  # not started yet: it will not start
                flight.own_failure_stands = own_failure_stands
            return
        flight.interrupted = outcome
        flight.own_failure_stands = own_failure_stands
        flight.cancelled_as = cancelled_as
        flight.give_up_at = time.monotonic() + grace
        if flight.on_loop:
            flight.runner.cancel()
        elif flight.thread is not None:
            _raise_in_thread(flight.thread, exc_type)

    def _abandon(self, flight: Flight, outcome: jobmod.Outcome | None = None) -> bool:
        """Record the job in flight now and stop waiting for it; False if already done."""
        if flight.slot.flight is not flight:
            return False
        outcome = outcome or flight.interrupted or killed()
        if flight.runner is not None and flight.on_loop:
            flight.runner.cancel()
        elif flight.thread is not None:
            _raise_in_thread(flight.thread, _Killed)
        self._book(flight, outcome)
        if flight.runner is not None and flight.handler is not None:
            flight.handler.cancel()  # it stops waiting for the job (recorded now)
        return True

    def _enforce_limits(self, now: float) -> None:
        for slot in self.slots:
            flight = slot.flight
            if flight is None or flight.runner is None:
                continue
            if flight.interrupted is None and flight.deadline is not None and now >= flight.deadline:
                self.log.warning("job timed out, interrupting it", job_id=flight.job.id, limit=flight.limit)
                self._interrupt(flight, _TimedOut, jobmod.Outcome(
                    False, exception="pyresque.JobTimeout",
                    error=f"Job exceeded its time limit of {flight.limit:g}s and was interrupted"),
                    self.options.term_timeout)
            elif flight.give_up_at is not None and now >= flight.give_up_at and self._abandon(flight):
                self.log.warning("job ignored its interruption; recorded as failed", job_id=flight.job.id,
                                 worker=slot.id)

    def _kill_jobs(self) -> None:
        if not self.shutdown_now:  # USR1
            self._interrupt_all()
            return
        if self.options.term_child:
            self._interrupt_all()
            self._stop_deadline = time.monotonic() + self.options.term_timeout
        else:
            self._abandon_all()

    def _stop_jobs_at_once(self) -> None:
        self._abandon_all()

    def _interrupt_all(self) -> None:
        term = self.options.term_child
        for slot in self.slots:
            if slot.flight is None:
                continue
            told = jobmod.failure_outcome(JobTerminated(), with_backtrace=False) if term else None
            self._interrupt(slot.flight, JobTerminated if term else _Killed, killed(), self.options.term_timeout,
                            own_failure_stands=term, cancelled_as=told)

    def _abandon_all(self) -> None:
        for slot in self.slots:
            if slot.flight is not None and self._abandon(slot.flight):
                self.log.info("job recorded as killed", worker=slot.id)

    def _set_title(self) -> None:
        if self.paused:
            procline.set_title("Paused")
            return
        busy = sum(1 for slot in self.slots if slot.flight is not None)
        procline.set_title(procline.threads(",".join(self.queue_patterns), busy, len(self.slots)).replace(
            "threads", "async slots"))

    # == outages ==============================================================================
    async def _backoff_async(self, exc: BaseException) -> None:
        self.outage.down(exc)
        procline.set_title("Waiting for Redis")
        await self._sleep(self.outage.next_delay())
        self._tick()

    async def _redis_outage_async(self, exc: BaseException) -> None:
        """Wait for Redis, then :meth:`_after_outage` (again at the next answer if it fails)."""
        self._recovering = True
        await self._backoff_async(exc)
        await self._after_outage()

    async def _after_outage(self) -> None:
        """Re-register every slot (a restarted Redis forgot them), write what waited, and run the
        job a lost reserve reply left in a slot's record."""
        try:
            await self._register_slots(self.slots)
            await self._recover_records()
            self._recovering = False
        except _REDIS_DOWN as exc:
            self.outage.down(exc)

    async def _recover_records(self) -> None:
        """A slot without a job but with a working-on record: a reserve whose reply was lost, or
        a job whose handling Redis interrupted (an orphan, kept out of the free slots). Run that
        job (as the sync worker's recovery does); an orphan without a record is free again."""
        assert self.astore is not None
        for slot in self.slots:
            if slot.flight is not None:
                continue
            raw = await self.astore.working_on(slot.id)
            orphan = slot in self.orphans
            if raw is None:
                if orphan:
                    self.orphans.remove(slot)
                    self.free_slots.append(slot)
                continue
            record = wire.in_flight(raw)
            _, started = await asyncio.to_thread(self.pruner.started_of, record.payload)
            item = wire.encode_payload(record.payload) if record.readable else record.payload["raw"]
            self.log.warning("recovering the job our lost reply reserved", job_class=record.payload.get("class"),
                             worker=slot.id)
            raw_text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)
            (self.orphans if orphan else self.free_slots).remove(slot)
            self._start(Reserved(slot.id, record.queue, item.encode("utf-8", "surrogateescape"), started, raw_text), slot)

    # == the end ==============================================================================
    async def _teardown_async(self) -> None:
        """Record what is still in flight (a stop at once), write the bookkeeping, unregister."""
        self._abandon_all()
        if self.lag.samples:
            self.log.info("event loop lag over the worker's life", **self.lag.summary())
        if self.astore is None:
            return
        for _ in range(3):
            try:
                await self._round_trip([], [])
                break
            except _REDIS_DOWN as exc:
                self.outage.down(exc)
                await asyncio.sleep(0.5)
        for task in list(self._background):
            task.cancel()
        if self._slot_registered:
            await asyncio.to_thread(self._unregister_slots)
        await self.astore.close()

    def _unregister_slots(self) -> None:
        for slot in self.slots:
            for _ in range(3):
                try:
                    self.pruner.prune_worker(slot.id, heartbeat_expired=False, quiet=True)
                    break
                except _REDIS_DOWN as exc:
                    self.outage.down(exc)
                    time.sleep(0.5)


def async_client_store(url: str, store: Any, slots: int) -> AsyncDataStore:
    """The loop's store: a connection per few slots is plenty (pipelines carry the batches)."""
    return AsyncDataStore(async_client(url, max_connections=max(16, slots // 4 + 8)), store)


def _run(main: Any) -> int:
    """Run ``main`` on uvloop when it is installed (optional), else asyncio's own loop."""
    if os.environ.get("PYRESQUE_UVLOOP", "1").strip().lower() not in ("0", "false", "no", "off"):
        try:
            import uvloop

            fast: Any = uvloop
        except ImportError:
            fast = None
        if fast is not None and hasattr(fast, "run"):
            return int(fast.run(main))
    return int(asyncio.run(main))

