"""Threaded mode: one process, up to N jobs in flight, each slot a registered worker of its own.

Why: a fork per job costs ~2 ms of CPU and a process per concurrent job; a worker of I/O-bound
jobs (HTTP calls, sleeps, slow queries) wants hundreds of jobs waiting at once in one process.

Resque's keys hold one job per worker id, so every slot registers its own id,
``host@<slot>:pid:queues`` (:class:`pyresque.wire.payload.WorkerId`), with its own working-on
record, started key, heartbeat and stats: resque-web lists one worker per slot, php-resque's
and Ruby's pid checks keep every slot of a live process, and a SIGKILLed process is pruned slot
by slot, each in-flight job failed (or requeued) as in fork mode.

A thread cannot be killed, so what fork mode does with ``kill`` is done here in two steps:
the job's thread is interrupted (an exception raised in it at its next Python instruction),
and a job that is still running ``RESQUE_TERM_TIMEOUT`` seconds later — blocked in C code,
say — is recorded as failed by the main thread and its slot abandoned (and replaced, unless
the worker is stopping). A TERM without ``TERM_CHILD`` records every job in flight at once,
then the process exits, which ends those threads for good.

=========  ================================================================================
signal     threaded worker
=========  ================================================================================
QUIT       every slot finishes its job, then unregisters; the process exits
TERM/INT   every job in flight is recorded DirtyExit ("Job exited abnormally") now and the
           process exits; ``TERM_CHILD=1``: ``JobTerminated`` is raised in each job first
           (fork mode's SIGTERM) and they get ``RESQUE_TERM_TIMEOUT`` seconds;
           ``GRACEFUL_TERM=1``: as QUIT
USR1       interrupt every job in flight (DirtyExit; ``JobTerminated`` with ``TERM_CHILD``),
           keep working
USR2/CONT  pause / resume every slot (no new job is reserved while paused)
(2nd)      a second TERM/INT while stopping records what is left and exits at once
=========  ================================================================================
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from .. import defaults, log
from ..exceptions import ConfigurationError, DirtyExit, JobTerminated, JobTimeout
from ..jobs import job as jobmod
from ..jobs.resolver import JobResolver
from ..process.pidfile import remove_pidfile, write_pidfile
from ..queue import Resque
from ..store.waiting import MAX_WAIT_QUEUES
from ..wire import payload as wire
from ..wire import procline
from . import output, signals
from .options import WorkerOptions
from .worker import _REDIS_DOWN, Worker

KILLED = wire.DIRTY_EXIT_ABNORMAL


class _Killed(DirtyExit):
    """Raised inside a job's thread by USR1 (without TERM_CHILD): the thread's stand-in for SIGKILL."""

    def __init__(self, *args: Any) -> None:
        super().__init__(KILLED)


class _TimedOut(JobTimeout):
    """Raised inside a job's thread once its time limit has passed."""


class _Abandoned(BaseException):
    """Ends a slot's thread whose job the main thread already recorded; nothing more to write."""


@dataclass
class InFlight:
    """The job a slot's thread is running, as the main thread needs it to interrupt or record it."""

    job: jobmod.Job
    started: int | None
    begun: float
    deadline: float | None
    limit: float | None
    interrupted: jobmod.Outcome | None = None  # what it was interrupted for
    #: the job's own failure stands (TERM_CHILD's JobTerminated, as in fork mode) instead of
    #: ``interrupted``, which is then only what is recorded if it never returns
    own_failure_stands: bool = False
    give_up_at: float | None = None  # when the main thread records it if it has not returned


def _raise_in_thread(thread: threading.Thread, exc_type: type) -> None:
    """Ask CPython to raise ``exc_type`` in ``thread`` at its next bytecode (Dramatiq's way)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


class Slot(Worker):
    """One thread's worker: its own id and keys; reserves and runs jobs in its thread."""

    def __init__(self, pool: ThreadedWorker, number: int) -> None:
        options = replace(pool.options, fork=False, pidfile=None, supervisor_pid=None, threads=1, scheduler=False)
        super().__init__(pool.resque, pool.queue_patterns, options, pool.resolver, pool.hostname, slot=number)
        self._started = pool._started  # one process, one start: a replacement slot takes its id back
        self.number = number
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.current: InFlight | None = None
        self.abandoned = False
        self.crashed = False  # its loop died of an internal error: the process must not exit 0
        self._started_in_hand: int | None = None
        self.thread = threading.Thread(target=self._run, name=f"pyresque-slot-{number}", daemon=True)

    def _run(self) -> None:
        try:
            if self._until_redis(self.register):
                self._run_loop()
        except _Abandoned:
            return
        except BaseException:  # never expected: the job's own errors are outcomes
            self.crashed = True
            self.log.exception("slot stopped by an internal error")
        if not self.abandoned:
            self.unregister_with_retries()

    # -- what differs from the single-job worker ------------------------------------------
    def process(self, queue: str, item: bytes, started: int | None) -> None:
        self._started_in_hand = started  # the main thread may record this job: it needs "started"
        super().process(queue, item, started)

    def _execute(self, job: jobmod.Job, target: Any, limit: float | None) -> jobmod.Outcome:
        now = time.monotonic()
        inflight = InFlight(job, self._started_in_hand, now, now + limit if limit else None, limit)
        with self.lock:
            self.current = inflight
        self._log_started(job)
        output.job_started(job.log_fields)
        try:
            outcome = jobmod.run(job, target)
        finally:
            output.job_ended()
            with self.lock:
                self.current = None
                abandoned = self.abandoned
        if abandoned:
            raise _Abandoned()
        if inflight.interrupted is not None and not outcome.ok and not inflight.own_failure_stands:
            return inflight.interrupted  # the job died of our interruption: say so as fork mode does
        return outcome

    def _beat(self) -> None:
        self._heartbeat()  # the main thread prunes, once for the process

    def _idle(self, seconds: float) -> None:
        self.wake.wait(min(seconds, defaults.MAX_BLOCK_SECONDS))
        self.wake.clear()

    def _next_wake(self) -> float:
        """A waiting slot looks at its stop flag every second (the main thread sets it)."""
        return min(super()._next_wake(), time.monotonic() + defaults.MAX_BLOCK_SECONDS)

    def _title(self, status: str) -> None:
        pass  # one title for the process, set by the main thread

    def _check_supervisor(self) -> None:
        pass  # the main thread's job

    def _handle_signals(self) -> None:
        pass  # signals reach the main thread, which sets this slot's flags

    # -- called from the main thread ------------------------------------------------------
    def stop(self, now: bool = False) -> None:
        self.shutdown = True
        self.shutdown_now = self.shutdown_now or now
        self.wake.set()

    def interrupt(self, exc_type: type, outcome: jobmod.Outcome, grace: float, own_failure_stands: bool = False) -> None:
        """Raise ``exc_type`` in the running job; record ``outcome`` if it is still running after ``grace``."""
        with self.lock:
            inflight = self.current
            if inflight is None or inflight.interrupted is not None or self.abandoned:
                return
            inflight.interrupted = outcome
            inflight.own_failure_stands = own_failure_stands
            inflight.give_up_at = time.monotonic() + grace
            _raise_in_thread(self.thread, exc_type)

    def abandon(self, outcome: jobmod.Outcome | None = None) -> bool:
        """Record the job in flight as failed and give up on this slot's thread; False if idle."""
        with self.lock:
            inflight = self.current
            if inflight is None or self.abandoned:
                return False
            self.abandoned = True
        outcome = outcome or inflight.interrupted or jobmod.Outcome(False, exception="pyresque.DirtyExit", error=KILLED)
        try:
            self._finish(inflight.job, inflight.started, outcome, inflight.begun)
            self._flush_bookkeeping()
        except _REDIS_DOWN:
            self.log.error("could not record the abandoned job; the next prune fails it", job_id=inflight.job.id)
        return True


class ThreadedWorker(Worker):
    """A worker process that runs up to ``options.threads`` jobs at once, one per slot thread.

    Lifecycle: start-up as :class:`Worker` (prune, ``beforeFirstFork``), then each slot
    registers and runs the single-job loop (reserve atomically, run, book-keep, unregister)
    in its own thread, with its own id; this thread takes the signals, enforces time limits,
    prunes, and sets the process title. Burst mode (``INTERVAL=0``) ends once every slot
    found the queues empty. Exit code 0 for those stops and the signalled ones; 1 when every
    slot died of an internal error.
    """

    def __init__(self, resque: Resque, queues: Sequence[str], options: WorkerOptions,
                 resolver: JobResolver | None = None, hostname: str | None = None) -> None:
        if options.threads < 1:
            raise ConfigurationError("threads must be at least 1")
        super().__init__(resque, queues, options, resolver, hostname)
        # per slot: one for its reserve and one per queue it waits on (store.waiting); one for us
        self.store.allow_connections(options.threads * (min(len(queues), MAX_WAIT_QUEUES) + 1) + 1)
        self.slots: list[Slot] = []
        self._next_prune = 0.0
        self._stop_deadline: float | None = None

    def work(self) -> int:
        procline.starting()
        self.inbox.install()
        signals.accept_deferred()
        code = 0
        try:
            write_pidfile(self.options.pidfile)
            if self._until_redis(self._startup):
                self._supervise()
                code = self._exit_code()
        finally:
            self._stop_all()
            self._safe_event("workerExit", self)
            remove_pidfile(self.options.pidfile)
            self.inbox.close()
            self.log.info("worker stopped", exit_code=code)
            log.flush()
        return code

    def _exit_code(self) -> int:
        """0 only for a stop we were asked for (a signal, the master gone, burst mode's empty
        queues): a process whose slots died must look failed to ``Restart=on-failure`` or a master."""
        crashed = [slot.number for slot in self.slots if slot.crashed]
        if self.shutdown or (not crashed and self.options.interval == 0):
            return 0
        self.log.error("every slot has stopped, not told to: exiting 1 so that the worker is restarted",
                       crashed_slots=crashed, of=len(self.slots))
        return 1

    def _startup(self) -> None:
        self.pruner.prune()
        self._safe_event("beforeFirstFork", self)
        self._next_prune = time.monotonic() + self.options.heartbeat_interval
        self.slots = [Slot(self, number) for number in range(1, self.options.threads + 1)]
        for slot in self.slots:
            slot.thread.start()
        self.log.info("worker started", queues=self.queue_patterns, pid=self.pid, mode="threads",
                      threads=len(self.slots), blocking=self.options.blocking, moves_delayed=self.duty is not None)

    def _supervise(self) -> None:
        while True:
            self._handle_signals()
            self._check_supervisor()
            if self.shutdown:
                for slot in self.slots:
                    slot.stop()
            now = time.monotonic()
            if self._stop_deadline is not None and now >= self._stop_deadline:
                self._abandon_all()
            self._enforce_limits(now)
            if not any(slot.thread.is_alive() and not slot.abandoned for slot in self.slots):
                return
            self._set_title()
            if now >= self._next_prune:
                self._next_prune = now + self.options.heartbeat_interval
                try:
                    self._beat_busy_slots()
                    self.pruner.prune()
                except _REDIS_DOWN as exc:
                    self.outage.down(exc)
            try:
                if self.duty is not None:
                    self.duty.run_if_due()
            except _REDIS_DOWN as exc:
                self.outage.down(exc)
            self.inbox.wait(0.1)

    def _beat_busy_slots(self) -> None:
        """A slot beats from its own loop, which does not run while its job does: beat for it, or
        after the prune interval any prune (this process's too) would fail the running job."""
        for slot in self.slots:
            with slot.lock:  # held, so a slot that just finished cannot have unregistered meanwhile
                if slot.current is not None and not slot.abandoned:
                    slot._heartbeat()

    def _enforce_limits(self, now: float) -> None:
        for index, slot in enumerate(self.slots):
            inflight = slot.current
            if inflight is None:
                continue
            if inflight.interrupted is None and inflight.deadline is not None and now >= inflight.deadline:
                self.log.warning("job timed out, interrupting it", job_id=inflight.job.id, limit=inflight.limit)
                slot.interrupt(_TimedOut, jobmod.Outcome(
                    False, exception="pyresque.JobTimeout",
                    error=f"Job exceeded its time limit of {inflight.limit:g}s and was interrupted"),
                    self.options.term_timeout)
            elif inflight.give_up_at is not None and now >= inflight.give_up_at and slot.abandon():
                self.log.warning("job ignored its interruption; recorded as failed, slot replaced",
                                 job_id=inflight.job.id, slot=slot.number)
                if not self.shutdown:
                    self.slots[index] = Slot(self, slot.number)
                    self.slots[index].thread.start()

    def _handle_signals(self) -> None:
        super()._handle_signals()  # the table is the worker's; the kill steps below are ours
        for slot in self.slots:
            if slot.paused != self.paused:
                slot.paused = self.paused
                slot.wake.set()

    def _kill_jobs(self) -> None:
        if not self.shutdown_now:  # USR1
            self._interrupt_all()
            return
        for slot in self.slots:
            slot.stop(now=True)
        if self.options.term_child:
            self._interrupt_all()
            self._stop_deadline = time.monotonic() + self.options.term_timeout
        else:
            self._abandon_all()

    def _stop_jobs_at_once(self) -> None:
        self._abandon_all()

    def _interrupt_all(self) -> None:
        """Fork mode's kill: with TERM_CHILD the JobTerminated its SIGTERM raises (a job that catches
        it to clean up does so in every mode), else DirtyExit;
        either way a job still running after RESQUE_TERM_TIMEOUT is recorded as killed."""
        killed = jobmod.Outcome(False, exception="pyresque.DirtyExit", error=KILLED)
        term = self.options.term_child
        for slot in self.slots:
            slot.interrupt(JobTerminated if term else _Killed, killed, self.options.term_timeout, own_failure_stands=term)

    def _abandon_all(self) -> None:
        """Record every job still in flight as killed; the process exit ends their threads."""
        for slot in self.slots:
            slot.stop(now=True)
            if slot.abandon():
                self.log.info("job recorded as killed", worker=slot.id)

    def _set_title(self) -> None:
        if self.paused:
            procline.set_title("Paused")
            return
        busy = sum(1 for slot in self.slots if slot.current is not None)
        procline.set_title(procline.threads(",".join(self.queue_patterns), busy, len(self.slots)))

    def _stop_all(self) -> None:
        """Let every slot finish and unregister; unregister abandoned ones ourselves."""
        for slot in self.slots:
            slot.stop(now=self.shutdown_now)
        deadline = time.monotonic() + defaults.MAX_BLOCK_SECONDS + 2
        for slot in self.slots:
            if not slot.abandoned:
                slot.thread.join(max(0.0, deadline - time.monotonic()))
        for slot in self.slots:
            if slot.abandoned or slot.thread.is_alive():
                slot.unregister_with_retries()
