"""The worker's job loop: register, reserve, run, book-keep, unregister.

See :class:`Worker` for the lifecycle, :mod:`.supervisor` for how a forked job is run and
watched, and :mod:`pyresque.worker.signals` for the signal contract.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any, Sequence

import redis

from .. import defaults
from ..exceptions import DirtyExit, InvalidPayload, JobClassNotFound
from ..jobs import hooks, policies
from ..jobs import job as jobmod
from ..jobs.resolver import JobResolver, canonical_name
from ..log import bind_job, get_logger, unbind_job
from ..process.memory import give_back_free_memory
from ..process.pidfile import remove_pidfile, write_pidfile
from ..process.signal_inbox import SignalInbox
from ..queue import Resque
from ..scheduling.duty import DelayedDuty
from ..store.datastore import AllPaused, Bookkeeping
from ..store.outage import Outage
from ..wire import payload as wire
from ..wire import procline
from . import signals
from .heartbeat import BusyBeat, Pruner
from .idle import IdleWait
from .options import WorkerOptions
from .queues import QueueSelection
from .supervisor import ChildSupervisor

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionResetError)


class Worker:
    """One Resque worker process, a peer of php-resque's and Ruby's on the same Redis.

    Lifecycle:

    1. **startup**: title ``resque: Starting``, signal handlers (flags only), prune dead
       workers under Ruby's lock, ``beforeFirstFork``, **register** (``workers`` member,
       ``worker:<id>:started``, a ``workers:heartbeat`` entry).
    2. **reserve**, in queue order: one Lua script pops the job *and* writes the working-on
       record ``worker:<id>`` and status RUNNING, so a reserved job is never only in memory.
       With every queue empty it **waits** (:mod:`pyresque.store.waiting`: BLMOVEs that park an
       arriving job in a list of ours, never in a reply on the wire), or polls with BLOCKING=0;
       it runs its share of the delayed jobs' moving meanwhile (:mod:`..scheduling.duty`).
    3. **decode and resolve** the payload in the parent: a bad payload or unknown class is
       failed right here, with the reason, without a fork.
    4. **run**: in fork modes the :class:`~.supervisor.ChildSupervisor` hands the job to a
       child, which reports its outcome over a pipe and never touches Redis; the parent waits
       in ``select`` (no sleep-polling), acting on signals and beating its heartbeat meanwhile.
       Inline mode runs it here; threaded mode in a slot's thread (:mod:`.threaded`).
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
        self.resque = resque
        self.store = resque.store
        self.options = options or WorkerOptions()
        self.selection = QueueSelection(self.store, queues)
        self.queue_patterns = self.selection.patterns
        self.resolver = resolver or JobResolver()
        self.hostname = hostname or socket.gethostname()
        self.pid = os.getpid()
        self._started = wire.ruby_time()  # kept across re-registrations: how a holder knows its id
        self.id = str(wire.WorkerId(self.hostname, self.pid, tuple(self.queue_patterns), slot))
        self.log = self.selection.log = get_logger("pyresque.worker").bind(worker=self.id)
        self._last_job_at = time.monotonic()
        self._unbooked: Bookkeeping | None = None
        self._record = ""  # the exact working-on record of the job in hand (see FINISH_LUA)
        self.idle = IdleWait(self.store, self.id, self.options.blocking, self.options.interval, self.log)
        self.duty = DelayedDuty(resque, f"{self.hostname}:{self.pid}", self.log) if self.options.scheduler else None
        self.shutdown = False
        self.shutdown_now = False
        self.paused = False
        self.inbox = SignalInbox(signals.HANDLED)
        self._next_beat = 0.0
        self.outage = Outage(self.log, self.resque.settings.display_url)
        self._registered = False
        self.pruner = Pruner(self.store, self.id, self.hostname, self.resolver,
                             self.options.prune_interval, self.log)
        self._busy_beat: BusyBeat | None = None  # inline mode: beats while a job holds the loop
        self.children = ChildSupervisor(self.options, self.resolver, self.inbox, self.log,
                                        on_signals=self._handle_signals, on_wake=self._between_wakes,
                                        next_wake=self._next_wake, on_started=self._log_started,
                                        stopping=lambda: self.shutdown)

    # == 1. startup ============================================================================
    def work(self) -> int:
        """Run until told to stop; returns the process exit code."""
        procline.starting()
        self.inbox.install()
        signals.accept_deferred()  # a master starts us with them blocked
        self.children.start()  # the forking helper, before any Redis connection exists
        try:
            write_pidfile(self.options.pidfile)
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
        self.log.info("worker started", queues=self.queue_patterns, pid=self.pid, mode="fork" if self.options.fork
                      else "inline", blocking=self.idle.blocking, moves_delayed=self.duty is not None)
        give_back_free_memory()  # what start-up freed (~2 MiB here) would otherwise stay resident

    def register(self) -> None:
        while not self.store.register_worker(self.id, self._started, self.options.prune_interval):
            self._take_unique_id()
        self._next_beat = time.monotonic() + self.options.heartbeat_interval
        self._registered = True
        self.idle.forget_registration()

    def _take_unique_id(self) -> None:
        """Another live worker holds our id (a restarted container: same hostname, pid 1)."""
        taken, self.id = self.id, wire.tagged_worker_id(self.id)
        self.pruner.worker_id = self.id
        self.idle.rename(self.id, self.log)
        self.log = self.selection.log = self.log.bind(worker=self.id)
        self.log.warning("worker id held by another live worker; registering under a tagged id", taken=taken)

    # == 2-5. the loop =========================================================================
    def _run_loop(self) -> None:
        while True:
            self.children.reap()
            self._handle_signals()
            self._check_supervisor()
            if self.shutdown:
                return
            try:
                self._run_timers()
                if self.paused or self.selection.all_paused():
                    self._flush_bookkeeping()
                    self.idle.cancel()
                    self._title("Paused")
                    self._idle(self.options.interval or 1.0)
                    continue
                reserved = None if self.idle.pending() else self._reserve()
                if reserved is None:
                    if self.options.interval == 0:
                        return  # burst mode: queues drained (the reserve applied the last bookkeeping)
                    self.children.retire_idle_helper(self._last_job_at)
                    self._wait_for_work()
                    continue
            except _REDIS_DOWN as exc:
                self._redis_outage(exc)
                continue
            except redis.ResponseError as exc:  # refused for what a key holds: logged once, never fatal
                self.store.problems.append(str(exc))
                self.outage.report(self.store)
                self._idle(1.0)
                continue
            self.outage.back()
            self._process_safely(*reserved)
            self._last_job_at = time.monotonic()
            self.idle.job_done()

    def _process_safely(self, queue: str, item: bytes, started: int | None) -> None:
        """Nothing in a job's handling may kill the worker, nor lose the job."""
        begun = time.monotonic()
        try:
            self.process(queue, item, started)
        except _REDIS_DOWN as exc:  # its record stays: our recovery or the next prune deals with it
            self._redis_outage(exc)
        except Exception as exc:
            self.log.exception("internal error while handling a job; failing it", queue=queue)
            if self._unbooked is None:  # not yet booked: fail it now, with the reason
                try:
                    payload = wire.decode_payload(item)
                except InvalidPayload as bad:
                    payload = wire.readable_payload(item, str(bad))
                job = jobmod.Job(queue, payload, self.id, item)
                try:
                    self._finish(job, started, jobmod.failure_outcome(exc), begun)
                except Exception:
                    self.log.exception("could not record the failure; the next prune will", queue=queue)

    def _reserve(self) -> tuple[str, bytes, int | None] | None:
        queues = self.selection.names()
        if not queues:  # a glob that matches no queue yet: wait, never spin
            self._flush_bookkeeping()
            if self.options.interval > 0:
                self._idle(min(self.options.interval, defaults.MAX_BLOCK_SECONDS))
            return None
        self._title(procline.waiting(",".join(queues)))
        now = time.time()
        run_at = wire.iso_z(now)
        booked = self._unbooked
        try:
            found = self.store.reserve(queues, self.id, run_at, int(now), finished=booked)
        except AllPaused:
            self._unbooked = None  # applied before the pause check
            self.selection.learned_paused()
            return None
        except _REDIS_DOWN:
            if booked is not None:
                booked.retry = True
            raise
        self._unbooked = None
        self.outage.report(self.store)
        if found is not None:
            self._record = wire.expected_working_on(found[0], run_at, found[1])
        return found

    # -- one job ---------------------------------------------------------------------------
    def process(self, queue: str, item: bytes, started: int | None) -> None:
        """Run one reserved job and record its outcome; every line logged meanwhile names it."""
        try:
            self._process(queue, item, started)
        finally:
            unbind_job()

    def _process(self, queue: str, item: bytes, started: int | None) -> None:
        begun = time.monotonic()
        try:
            payload = wire.decode_payload(item)
        except InvalidPayload as exc:
            job = jobmod.Job(queue, wire.readable_payload(item, str(exc)), self.id, item)
            bind_job(job.log_fields)
            self._fail_here(job, started, exc, begun)
            return
        job = jobmod.Job(queue, payload, self.id, item)
        bind_job(job.log_fields)
        try:
            target = self.resolver.resolve(job.job_class)
            policies.retry_policy(target)  # a nonsense attribute-form policy fails here, not after the run
        except JobClassNotFound as exc:
            self._fail_here(job, started, exc, begun)
            return
        except Exception as exc:  # a nonsense policy, a class that breaks on inspection, …
            self._fail_here(job, started, JobClassNotFound(
                f"Could not load job class {job.job_class}: {type(exc).__name__}: {exc}"), begun)
            return
        if self.inbox.pending or self.shutdown_now:  # a stop signal came in while we reserved
            self._handle_signals()
            if self.shutdown_now:
                self._give_back(job, started)
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
        if not outcome.ok and outcome.exception == "pyresque.DirtyExit":
            self._safe_event("onFailure", DirtyExit(outcome.error), job)
        policy = policies.retry_policy(target)
        if not outcome.ok and policy is not None and policy.should_retry(job.attempt, outcome.exception):
            self._retry_later(job, started, outcome, policy, begun)
            return
        self._finish(job, started, outcome, begun)
        digest = policies.unique_digest(target, job.args)
        if digest is not None:
            self._release(lambda: self.store.release_unique(self.resque.keys.unique_lock(digest)))

    def _execute(self, job: jobmod.Job, target: Any, limit: float | None) -> jobmod.Outcome:
        """Run the job: in a child (fork modes) or here (inline); a threaded slot overrides it."""
        if self.options.fork:
            return self.children.run(job, limit)
        # the title a forked child would carry, on the process that runs the job (Ruby without fork)
        self._title(procline.processing(job.queue, int(time.time()), job.job_class))
        self._log_started(job)
        if self._busy_beat is None:
            self._busy_beat = BusyBeat(self._busy_timers, min(defaults.DUTY_INTERVAL, self.options.heartbeat_interval))
        with self._busy_beat:
            return jobmod.run_with_time_limit(job, target, limit)

    def _log_started(self, job: jobmod.Job) -> None:
        """The job's start line: in fork mode once the child has the job, so its start does not
        wait for the line (~0.15 ms after an idle spell here)."""
        self.log.info("job started", job_id=job.id, job_class=job.job_class, queue=job.queue, attempt=job.attempt)

    def _bookkeeping(self, final: bool = True) -> Bookkeeping:
        """The job in hand's bookkeeping, to be filled in (a retry once a reply was lost)."""
        return Bookkeeping(record=self._record, final=final)

    # -- waiting for work ------------------------------------------------------------------
    def _wait_for_work(self) -> None:
        """Every queue is empty: wait (:mod:`.idle`) until a job comes or a timer is due."""
        retire_at = self._last_job_at + self.options.helper_idle
        until = min(self._next_wake(), time.monotonic() + 1.0)  # a glob's new queue within a second
        until = min(until, retire_at) if retire_at > time.monotonic() else until
        if self.idle.wait(self.selection.names(), until, self.inbox.fds[0], self._idle):
            self.outage.report(self.store)

    def _title(self, status: str) -> None:
        procline.set_title(status)

    def _waiting_status(self, job: jobmod.Job, started: int | None) -> tuple[str | None, str | None]:
        """Status key and WAITING packet of a tracked job that goes back to wait (untracked: None)."""
        if job.id is None or started is None:  # untracked: the reserve saw no status key
            return None, None
        return self.resque.keys.status(job.id, job.status_prefix), wire.encode_status(wire.WAITING, int(time.time()), started)

    def _give_back(self, job: jobmod.Job, started: int | None) -> None:
        """Put a job we were told to drop before it started back at the head of its queue."""
        self.store.requeue_reserved(self.id, job.queue, job.raw, *self._waiting_status(job, started), at_head=True)
        self.log.info("stopping: job put back on its queue unstarted", job_id=job.id, job_class=job.job_class)

    def _take_slot(self, job: jobmod.Job, target: Any, started: int | None) -> str | bool | None:
        """For a ``@limit_concurrency`` class: the slots key once a slot is ours, ``False`` when
        none is free (the job went back to the end of its queue), ``None`` for other classes."""
        limit = getattr(target, "concurrency_limit", None)
        if not isinstance(limit, int):
            return None
        key = self.resque.keys.concurrency_slots(canonical_name(target))  # aliases share the slots
        lease = float(getattr(target, "concurrency_lease", 3600.0))
        if self.store.acquire_slot(key, self.id, limit, time.time(), lease):
            return key
        self.store.requeue_reserved(self.id, job.queue, job.raw, *self._waiting_status(job, started))
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
        booked.status_key, booked.status_packet = self._waiting_status(job, started)
        booked.timed(job.job_class, time.monotonic() - begun, failed=True)  # a run that failed, then retried
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
        """A job that cannot even start (bad payload, unknown class) fails in the parent, no fork.

        An item the reserve script could not read as JSON left its status untouched; its id, when
        one can be read, still gets status FAILED (only if that status key exists, php's rule)."""
        self._safe_event("onFailure", exc, job)
        if started is None and job.id is not None:
            started = int(time.time())
        self._finish(job, started, jobmod.failure_outcome(exc, with_backtrace=False), begun)

    def _check_supervisor(self) -> None:
        supervisor = self.options.supervisor_pid
        if supervisor is not None and not self.shutdown and os.getppid() != supervisor:
            self.log.warning("supervising master is gone: finishing the current job, then exiting", master=supervisor)
            self.shutdown = True

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
        duration = time.monotonic() - begun
        booked.timed(job.job_class, duration, failed=not outcome.ok)  # the class's metrics, same script
        self._unbooked = booked
        if self.shutdown:
            self._flush_bookkeeping()
        fields = dict(job_id=job.id, job_class=job.job_class, queue=job.queue, duration=round(duration, 6))
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
                self.outage.report(self.store)
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
                self.log.info("shutting down now", signal=name, **signals.hint(signum))
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
        self.children.kill()

    def _stop_jobs_at_once(self) -> None:
        """A second TERM/INT: no more grace."""
        self.children.kill(force=True)

    def _idle(self, seconds: float) -> None:
        """Sleep, but wake at once for a signal (and every second under a supervisor)."""
        if self.options.supervisor_pid is not None:
            seconds = min(seconds, 1.0)
        self.inbox.wait(seconds)

    # -- heartbeat, pruning, delayed jobs, outages ------------------------------------------
    def _run_timers(self) -> None:
        if self.duty is not None:
            self.duty.run_if_due()
        if time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + self.options.heartbeat_interval
        self._beat()

    def _busy_timers(self) -> None:
        """Inline mode, from BusyBeat's thread while a job holds the loop: the heartbeat (else a
        prune would take us for dead) and the delayed jobs (else a lone worker's would wait)."""
        if self.duty is not None:
            self.duty.run_if_due()
        if time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + self.options.heartbeat_interval
            self._heartbeat()

    def _between_wakes(self) -> None:
        """While a child runs: the loop's own timers, at each wake of the supervisor's watch."""
        self._check_supervisor()
        try:
            self._run_timers()
        except _REDIS_DOWN as exc:
            self.outage.down(exc)

    def _next_wake(self) -> float:
        """When :meth:`_between_wakes` next has work: the heartbeat, delayed jobs, the master check."""
        due = self._next_beat if self.duty is None else min(self._next_beat, self.duty.due)
        if self.options.supervisor_pid is not None:
            due = min(due, time.monotonic() + 1.0)  # notice a dead master within a second
        return due

    def _beat(self) -> None:
        self._heartbeat()
        self.pruner.prune()

    def _heartbeat(self) -> None:
        if not self.store.heartbeat(self.id):
            self.log.warning("this worker's registration vanished (Redis restarted?): registering again")
            self.register()

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
        record = wire.in_flight(raw) if raw is not None else None
        if record is None:
            return
        _, started = self.pruner.started_of(record.payload)
        self.log.warning("recovering the job our lost reply reserved", job_class=record.payload.get("class"))
        item = wire.encode_payload(record.payload) if record.readable else record.payload["raw"]
        self.process(record.queue, item.encode("utf-8", "surrogateescape"), started)

    # == 6. unregister =========================================================================
    def _teardown(self) -> None:
        self.children.stop()
        if self._busy_beat is not None:
            self._busy_beat.stop()
        self.unregister_with_retries()
        self._safe_event("workerExit", self)
        remove_pidfile(self.options.pidfile)
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
        """Ruby's unregister; a job still recorded as running is failed first (DirtyExit), or
        requeued if its class allows it, exactly as a prune would; a job parked by a wait goes back."""
        self.idle.close()
        self.pruner.prune_worker(self.id, heartbeat_expired=False, quiet=True)
        self._registered = False

    # -- helpers ---------------------------------------------------------------------------
    def _safe_event(self, event: str, *args: Any) -> None:
        try:
            hooks.trigger(event, *args)
        except Exception as exc:
            self.log.error("event listener failed", event=event, error=f"{type(exc).__name__}: {exc}")
