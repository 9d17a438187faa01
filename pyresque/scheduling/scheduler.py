"""The scheduler process: moves due delayed jobs and fires recurring schedules, as one master.

=========  ====================================================================================
signal     scheduler (resque-scheduler's table)
=========  ====================================================================================
QUIT       finish the current pass, release the master lock (if ours), exit
TERM/INT   the same: a pass is a few atomic Redis calls, nothing is left half-done
USR1       log the loaded schedules
USR2       reload the schedules (the file and ``persistent_schedules``)
=========  ====================================================================================
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass

import redis

from .. import defaults
from ..log import get_logger
from ..process.pidfile import remove_pidfile, write_pidfile
from ..process.signal_inbox import SignalInbox
from ..queue import Resque
from ..store.outage import Outage
from ..store.scheduler_store import SchedulerStore
from ..wire import payload as wire
from ..wire import procline
from .lock import MasterLock
from .moving import move_due
from .schedules import (
    InvalidSchedule,
    Schedule,
    display_name,
    format_last,
    load_schedule_file,
    next_run,
    parse_last,
    parse_stored,
)

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionResetError)

#: What each signal asks of the scheduler; the handler only records it.
SIGNALS: dict[int, str] = {
    signal.SIGQUIT: "stop",
    signal.SIGTERM: "stop",
    signal.SIGINT: "stop",
    signal.SIGUSR1: "print",
    signal.SIGUSR2: "reload",
}


@dataclass
class SchedulerOptions:
    interval: float = defaults.SCHEDULER_INTERVAL
    lock_ttl: int = defaults.SCHEDULER_LOCK_TTL
    batch: int = defaults.DELAYED_BATCH
    schedule_file: str | None = None
    #: Also run ``persistent_schedules`` (resque-scheduler's DYNAMIC_SCHEDULE; on by default here).
    dynamic: bool = True
    pidfile: str | None = None


class Scheduler:
    """One scheduler process, a peer of resque-scheduler's on the same Redis.

    Lifecycle:

    1. **startup**: title ``Starting``, signal handlers (flags only), read the schedule file
       (a bad file stops it here, with the reason).
    2. **elect**, every pass: take resque-scheduler's master lock (SETNX + EXPIRE, value
       ``host:pid``) or refresh it if it is ours. Only the master does steps 3-5, so a pyresque
       and a Ruby scheduler never both run; another scheduler takes over once a dead master's
       lock expires (``LOCK_TIMEOUT``), or from a lock without a TTL or one nobody has
       refreshed for a whole lock timeout (:mod:`.lock`). On becoming master: title
       ``Master scheduler``, load the schedules; on losing it: ``Child scheduler``.
    3. **move due delayed jobs** (title ``Processing Delayed Items``): one atomic Lua
       compare-and-move per batch (see :func:`pyresque.scheduling.moving.move_due`), so a scheduler that dies
       mid-move neither loses nor duplicates a job.
    4. **update schedules** changed through ``schedules_changed`` (SPOP, as Ruby's master does).
    5. **fire due ticks**: each is a compare-and-set on ``delayed:last_enqueued_at``, so even two
       schedulers that both believe they are master (a stalled one whose lock expired) fire a
       tick once; after downtime only the latest missed tick fires.
    6. **sleep** ``interval`` seconds, waking at once for a signal.
    7. **shutdown**: release the lock if it is still ours (Lua compare-and-delete), exit 0.

    Redis outages: the lock is treated as lost (Ruby releases it on intermittent errors), one
    warning, capped backoff, and the loop goes on.
    """

    def __init__(self, resque: Resque, options: SchedulerOptions | None = None, hostname: str | None = None) -> None:
        self.resque = resque
        self.options = options or SchedulerOptions()
        self.store = SchedulerStore(resque.redis, resque.keys)
        self.hostname = hostname or socket.gethostname()
        self.pid = os.getpid()
        self.lock_value = f"{self.hostname}:{self.pid}"
        self.worker_id = f"{self.hostname}:{self.pid}:scheduler"  # names us in failure records
        self.log = get_logger("pyresque.scheduler").bind(scheduler=self.lock_value)
        self.lock = MasterLock(self.store, self.lock_value, self.options.lock_ttl, self.log)
        self.master = False
        self._role_known = False  # the first pass always sets the title, as Ruby's was_master = nil
        self.shutdown = False
        self.static: dict[str, Schedule] = {}
        self.schedules: dict[str, Schedule] = {}
        self._anchors: dict[str, float] = {}
        self._schedule_errors: set[tuple[str, str]] = set()
        self.inbox = SignalInbox(SIGNALS)
        self.outage = Outage(self.log, self.resque.settings.display_url)

    # == 1. startup ============================================================================
    def run(self) -> int:
        procline.scheduler("Starting")
        if self.options.schedule_file:
            self.static = load_schedule_file(self.options.schedule_file)
        self.inbox.install()
        write_pidfile(self.options.pidfile)
        self.log.info("scheduler started", interval=self.options.interval, lock_ttl=self.options.lock_ttl,
                      static_schedules=sorted(self.static), dynamic=self.options.dynamic)
        try:
            while not self.shutdown:
                self._handle_signals()
                if self.shutdown:
                    break
                try:
                    self.tick()
                    self.outage.back()
                except _REDIS_DOWN as exc:
                    self._redis_outage(exc)
                    continue
                except Exception:  # a bad reply or a bug must not stop every delayed job
                    self.log.exception("scheduler pass failed; trying again next pass")
                self._idle(self.options.interval)
        finally:
            self._teardown()
        return 0

    # == 2-5. one pass =========================================================================
    def tick(self, now: float | None = None) -> None:
        """One pass: elect, then (as master) move due jobs, update schedules, fire ticks."""
        was_master = self.master if self._role_known else None
        self.master = self.elect()
        self._role_known = True
        if self.master != was_master:
            procline.scheduler("Master scheduler" if self.master else "Child scheduler")
            self.log.info("became master" if self.master else "not master",
                          holder=None if self.master else self.store.lock_holder())
            if self.master:
                self.reload_schedules()
        if not self.master:
            return
        self.store.refresh_loaded(self.options.lock_ttl)
        moved = move_due(self.resque, now, self.options.batch, self.worker_id)
        if moved.moved or moved.failed:
            procline.scheduler("Processing Delayed Items")
            self.log.info("moved delayed jobs", moved=moved.moved, failed=moved.failed)
        changing = [bucket for bucket in moved.skipped if bucket not in moved.broken]
        if changing:
            self.log.warning("delayed buckets left for the next pass (changing underneath)", buckets=changing)
        self.store.problems += moved.problems  # broken buckets and keys: each logged once, not every pass
        if self.options.dynamic and self.store.drain_schedules_changed():
            self.reload_schedules()
        self.fire_due(time.time() if now is None else now)
        self.outage.report(self.store)

    def elect(self) -> bool:
        """resque-scheduler's ``master?``, guarded against locks nobody refreshes (see lock.py)."""
        return self.lock.elect()

    def reload_schedules(self) -> None:
        """The file's schedules, then ``persistent_schedules`` (which win a name clash, as in Ruby).

        A persisted schedule that cannot run (not JSON, NaN, not an object, a cron that never
        fires…) is skipped with one error naming it; the others load and fire."""
        procline.scheduler("Loading Schedule")
        schedules = dict(self.static)
        sources = {name: "file" for name in schedules}
        if self.options.dynamic:
            for name, raw in self.store.persistent_schedules().items():
                try:
                    schedule = parse_stored(name, raw)
                except InvalidSchedule as exc:
                    self._report_schedule("persisted schedule skipped", display_name(name), str(exc))
                    continue
                schedules[schedule.name] = schedule
                sources[schedule.name] = "redis"
        now = time.time()
        self._anchors = {name: self._anchors.get(name, now) for name in schedules}
        self.schedules = schedules
        runnable = sorted(name for name, s in schedules.items() if s.recurring)
        self.log.info("schedules loaded", schedules=runnable,
                      manual_only=sorted(name for name, s in schedules.items() if not s.recurring))
        self._publish(sources, now)
        procline.scheduler("Schedules Loaded")

    def _publish(self, sources: dict[str, str], now: float) -> None:
        """Tell ``schedule list`` what runs here and log each schedule's next run: a schedule
        from ``--schedule`` lives in this process only, as it does in resque-scheduler."""
        last_seen = self.store.last_enqueued()
        entries = {}
        for name, schedule in sorted(self.schedules.items()):
            config = dict(schedule.config or {})
            entries[name] = wire.encode_loaded_schedule(wire.LoadedSchedule(
                sources[name], config, self._anchors[name], self.lock_value,
                self.options.schedule_file if sources[name] == "file" else None))
            upcoming = next_run(schedule, last_seen.get(name), self._anchors[name], now)
            self.log.info("schedule", schedule=name, source=sources[name], job_class=schedule.job_class,
                          queue=schedule.queue, interval=schedule.interval_text,
                          next_run=wire.iso_z(upcoming) if upcoming is not None else "manual only")
        self.store.publish_loaded(entries, self.options.lock_ttl)

    def fire_due(self, now: float) -> int:
        """Enqueue each schedule whose next tick is due; returns how many fired. One that cannot
        (croniter finds no tick, its queue key is not a list) is logged once; the others fire."""
        if not self.schedules:
            return 0
        last_seen = self.store.last_enqueued()
        fired = 0
        for name, schedule in self.schedules.items():
            if not schedule.recurring:
                continue
            try:
                fired += self._fire_one(name, schedule, last_seen.get(name), now)
            except (ValueError, OverflowError) as exc:  # croniter's errors are ValueErrors
                self._report_schedule("schedule cannot fire", name, str(exc))
        return fired

    def _fire_one(self, name: str, schedule: Schedule, raw_last: str | None, now: float) -> int:
        last = parse_last(raw_last)
        if last is not None:
            last = min(last, now)  # a clock ahead of ours must not stall the schedule
        due = schedule.next_tick(last, self._anchors.setdefault(name, now))
        if due > now:
            return 0
        tick = schedule.latest_due(due, now)
        payload = schedule.payload(now)
        done = self.store.fire(name, raw_last, format_last(tick), schedule.queue, wire.encode_payload(payload), None, None)
        if done == 1:
            self.log.info("recurring job enqueued", schedule=name, job_class=schedule.job_class,
                          queue=schedule.queue, job_id=payload.get("id"), tick=format_last(tick),
                          missed_ticks_collapsed=tick > due)
            return 1
        if done == 0:
            self.log.info("tick already fired by another scheduler", schedule=name)
        return 0  # -1: the store noted why, and the pass reports it once

    def _report_schedule(self, event: str, name: str, error: str) -> None:
        """Log a schedule that cannot run once per process, not at every reload or pass."""
        if (name, error) not in self._schedule_errors:
            self._schedule_errors.add((name, error))
            self.log.error(event, schedule=name, error=error)

    # -- signals and sleeping ---------------------------------------------------------------
    def _handle_signals(self) -> None:
        for signum in self.inbox.take():
            action = SIGNALS.get(signum)
            name = signal.Signals(signum).name
            if action == "stop":
                self.log.info("shutting down", signal=name)
                self.shutdown = True
            elif action == "print":
                for sname, schedule in sorted(self.schedules.items()):
                    self.log.info("schedule", schedule=sname, job_class=schedule.job_class, queue=schedule.queue,
                                  interval=schedule.interval_text)
            elif action == "reload":
                self.log.info("reloading schedules", signal=name)
                try:
                    if self.options.schedule_file:
                        self.static = load_schedule_file(self.options.schedule_file)
                    if self.master:
                        self.reload_schedules()
                except ValueError as exc:  # a broken file: keep the schedules we have
                    self.log.error("schedule file not reloaded", error=str(exc))
                except _REDIS_DOWN as exc:
                    self.outage.down(exc)

    def _idle(self, seconds: float) -> None:
        self.inbox.wait(seconds)

    # -- outages ------------------------------------------------------------------------------
    def _redis_outage(self, exc: BaseException) -> None:
        self.outage.down(exc)
        self.lock.forget()
        if self.master:
            self.master = False  # Ruby releases its lock here; we cannot reach Redis to do so
        self._role_known = False
        self._idle(self.outage.next_delay())

    # == 7. shutdown ===========================================================================
    def _teardown(self) -> None:
        try:
            if self.lock.release():
                self.store.clear_loaded()  # ours, and nobody runs them now
                self.log.info("master lock released")
        except _REDIS_DOWN as exc:
            self.outage.down(exc)
        self.master = False
        remove_pidfile(self.options.pidfile)
        self.inbox.close()
        self.log.info("scheduler stopped")

