"""One job in flight of an async worker (:mod:`.asyncmode`): start, run, book-keep.

What :meth:`Worker._process <pyresque.worker.worker.Worker._process>` does for one job, as a
task on the loop: decode and resolve (a bad payload or unknown class fails at once), the
concurrency slot, the run (an ``async def perform`` as a task of its own, a plain ``def`` in the
bounded thread pool), what an interruption makes of the outcome, retries through the delayed
queue, and the bookkeeping, which is queued for the loop's next pipeline.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import DirtyExit, InvalidPayload, JobClassNotFound
from ..jobs import async_run, policies
from ..jobs import job as jobmod
from ..jobs.resolver import canonical_name
from ..log import bind_job, unbind_job
from ..store.async_datastore import AsyncDataStore, Reserved
from ..store.datastore import Bookkeeping
from ..wire import payload as wire
from . import output
from .async_limits import DaemonPool
from .threaded import KILLED
from .worker import _REDIS_DOWN, Worker


@dataclass
class Slot:
    """One job in flight's worker id; ``flight`` is None while the slot is free."""

    number: int
    id: str
    flight: Flight | None = None


@dataclass
class Flight:
    """A job in flight, as the loop needs it to interrupt, time out or record it."""

    slot: Slot
    job: jobmod.Job
    started: int | None
    record: str
    begun: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    limit: float | None = None
    runner: asyncio.Future[jobmod.Outcome] | None = None
    on_loop: bool = True
    thread: threading.Thread | None = None
    interrupted: jobmod.Outcome | None = None
    own_failure_stands: bool = False
    #: what a job that lets its cancellation through is recorded as (TERM_CHILD: JobTerminated)
    cancelled_as: jobmod.Outcome | None = None
    give_up_at: float | None = None
    booked: bool = False  # its bookkeeping is queued (see _queue_bookkeeping)
    handler: asyncio.Task[None] | None = None  # the task handling it: cancelled when the loop gives up on it


def killed() -> jobmod.Outcome:
    return jobmod.Outcome(False, exception="pyresque.DirtyExit", error=KILLED)


class AsyncJobs(Worker):
    """The per-job half of :class:`~.asyncmode.AsyncWorker` (the loop's half is there)."""

    slots: list[Slot]
    free_slots: list[Slot]
    orphans: list[Slot]
    _recovering: bool
    astore: AsyncDataStore | None
    pending: list[tuple[str, Bookkeeping]]
    wake: asyncio.Event | None
    pool: DaemonPool
    _background: set[asyncio.Task[Any]]

    async def _backoff_async(self, exc: BaseException) -> None:
        raise NotImplementedError

    # == one job ==============================================================================
    def _start(self, reserved: Reserved, slot: Slot) -> None:
        payload_ok = True
        try:
            payload = wire.decode_payload(reserved.item)
        except InvalidPayload as exc:
            payload, payload_ok = wire.readable_payload(reserved.item, str(exc)), False
            bad: BaseException | None = exc
        else:
            bad = None
        job = jobmod.Job(reserved.queue, payload, slot.id, reserved.item)
        flight = Flight(slot, job, reserved.started, reserved.record)
        slot.flight = flight
        ctx = contextvars.copy_context()
        ctx.run(bind_job, job.log_fields)
        flight.handler = self._spawn_in(ctx, self._handle(flight, bad if not payload_ok else None))

    def _spawn_in(self, ctx: contextvars.Context, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = ctx.run(asyncio.get_running_loop().create_task, coro)  # runs in ctx (3.9's way)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _handle(self, flight: Flight, bad: BaseException | None) -> None:
        """Worker._process for one flight, off the loop's critical path; never raises."""
        try:
            await self._process_flight(flight, bad)
        except _REDIS_DOWN as exc:  # its record stays: our recovery at the next answer runs it again
            self.outage.down(exc)
            if flight.slot.flight is flight and not flight.booked:
                flight.slot.flight = None
                self.orphans.append(flight.slot)
                self._recovering = True
        except Exception as exc:
            self.log.exception("internal error while handling a job; failing it", queue=flight.job.queue)
            if flight.slot.flight is flight:
                self._book(flight, jobmod.failure_outcome(exc))
        finally:
            unbind_job()

    async def _process_flight(self, flight: Flight, bad: BaseException | None) -> None:
        assert self.astore is not None
        job = flight.job
        if bad is not None:
            self._fail_before_start(flight, bad)
            return
        try:
            target = self.resolver.resolve(job.job_class)
            policies.retry_policy(target)
        except JobClassNotFound as exc:
            self._fail_before_start(flight, exc)
            return
        except Exception as exc:
            self._fail_before_start(flight, JobClassNotFound(
                f"Could not load job class {job.job_class}: {type(exc).__name__}: {exc}"))
            return
        if self.shutdown_now:  # told to stop while we reserved: back at the head, unstarted
            await self.astore.requeue_reserved(flight.slot.id, job.queue, job.raw,
                                               *self._waiting_status(job, flight.started), at_head=True)
            self.log.info("stopping: job put back on its queue unstarted", job_id=job.id, job_class=job.job_class)
            self._free(flight)
            return
        jobmod.prepare(target)
        slots_key = await self._take_concurrency_slot(flight, target)
        if slots_key is False:
            return
        self._safe_event("beforeFork", job)
        limit = policies.job_timeout(target, self.options.job_timeout)
        flight.limit = limit
        flight.deadline = time.monotonic() + limit if limit else None
        try:
            outcome = await self._execute_flight(flight, target)
        finally:
            if isinstance(slots_key, str):
                await self._release_async(self.astore.release_slot(slots_key, flight.slot.id))
        if outcome is None:  # the loop recorded it (gave up on it) and freed the slot
            return
        if not outcome.ok and outcome.exception == "pyresque.DirtyExit":
            self._safe_event("onFailure", DirtyExit(outcome.error), job)
        policy = policies.retry_policy(target)
        if not outcome.ok and policy is not None and policy.should_retry(job.attempt, outcome.exception):
            await self._retry_later_async(flight, outcome, policy)
            return
        self._book(flight, outcome)
        digest = policies.unique_digest(target, job.args)
        if digest is not None:
            await self._release_async(self.astore.release_unique(self.resque.keys.unique_lock(digest)))

    async def _execute_flight(self, flight: Flight, target: Any) -> jobmod.Outcome | None:
        """Run the job; None when the loop gave up on it (recorded it itself, cancelled us)."""
        job = flight.job
        if flight.slot.flight is not flight:
            return None
        if flight.interrupted is not None:  # told to stop before it started: it does not start
            return flight.interrupted
        self.log.info("job started", job_id=job.id, job_class=job.job_class, queue=job.queue,
                      attempt=job.attempt, worker=flight.slot.id)
        flight.on_loop = async_run.runs_on_loop(target)
        if flight.on_loop:
            flight.runner = asyncio.ensure_future(async_run.run_async(job, target))
        else:
            ctx = contextvars.copy_context()
            flight.runner = asyncio.wrap_future(self.pool.submit(ctx.run, self._run_in_thread, flight, target))
        try:
            outcome = await flight.runner
        except asyncio.CancelledError:
            if flight.slot.flight is not flight:
                return None  # given up on: recorded already
            if flight.runner.cancelled():  # cancelled before its first step: it never ran
                return flight.interrupted or killed()
            raise
        if flight.slot.flight is not flight:
            return None
        if flight.interrupted is not None and not outcome.ok:
            if async_run.is_cancellation(outcome):
                return flight.cancelled_as or flight.interrupted
            if not flight.own_failure_stands:
                return flight.interrupted  # the job died of our interruption: say so as fork mode does
        return outcome

    def _run_in_thread(self, flight: Flight, target: Any) -> jobmod.Outcome:
        flight.thread = threading.current_thread()
        output.job_started(flight.job.log_fields)
        try:
            if flight.interrupted is not None:  # interrupted before its thread took it
                return flight.interrupted
            return jobmod.run(flight.job, target)
        finally:
            output.job_ended()
            flight.thread = None

    async def _take_concurrency_slot(self, flight: Flight, target: Any) -> str | bool | None:
        """Worker._take_slot, async: the slots key, False (requeued, slot freed) or None."""
        assert self.astore is not None
        limit = getattr(target, "concurrency_limit", None)
        if not isinstance(limit, int):
            return None
        key = self.resque.keys.concurrency_slots(canonical_name(target))
        lease = float(getattr(target, "concurrency_lease", 3600.0))
        if await self.astore.acquire_slot(key, flight.slot.id, limit, time.time(), lease):
            return key
        job = flight.job
        await self.astore.requeue_reserved(flight.slot.id, job.queue, job.raw, *self._waiting_status(job, flight.started))
        self.log.debug("concurrency limit reached, job requeued", job_class=job.job_class, limit=limit)
        await asyncio.sleep(0.05)
        self._free(flight)
        return False

    async def _release_async(self, step: Any) -> None:
        try:
            await step
        except _REDIS_DOWN as exc:
            self.outage.down(exc)

    async def _retry_later_async(self, flight: Flight, outcome: jobmod.Outcome, policy: policies.RetryPolicy) -> None:
        """Worker._retry_later: the next run through the delayed queue, status WAITING."""
        from ..scheduling.delayed import delay_payload

        job = flight.job
        delay = policy.delay(job.attempt)
        payload = wire.for_retry(job.payload, job.attempt, outcome.exception, outcome.error)
        while True:
            try:
                await asyncio.to_thread(delay_payload, self.resque, time.time() + delay, job.queue, payload)
                break
            except _REDIS_DOWN as exc:
                await self._backoff_async(exc)
        booked = Bookkeeping(record=flight.record, final=False)
        booked.status_key, booked.status_packet = self._waiting_status(job, flight.started)
        _timed(booked, job.job_class, time.monotonic() - flight.begun, failed=True)  # failed, then retried
        self._queue_bookkeeping(flight, booked)
        self.log.warning("job failed, retrying", job_id=job.id, job_class=job.job_class, queue=job.queue,
                         attempt=job.attempt, of=policy.attempts, retry_in=round(delay, 3), exc_class=outcome.exception,
                         error=outcome.error, duration=round(time.monotonic() - flight.begun, 6))

    def _fail_before_start(self, flight: Flight, exc: BaseException) -> None:
        """Worker._fail_here: a bad payload or unknown class fails at once, with the reason."""
        self._safe_event("onFailure", exc, flight.job)
        if flight.started is None and flight.job.id is not None:
            flight.started = int(time.time())
        self._book(flight, jobmod.failure_outcome(exc, with_backtrace=False))

    def _book(self, flight: Flight, outcome: jobmod.Outcome) -> None:
        """Worker._finish for a slot: the bookkeeping goes with the next round trip."""
        if flight.booked:
            return
        job = flight.job
        booked = Bookkeeping(record=flight.record)
        if job.id is not None and flight.started is not None:
            booked.status_key = self.resque.keys.status(job.id, job.status_prefix)
            booked.status_packet = wire.encode_status_json(
                wire.COMPLETE if outcome.ok else wire.FAILED, int(time.time()), flight.started,
                outcome.result_json if outcome.ok else "null")
        if not outcome.ok:
            booked.failure_record = wire.encode_failure(wire.build_failure(
                job.payload, outcome.exception, outcome.error, outcome.backtrace, flight.slot.id, job.queue))
        duration = time.monotonic() - flight.begun
        _timed(booked, job.job_class, duration, failed=not outcome.ok)
        self._queue_bookkeeping(flight, booked)
        fields = dict(job_id=job.id, job_class=job.job_class, queue=job.queue, worker=flight.slot.id,
                      duration=round(duration, 6))
        if outcome.ok:
            self.log.info("job done", outcome="skipped" if outcome.skipped else "complete", **fields)
        else:
            self.log.error("job failed", outcome="failed", exc_class=outcome.exception, error=outcome.error, **fields)

    def _queue_bookkeeping(self, flight: Flight, booked: Bookkeeping) -> None:
        """The slot is free once its bookkeeping is queued: the next pipeline writes the
        bookkeeping before any reserve, the slot's own included. Once per flight: a job the loop
        recorded itself (a stop, a stuck job) is never recorded again when it does return."""
        if flight.booked:
            return
        flight.booked = True
        self.pending.append((flight.slot.id, booked))
        self._free(flight)

    def _free(self, flight: Flight) -> None:
        if flight.slot.flight is flight:
            flight.slot.flight = None
            self.free_slots.append(flight.slot)
        if self.wake is not None:
            self.wake.set()


def _timed(booked: Bookkeeping, job_class: str, seconds: float, failed: bool) -> None:
    """The run, for the per-class metrics the bookkeeping script records (#15), as the sync
    worker's ``_finish`` gives it; a store without them has no ``timed``."""
    timed = getattr(booked, "timed", None)
    if timed is not None:
        timed(job_class, seconds, failed=failed)
