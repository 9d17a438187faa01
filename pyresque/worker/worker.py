"""The worker parent: register, reserve, fork, monitor, book-keep, unregister.

See :class:`Worker` for the lifecycle and :mod:`pyresque.worker.signals` for the signal contract.
"""

from __future__ import annotations

import fnmatch
import json
import os
import select
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any, Sequence

import redis

from .. import defaults
from ..exceptions import ConfigurationError, DirtyExit, InvalidPayload, JobClassNotFound, JobTimeout
from ..jobs import hooks, policies
from ..jobs import job as jobmod
from ..jobs.resolver import JobResolver
from ..log import get_logger
from ..process.memory import give_back_free_memory
from ..process.signal_inbox import SignalInbox
from ..queue import Resque
from ..store.datastore import AllPaused, Bookkeeping, Reservation
from ..store.outage import Outage
from ..wire import payload as wire
from ..wire import procline
from . import horse, signals
from .forking_helper import Zygote, ZygoteGone
from .heartbeat import BusyBeat, Pruner

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionResetError)
_GLOB = set("*?[")


@dataclass
class WorkerOptions:
    """How one worker behaves; the CLI fills it from php-resque/Ruby environment variables."""

    interval: float = defaults.INTERVAL  # 0 = burst: exit once the queues are empty
    blocking: bool = False
    fork: bool = True
    term_child: bool = False
    graceful_term: bool = False
    term_timeout: float = defaults.TERM_TIMEOUT
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL
    prune_interval: float = defaults.PRUNE_INTERVAL
    pidfile: str | None = None
    #: default time limit in seconds for jobs whose class sets none (None = no limit)
    job_timeout: float | None = None
    #: fork the next job's child while the current job runs (fork mode)
    prefork: bool = True
    #: jobs one child serves before it is replaced (1 = a fresh process per job)
    fork_every: int = 1
    #: replace a child (after its job) once its RSS passes this many MiB; 0 = no ceiling
    max_child_memory_mb: float = 0
    #: when set, the forking helper is a fresh interpreter that loads only these includes
    #: (``APP_INCLUDE``) instead of a fork of this worker: half the memory, faster forks; job
    #: classes and child-side listeners must then come from the includes (the CLI's case)
    helper_includes: tuple[str, ...] | None = None
    #: pid of the supervising master; when this worker's parent is no longer it (the master
    #: died), the worker finishes its job and exits instead of running unsupervised forever.
    supervisor_pid: int | None = None
    #: jobs in flight at once, one per thread slot (threaded mode, :mod:`pyresque.worker.threaded`)
    threads: int = 1
    #: seconds without a job after which the forking helper (a fresh interpreter: see
    #: ``helper_includes``) exits to give back its memory; the next job starts a new one
    #: (~50 ms). 0 = keep it for the worker's life.
    helper_idle: float = defaults.HELPER_IDLE


class Worker:
    """One Resque worker process, a peer of php-resque's and Ruby's on the same Redis.

    Lifecycle:

    1. **startup**: title ``resque: Starting``, signal handlers (flags only), prune dead
       workers under Ruby's lock, ``beforeFirstFork``, **register** (``workers`` member,
       ``worker:<id>:started``, a ``workers:heartbeat`` entry).
    2. **reserve**, in queue order: one Lua script pops the job *and* writes the working-on
       record ``worker:<id>`` and status RUNNING, so a reserved job is never only in memory
       (BLOCKING mode: BLPOP, then that record at once; see README for the window left).
    3. **decode and resolve** the payload in the parent: a bad payload or unknown class is
       failed right here, with the reason, without a fork.
    4. **fork**: the child runs the job and reports its outcome over a pipe; it never touches
       Redis. The parent blocks in ``select`` on the child's pidfd, the pipe and the signal
       wakeup fd (no sleep-polling), beating its heartbeat meanwhile.
    5. **finish**: one Lua call deletes ``worker:<id>``, counts ``stat:processed``, and writes
       status COMPLETE with the result, or the failure record + ``stat:failed`` + FAILED.
    6. **unregister** on exit, as Ruby does: ``workers`` member, started key, heartbeat field,
       per-worker stats.

    Redis outages are survived: one warning, capped backoff, re-registration, and bookkeeping
    for a job that finished meanwhile is retried, not dropped.
    """

    def __init__(
        self,
        resque: Resque,
        queues: Sequence[str],
        options: WorkerOptions | None = None,
        resolver: JobResolver | None = None,
        hostname: str | None = None,
        slot: int | None = None,
    ) -> None:
        if not queues:
            raise ConfigurationError("no queues given: set QUEUE to a comma-separated list (or *)")
        for queue in queues:
            if not any(ch in _GLOB for ch in queue):
                wire.validate_queue_name(queue)
        self.resque = resque
        self.store = resque.store
        self.queue_patterns = list(queues)
        self.options = options or WorkerOptions()
        self.resolver = resolver or JobResolver()
        self.hostname = hostname or socket.gethostname()
        self.pid = os.getpid()
        self.id = str(wire.WorkerId(self.hostname, self.pid, tuple(self.queue_patterns), slot))
        self.log = get_logger("pyresque.worker").bind(worker=self.id)
        self.child_pid: int | None = None
        self._warm: horse.Horse | None = None
        self._horse: horse.Horse | None = None  # fork-every: the child that serves the next job
        self._horse_served = 0
        self._zygote: Zygote | None = None
        self._zygote_due = False  # start a forking helper with the next job
        self._last_job_at = time.monotonic()
        self._exiting: list[int] = []
        self._unbooked: Bookkeeping | None = None
        self._record = ""  # the exact working-on record of the job in hand (see FINISH_LUA)
        self._reservation: Reservation | None = None  # BLOCKING: its record's reply not read yet
        self._record_unconfirmed = False  # that reply was lost: the bookkeeping must be a retry
        self._job_deadline: float | None = None
        self._job_limit: float | None = None
        self._timed_out: float | None = None
        self.shutdown = False
        self.shutdown_now = False
        self.paused = False
        self.inbox = SignalInbox(signals.HANDLED)
        self._kill_deadline: float | None = None
        self._next_beat = 0.0
        self._queues_cache: tuple[float, list[str]] = (0.0, [])
        self._pause_checked = (0.0, False)
        self.outage = Outage(self.log, self.resque.settings.display_url)
        self._registered = False
        self.pruner = Pruner(self.store, self.id, self.hostname, self.resolver,
                             self.options.prune_interval, self.log)
        self._busy_beat: BusyBeat | None = None  # inline mode: beats while a job holds the loop

    # == 1. startup ============================================================================
    def work(self) -> int:
        """Run until told to stop; returns the process exit code."""
        procline.starting()
        self.inbox.install()
        signals.accept_deferred()  # a master starts us with them blocked
        if self.options.fork and self.options.prefork:  # before any Redis connection exists
            self._zygote = self._start_zygote()
        try:
            self._write_pidfile()
            if self._until_redis(self._startup):
                self._run_loop()
        finally:
            self._teardown()
        return 0

    def _startup(self) -> None:
        self.pruner.prune()
        if not self._registered:
            self._safe_event("beforeFirstFork", self)
        self.register()
        self.log.info("worker started", queues=self.queue_patterns, pid=self.pid,
                      mode="fork" if self.options.fork else "inline", blocking=self.options.blocking)
        give_back_free_memory()  # what start-up freed (~2 MiB here) would otherwise stay resident

    def register(self) -> None:
        now = time.time()
        self.store.register_worker(self.id, wire.ruby_time(now), wire.iso_offset(self.store.server_time()))
        self._next_beat = time.monotonic() + self.options.heartbeat_interval
        self._registered = True

    # == 2-5. the loop =========================================================================
    def _run_loop(self) -> None:
        while True:
            self._reap_exited()
            self._handle_signals()
            self._check_supervisor()
            if self.shutdown:
                return
            try:
                self._maybe_heartbeat()
                if self.paused or self._all_paused():
                    self._flush_bookkeeping()
                    self._title("Paused")
                    self._idle(self.options.interval or 1.0)
                    continue
                reserved = self._reserve()
            except _REDIS_DOWN as exc:
                self._redis_outage(exc)
                continue
            if reserved is None:
                self._flush_bookkeeping()  # normally already applied by the reserve
                if self.options.interval == 0:
                    return  # burst mode: queues drained
                self._retire_idle_helper()
                if not self.options.blocking:
                    self._idle(self.options.interval)
                continue
            self.outage.back()
            self._process_safely(*reserved)
            self._last_job_at = time.monotonic()

    def _process_safely(self, queue: str, item: bytes, started: int | None) -> None:
        """Nothing in a job's handling may kill the worker, nor lose the job."""
        begun = time.monotonic()
        try:
            self.process(queue, item, started)
        except _REDIS_DOWN as exc:  # its record stays: our recovery or the next prune deals with it
            self._drop_reservation()
            self._redis_outage(exc)
        except Exception as exc:
            self.log.exception("internal error while handling a job; failing it", queue=queue)
            if self._unbooked is None:  # not yet booked: fail it now, with the reason
                job = jobmod.Job(queue, _readable_payload(item), self.id, item)
                try:
                    started = self._confirm_record_after_run(started)
                    self._finish(job, started, jobmod.failure_outcome(exc), begun)
                except Exception:
                    self.log.exception("could not record the failure; the next prune will", queue=queue)
        finally:
            self._drop_reservation()

    def _drop_reservation(self) -> None:
        """A reservation whose record reply was never read (an error path): free its connection."""
        if self._reservation is not None:
            self._reservation.abandon()
            self._reservation = None

    def _reserve(self) -> tuple[str, bytes, int | None] | None:
        queues = self.queues()
        if not queues:  # a glob that matches no queue yet: wait, never spin
            self._flush_bookkeeping()
            if self.options.interval > 0:
                self._idle(min(self.options.interval, defaults.MAX_BLOCK_SECONDS))
            return None
        self._title(procline.waiting(",".join(queues)))
        now = time.time()
        run_at = wire.iso_z(now)
        if self.options.blocking and self.options.interval > 0:
            self._flush_bookkeeping()
            timeout = min(self.options.interval, defaults.MAX_BLOCK_SECONDS)
            reservation = self.store.blocking_reserve(queues, timeout, self.id)
            if reservation is None:
                return None
            # The window: the item is out of the queue until the record, sent right behind the
            # BLPOP's reply, reaches the server; its own reply is read later (_confirm_record).
            self._reservation = reservation
            self._record = wire.expected_working_on(reservation.queue, reservation.run_at, reservation.item)
            return reservation.queue, reservation.item, None
        booked = self._unbooked
        try:
            found = self.store.reserve(queues, self.id, run_at, int(now), finished=booked)
        except AllPaused:
            self._unbooked = None  # applied before the pause check
            self._pause_checked = (time.monotonic(), True)
            return None
        except _REDIS_DOWN:
            if booked is not None:
                booked.retry = True
            raise
        self._unbooked = None
        if found is not None:
            self._record = wire.expected_working_on(found[0], run_at, found[1])
        return found

    def queues(self) -> list[str]:
        """The queue list in priority order, with Ruby-style globs (``*``, ``high*``) expanded."""
        if not any(ch in _GLOB for p in self.queue_patterns for ch in p):
            return self.queue_patterns
        checked, cached = self._queues_cache
        if time.monotonic() - checked < 1.0:
            return cached
        known = self.store.queue_names()
        expanded: list[str] = []
        for pattern in self.queue_patterns:
            matches = sorted(fnmatch.filter(known, pattern)) if any(ch in _GLOB for ch in pattern) else [pattern]
            expanded.extend(q for q in matches if q not in expanded)
        self._queues_cache = (time.monotonic(), expanded)
        return expanded

    def _all_paused(self) -> bool:
        # Polling mode learns this from the reserve script for free; BLOCKING mode asks at most
        # once a second instead of once per job.
        checked, paused = self._pause_checked
        if not self.options.blocking and not paused:
            return False
        if time.monotonic() - checked < 1.0:
            return paused
        paused = self.store.all_paused()
        self._pause_checked = (time.monotonic(), paused)
        return paused

    # -- one job ---------------------------------------------------------------------------
    def process(self, queue: str, item: bytes, started: int | None) -> None:
        """Run one reserved job and record its outcome."""
        begun = time.monotonic()
        try:
            payload = wire.decode_payload(item)
        except InvalidPayload as exc:
            job = jobmod.Job(queue, _readable_payload(item), self.id, item)
            self._fail_here(job, self._confirm_record(started), exc, begun)
            return
        job = jobmod.Job(queue, payload, self.id, item)
        try:
            target = self.resolver.resolve(job.job_class)
            policies.retry_policy(target)  # a nonsense attribute-form policy fails here, not after the run
        except JobClassNotFound as exc:
            self._fail_here(job, self._confirm_record(started), exc, begun)
            return
        except Exception as exc:  # an allowed module that raised on import, a bad policy, …
            self._fail_here(job, self._confirm_record(started), JobClassNotFound(
                f"Could not load job class {job.job_class}: {type(exc).__name__}: {exc}"), begun)
            return
        if self.inbox.pending or self.shutdown_now:  # a stop signal came in while we reserved
            self._handle_signals()
            if self.shutdown_now:
                self._give_back(job, self._confirm_record(started))
                return
        jobmod.prepare(target)
        slots = self._take_slot(job, target, started)
        if slots is False:
            return
        self._safe_event("beforeFork", job)
        limit = policies.job_timeout(target, self.options.job_timeout)
        try:
            outcome = self._execute(job, target, limit)
        except Exception as exc:  # the worker's own fault (fork failed, …): fail the job, keep going
            self.log.exception("could not run job", job_id=job.id, job_class=job.job_class)
            outcome = jobmod.failure_outcome(exc)
        finally:
            if isinstance(slots, str):
                self._release(lambda: self.store.release_slot(slots, self.id))
        started = self._confirm_record_after_run(started)
        if not outcome.ok and outcome.exception == "pyresque.DirtyExit":
            self._safe_event("onFailure", DirtyExit(outcome.error), job)
        policy = policies.retry_policy(target)
        if not outcome.ok and policy is not None and policy.should_retry(job.attempt, outcome.exception):
            self._retry_later(job, started, outcome, policy, begun)
            return
        self._finish(job, started, outcome, begun)
        digest = policies.unique_digest(target, job.job_class, job.args)
        if digest is not None:
            self._release(lambda: self.store.release_unique(self.resque.keys.unique_lock(digest)))

    def _execute(self, job: jobmod.Job, target: Any, limit: float | None) -> jobmod.Outcome:
        """Run the job: in a child (fork modes) or here (inline); a threaded slot overrides it."""
        if self.options.fork:
            return self._fork_and_wait(job, target, limit)
        # the title a forked child would carry, on the process that runs the job (Ruby without fork)
        self._title(procline.processing(job.queue, int(time.time()), job.job_class))
        self._log_started(job)
        if self._busy_beat is None:
            self._busy_beat = BusyBeat(lambda: self.store.heartbeat(self.id), self.options.heartbeat_interval)
        with self._busy_beat:
            return _run_inline(job, target, limit)

    def _log_started(self, job: jobmod.Job) -> None:
        """The job's start line: in fork mode once the child has the job, so its start does not
        wait for the line (~0.15 ms after an idle spell here)."""
        self.log.info("job started", job_id=job.id, job_class=job.job_class, queue=job.queue, attempt=job.attempt)

    def _confirm_record(self, started: int | None) -> int | None:
        """``started`` of the job in hand, once its working-on record is acknowledged.

        BLOCKING mode sends the record without waiting (:class:`datastore.Reservation`); this
        reads its reply, before anything that depends on the record is written."""
        reservation, self._reservation = self._reservation, None
        return started if reservation is None else reservation.started()

    def _confirm_record_after_run(self, started: int | None) -> int | None:
        """As :meth:`_confirm_record`, after the job ran: a lost reply must not lose its outcome.

        The record may or may not have been applied, so the bookkeeping becomes a retry (it acts
        only while the record is this job's) and the status keeps "now" as its start."""
        try:
            return self._confirm_record(started)
        except _REDIS_DOWN as exc:
            self.outage.down(exc)
            self._record_unconfirmed = True
            return int(time.time())

    def _bookkeeping(self, final: bool = True) -> Bookkeeping:
        """The job in hand's bookkeeping, to be filled in; a retry when its record is in doubt."""
        retry, self._record_unconfirmed = self._record_unconfirmed, False
        return Bookkeeping(record=self._record, retry=retry, final=final)

    def _title(self, status: str) -> None:
        procline.set_title(status)

    def _give_back(self, job: jobmod.Job, started: int | None) -> None:
        """Put a job we were told to drop before it started back at the head of its queue."""
        status_key = packet = None
        if job.id is not None and started is not None:
            status_key = self.resque.keys.status(job.id, job.status_prefix)
            packet = wire.encode_status(wire.WAITING, int(time.time()), started)
        self.store.requeue_reserved(self.id, job.queue, job.raw, status_key, packet, at_head=True)
        self.log.info("stopping: job put back on its queue unstarted", job_id=job.id, job_class=job.job_class)

    def _take_slot(self, job: jobmod.Job, target: Any, started: int | None) -> str | bool | None:
        """For a ``@limit_concurrency`` class: the slots key once a slot is ours, ``False`` when
        none is free (the job went back to the end of its queue), ``None`` for other classes."""
        limit = getattr(target, "concurrency_limit", None)
        if not isinstance(limit, int):
            return None
        key = self.resque.keys.concurrency_slots(job.job_class)
        lease = float(getattr(target, "concurrency_lease", 3600.0))
        if self.store.acquire_slot(key, self.id, limit, time.time(), lease):
            return key
        started = self._confirm_record(started)
        status_key = packet = None
        if job.id is not None and started is not None:
            status_key = self.resque.keys.status(job.id, job.status_prefix)
            packet = wire.encode_status(wire.WAITING, int(time.time()), started)
        self.store.requeue_reserved(self.id, job.queue, job.raw, status_key, packet)
        self.log.debug("concurrency limit reached, job requeued", job_class=job.job_class, limit=limit)
        self._idle(0.05)  # let a slot free up rather than spin on the same job
        return False

    def _retry_later(self, job: jobmod.Job, started: int | None, outcome: jobmod.Outcome,
                     policy: policies.RetryPolicy, begun: float) -> None:
        """Schedule the next run through the delayed queue; status WAITING, no failure record."""
        from ..scheduling.delayed import delay_payload

        delay = policy.delay(job.attempt)
        payload = wire.for_retry(job.payload, job.attempt, outcome.exception, outcome.error)
        delay_payload(self.resque, time.time() + delay, job.queue, payload)
        booked = self._bookkeeping(final=False)
        if job.id is not None and started is not None:
            booked.status_key = self.resque.keys.status(job.id, job.status_prefix)
            booked.status_packet = wire.encode_status(wire.WAITING, int(time.time()), started)
        self._unbooked = booked
        self._flush_bookkeeping()
        self.log.warning("job failed, retrying", job_id=job.id, job_class=job.job_class, queue=job.queue,
                         attempt=job.attempt, of=policy.attempts, retry_in=round(delay, 3), exc_class=outcome.exception,
                         error=outcome.error, duration=round(time.monotonic() - begun, 6))

    def _release(self, step: Any) -> None:
        """Release a lock or slot; if Redis is away its TTL/lease frees it instead."""
        try:
            step()
        except _REDIS_DOWN as exc:
            self.outage.down(exc)

    def _fail_here(self, job: jobmod.Job, started: int | None, exc: BaseException, begun: float) -> None:
        """A job that cannot even start (bad payload, unknown class) fails in the parent, no fork."""
        self._safe_event("onFailure", exc, job)
        self._finish(job, started, jobmod.failure_outcome(exc, with_backtrace=False), begun)

    def _fork_and_wait(self, job: jobmod.Job, target: Any, limit: float | None = None) -> jobmod.Outcome:
        """Run the job in a child (fresh, or the current one in fork-every mode) and wait."""
        child, served = (self._horse, self._horse_served) if self._horse else (self._next_child(), 0)
        self._horse = None
        since = int(time.time())
        try:
            child.send(job, since)
        except OSError:  # the waiting child died (OOM killer, an operator's kill): one more try
            self._discard(child)
            child, served = self._next_child(), 0
            child.send(job, since)
        self._log_started(job)
        served += 1
        self.child_pid = child.pid
        self._job_deadline = time.monotonic() + limit if limit else None
        self._job_limit = limit
        self._timed_out = None
        procline.set_title(procline.forked(child.pid, since))
        if self.options.prefork and not self.shutdown and served >= self.options.fork_every:
            self._fork_ahead(child)  # the next child is forked while this job runs
        try:
            message, status, retiring = self._monitor_child(child.pid, child.result_r)
        finally:
            self.child_pid = None
            self._kill_deadline = None
            self._job_deadline = None
        if status is None and not retiring and not self.shutdown and self._timed_out is None:
            self._horse, self._horse_served = child, served  # fork-every: it serves the next job too
        else:
            self._discard(child, reported=status is None)
        if self._timed_out is not None:
            return jobmod.Outcome(False, exception="pyresque.JobTimeout",
                                  error=f"Job exceeded its time limit of {self._timed_out:g}s and was killed")
        outcome = jobmod.Outcome.from_message(message) if message else None
        if outcome is not None:
            return outcome
        if status is None:  # a report that is not one: treat the child as having died
            return jobmod.Outcome(False, exception="pyresque.DirtyExit", error="Job sent an unreadable report")
        if os.WIFSIGNALED(status):
            return jobmod.Outcome(False, exception="pyresque.DirtyExit", error=wire.DIRTY_EXIT_ABNORMAL)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        if code != 0:
            return jobmod.Outcome(False, exception="pyresque.DirtyExit", error=f"Job exited with exit code {code}")
        return jobmod.Outcome(True)  # exited 0 without a word (os._exit(0) in the job): done, as php

    def _fork_ahead(self, current: horse.Horse) -> None:
        if self._zygote is not None:
            try:
                self._zygote.request()
            except OSError as exc:
                self._zygote_died(exc)
        else:
            self._warm = self._spawn((current.job_w, current.result_r))

    def _discard(self, child: horse.Horse, reported: bool = True) -> None:
        """Done with a child: close its pipes; it exits (or has); reap it later or let the zygote."""
        child.close()
        if not reported:
            return  # already reaped by _monitor_child
        if child.reaped_elsewhere and self._zygote is not None:
            self._zygote.forget(child.pid)
        elif not child.reaped_elsewhere:
            self._exiting.append(child.pid)

    def _next_child(self) -> horse.Horse:
        """A child ready for a job: from the zygote, the one forked ahead, or a new one."""
        if self._zygote is None and self._zygote_due:
            self._zygote_due = False
            self._zygote = self._start_zygote()
        if self._zygote is not None:
            try:
                return self._zygote.take()
            except (ZygoteGone, OSError) as exc:
                self.log.warning("forking helper died, starting a new one", error=str(exc))
                self._zygote.stop()
                self._zygote = self._start_zygote()
                return self._zygote.take()
        child, self._warm = self._warm, None
        return child or self._spawn()

    def _retire_idle_helper(self) -> None:
        """An idle worker gives back its forking helper's memory; the next job starts a new one.

        Only the launched helper (a fresh interpreter) retires: a helper forked from this
        worker must be forked before any Redis connection exists, which is only at start-up."""
        limit = self.options.helper_idle
        if (self._zygote is None or limit <= 0 or self.options.helper_includes is None
                or time.monotonic() - self._last_job_at < limit):
            return
        self._cancel_warm_child()
        self._zygote.stop()
        self._zygote = None
        self._zygote_due = True
        give_back_free_memory()
        self.log.info("forking helper retired while idle; the next job starts a new one", idle_for=limit)

    def _start_zygote(self) -> Zygote:
        if self.options.helper_includes is not None:
            return Zygote.launch(self.options.helper_includes, self.resolver.allowed_prefixes,
                                 self.options.fork_every, self.options.max_child_memory_mb)
        return Zygote.start(self.resolver, self.inbox.fds, self.options.fork_every,
                            self.options.max_child_memory_mb)

    def _spawn(self, busy_fds: tuple[int, ...] = ()) -> horse.Horse:
        """Fork a child for the next job; it closes the parent's fds it has no business with."""
        return horse.spawn(self.resolver, self.inbox.fds + busy_fds, self.options.fork_every,
                           self.options.max_child_memory_mb)

    def _cancel_warm_child(self) -> None:
        for child in (self._warm, self._horse):
            if child is not None:
                child.cancel()
        self._warm = self._horse = None

    def _monitor_child(self, pid: int, result_r: int) -> tuple[bytes, int | None, bool]:
        """Wait for the child's report without polling; act on signals and timers meanwhile.

        Returns (report, wait status, retiring). The status is ``None`` when the child reported:
        it is reaped later, its teardown off the critical path. A child that died without a
        report is reaped here and its status returned.
        """
        pidfd = _pidfd_open(pid)
        buffer = b""
        watch = [result_r, self.inbox.fd] + ([pidfd] if pidfd >= 0 else [])
        if self._zygote is not None:
            watch.append(self._zygote.fileno())
        report = None
        try:
            while report is None:
                ready, _, _ = select.select(watch, [], [], self._timer_timeout())
                if self.inbox.fd in ready:
                    self._handle_signals()
                if self._zygote is not None and self._zygote.fileno() in ready:
                    try:
                        self._zygote.drain()  # exit notices of earlier children
                    except (ZygoteGone, OSError) as exc:  # the child is still ours to watch
                        watch.remove(self._zygote.fileno())
                        self._zygote_died(exc)
                if result_r in ready and result_r in watch:
                    data = os.read(result_r, 65536)
                    if data:
                        buffer += data
                        report = horse.parse_report(buffer)
                        continue
                    watch.remove(result_r)
                    if pidfd < 0:
                        break
                if pidfd >= 0 and pidfd in ready:
                    break
                self._child_timers(pid)
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        if report is not None:
            return report[0], None, report[1]
        status = self._status_of(pid)
        return b"", status, True

    def _status_of(self, pid: int) -> int:
        """The wait status of a child that died without a report."""
        if self._zygote is None:
            try:
                return os.waitpid(pid, 0)[1]
            except ChildProcessError:  # a child of a helper that died: we cannot know its status
                return signal.SIGKILL
        try:
            return self._zygote.status_of(pid)
        except (ZygoteGone, OSError) as exc:
            self._zygote_died(exc)
            return signal.SIGKILL  # reads as "Job exited abnormally"

    def _zygote_died(self, exc: BaseException) -> None:
        """The forking helper is gone: drop it; the next job starts a new one."""
        if self._zygote is not None:
            self.log.warning("forking helper died; a new one starts with the next job", error=str(exc))
            self._zygote.abandon()
            self._zygote = None
            self._zygote_due = True

    def _reap_exited(self, block: bool = False) -> None:
        """Collect children that reported their job and are now exiting."""
        for pid in list(self._exiting):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._exiting.remove(pid)

    def _timer_timeout(self) -> float:
        deadlines = [self._next_beat]
        if self._job_deadline is not None:
            deadlines.append(self._job_deadline)
        if self.options.supervisor_pid is not None:
            deadlines.append(time.monotonic() + 1.0)  # notice a dead master within a second
        if self._kill_deadline is not None:
            deadlines.append(self._kill_deadline)
        return max(0.0, min(deadlines) - time.monotonic())

    def _check_supervisor(self) -> None:
        supervisor = self.options.supervisor_pid
        if supervisor is not None and not self.shutdown and os.getppid() != supervisor:
            self.log.warning("supervising master is gone: finishing the current job, then exiting", master=supervisor)
            self.shutdown = True

    def _child_timers(self, pid: int) -> None:
        self._check_supervisor()
        if self._job_deadline is not None and time.monotonic() >= self._job_deadline:
            self._timed_out = self._job_limit
            self._job_deadline = None
            self.log.warning("job timed out, terminating it", child=pid, limit=self._job_limit)
            _killpg(pid, signal.SIGTERM)
            self._kill_deadline = time.monotonic() + self.options.term_timeout
        if self._kill_deadline is not None and time.monotonic() >= self._kill_deadline:
            self.log.warning("child ignored TERM, killing it", child=pid)
            _killpg(pid, signal.SIGKILL)
            self._kill_deadline = None
        try:
            self._maybe_heartbeat()
        except _REDIS_DOWN as exc:
            self.outage.down(exc)

    def _finish(self, job: jobmod.Job, started: int | None, outcome: jobmod.Outcome, begun: float) -> None:
        """Record the outcome: written with the next reserve (polling), else at once."""
        booked = self._bookkeeping()
        if job.id is not None and started is not None:  # tracked: the reserve saw its status key
            booked.status_key = self.resque.keys.status(job.id, job.status_prefix)
            booked.status_packet = wire.encode_status_json(
                wire.COMPLETE if outcome.ok else wire.FAILED, int(time.time()), started,
                outcome.result_json if outcome.ok else "null")
        if not outcome.ok:
            booked.failure_record = wire.encode_failure(wire.build_failure(
                job.payload, outcome.exception, outcome.error, outcome.backtrace, self.id, job.queue))
        self._unbooked = booked
        if self.options.blocking or self.shutdown:
            self._flush_bookkeeping()
        fields = dict(job_id=job.id, job_class=job.job_class, queue=job.queue,
                      duration=round(time.monotonic() - begun, 6))
        if outcome.ok:
            self.log.info("job done", outcome="skipped" if outcome.skipped else "complete", **fields)
        else:
            self.log.error("job failed", outcome="failed", exc_class=outcome.exception, error=outcome.error, **fields)

    def _flush_bookkeeping(self) -> None:
        """Write the last job's bookkeeping now (before idling, blocking, pausing or exiting)."""
        while (booked := self._unbooked) is not None:
            try:
                self.store.finish_job(self.id, booked)
                self._unbooked = None
                self.outage.back()
            except _REDIS_DOWN as exc:
                booked.retry = True
                self._backoff(exc)
                if self.shutdown_now:
                    self.log.error("giving up bookkeeping at shutdown; the next prune fails the job")
                    return

    # -- signals ---------------------------------------------------------------------------
    def _handle_signals(self) -> None:
        for signum in self.inbox.take():
            action = signals.table(self.options.graceful_term)[signum]
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT) and self.shutdown:
                self.log.warning("second stop signal: exiting now", signal=name)
                self.shutdown = self.shutdown_now = True
                self._stop_jobs_at_once()
            elif action is signals.Action.SHUTDOWN:
                self.log.info("shutting down after the current job", signal=name)
                self.shutdown = True
            elif action is signals.Action.SHUTDOWN_NOW:
                self.log.info("shutting down now", signal=name)
                self.shutdown = self.shutdown_now = True
                self._kill_jobs()
            elif action is signals.Action.KILL_CHILD:
                self._kill_jobs()
            elif action is signals.Action.PAUSE and not self.paused:
                self.log.info("pausing", signal=name)
                self.paused = True
                self._safe_event("beforePause", self)
            elif action is signals.Action.RESUME and self.paused:
                self.log.info("resuming", signal=name)
                self.paused = False
                self._safe_event("afterPause", self)

    def _kill_jobs(self) -> None:
        """TERM/INT/USR1: the job in hand dies (TERM first with TERM_CHILD); threads override it."""
        self._kill_child()

    def _stop_jobs_at_once(self) -> None:
        """A second TERM/INT: no more grace."""
        self._kill_child(force=True)

    def _kill_child(self, force: bool = False) -> None:
        pid = self.child_pid
        if pid is None:
            return
        if self.options.term_child and not force:
            self.log.info("sending TERM to child", child=pid, timeout=self.options.term_timeout)
            _killpg(pid, signal.SIGTERM)
            self._kill_deadline = time.monotonic() + self.options.term_timeout
        else:
            self.log.info("killing child", child=pid)
            _killpg(pid, signal.SIGKILL)

    def _idle(self, seconds: float) -> None:
        """Sleep, but wake at once for a signal (and every second under a supervisor)."""
        if self.options.supervisor_pid is not None:
            seconds = min(seconds, 1.0)
        self.inbox.wait(seconds)

    # -- heartbeat, pruning, outages -------------------------------------------------------
    def _maybe_heartbeat(self) -> None:
        if time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + self.options.heartbeat_interval
        self._beat()

    def _beat(self) -> None:
        self.store.heartbeat(self.id)
        self.pruner.prune()

    def _redis_outage(self, exc: BaseException) -> None:
        """Wait for Redis with capped backoff (waking for signals), then re-register."""
        self._backoff(exc)
        try:
            self.register()
            self._recover_own_record()
        except _REDIS_DOWN:
            return

    def _backoff(self, exc: BaseException) -> None:
        self.outage.down(exc)
        delay = self.outage.next_delay()
        self._title("Waiting for Redis")
        self._idle(delay)
        self._handle_signals()

    def _until_redis(self, step: Any) -> bool:
        """Run ``step`` (start-up) until Redis answers; any stop signal gives up."""
        while not self.shutdown:
            try:
                step()
                self.outage.back()
                return True
            except _REDIS_DOWN as exc:
                self._backoff(exc)
        return False

    def _recover_own_record(self) -> None:
        """A reserve whose reply was lost (Redis died mid-call) left our record: run that job."""
        self._flush_bookkeeping()  # the record may still be the finished job's
        raw = self.store.working_on(self.id)
        record = wire.decode_working_on(raw) if raw is not None else None
        if record is None or not isinstance(record.payload, dict):
            return
        payload = record.payload
        started = None
        if isinstance(payload.get("id"), str):
            prefix = payload.get("prefix")
            prefix = prefix if isinstance(prefix, str) else ""
            current = self.store.get_status(self.resque.keys.status(payload["id"], prefix))
            try:
                started = wire.decode_status(current).started if current is not None else None
            except ValueError:
                started = None
        self.log.warning("recovering the job our lost reply reserved", job_class=payload.get("class"))
        self.process(record.queue, wire.encode_payload(payload).encode(), started)

    # == 6. unregister =========================================================================
    def _teardown(self) -> None:
        self._cancel_warm_child()
        if self._zygote is not None:
            self._zygote.stop()
            self._zygote = None
        self._reap_exited(block=True)
        if self._busy_beat is not None:
            self._busy_beat.stop()
        self.unregister_with_retries()
        self._safe_event("workerExit", self)
        self._remove_pidfile()
        self.inbox.close()
        self.log.info("worker stopped")

    def unregister_with_retries(self) -> None:
        """Flush the last bookkeeping and unregister, riding out a short Redis blip."""
        if not self._registered:
            return
        self._flush_bookkeeping()
        for _ in range(3):
            try:
                self.unregister()
                return
            except _REDIS_DOWN as exc:
                self.outage.down(exc)
                time.sleep(0.5)

    def unregister(self) -> None:
        """Ruby's unregister; a job still recorded as running is failed first (DirtyExit)."""
        failure = None
        raw = self.store.working_on(self.id)
        record = wire.decode_working_on(raw) if raw is not None else None
        if record is not None:
            failure = wire.encode_failure(wire.build_failure(
                record.payload, "pyresque.DirtyExit", "Job still being processed", [], self.id, record.queue))
            if isinstance(record.payload, dict):
                self.pruner.set_status(record.payload, wire.FAILED)
        self.store.unregister_worker(self.id, failure_record=failure)
        self._registered = False

    # -- helpers ---------------------------------------------------------------------------
    def _safe_event(self, event: str, *args: Any) -> None:
        try:
            hooks.trigger(event, *args)
        except Exception as exc:
            self.log.error("event listener failed", event=event, error=f"{type(exc).__name__}: {exc}")

    def _write_pidfile(self) -> None:
        if self.options.pidfile:
            try:
                with open(self.options.pidfile, "w") as handle:
                    handle.write(f"{self.pid}\n")
            except OSError as exc:
                raise ConfigurationError(f"could not write PIDFILE {self.options.pidfile}: {exc.strerror}") from None

    def _remove_pidfile(self) -> None:
        if self.options.pidfile:
            try:
                os.unlink(self.options.pidfile)
            except OSError:
                pass


def _pidfd_open(pid: int) -> int:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return -1
    try:
        return int(opener(pid))
    except OSError:
        return -1


def _killpg(pid: int, signum: int) -> None:
    """Signal the child's process group (the job and anything it spawned); gone is fine."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _run_inline(job: jobmod.Job, target: Any, limit: float | None) -> jobmod.Outcome:
    """Run in this process; a time limit interrupts the job with SIGALRM (inline mode)."""
    if not limit:
        return jobmod.run(job, target)

    def expired(signum: int, frame: Any) -> None:
        raise JobTimeout(f"Job exceeded its time limit of {limit:g}s and was interrupted")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return jobmod.run(job, target)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _readable_payload(item: bytes) -> dict[str, Any]:
    """What a failure record keeps of an item we could not run: its raw content, plus its
    php-resque ``id``/``prefix`` when they can be read (so its status is finalised too)."""
    record = wire.raw_payload_record(item)
    try:
        doc = json.loads(item)
    except (ValueError, UnicodeDecodeError):
        return record
    if isinstance(doc, dict):
        for key in ("class", "id", "prefix"):
            if isinstance(doc.get(key), str):
                record[key] = doc[key]
    return record
