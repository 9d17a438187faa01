"""Every worker's share of scheduling: moving due delayed jobs and retries, so that no retry and
no ``enqueue_in`` job waits on a scheduler process nobody started.

Once a second (:data:`~pyresque.defaults.DUTY_INTERVAL`) a worker asks whether anything in
``delayed_queue_schedule`` is due: one ZRANGEBYSCORE, the whole idle cost. When something is, it
takes resque-scheduler's master lock, moves the due jobs with the scheduler's own atomic moves
(:func:`~.moving.move_due`) and releases the lock at once. A scheduler process that holds the lock
(``pyresque-scheduler`` or Ruby's resque-scheduler, which also fire recurring schedules) is left
to do the moving; one that starts later takes the lock at its next pass, since a worker holds it
only for the milliseconds of its move. Recurring schedules stay with the scheduler process: they
come from its schedule file, which workers do not read.
"""

from __future__ import annotations

import random
import time
from typing import Any

import redis

from .. import defaults
from ..queue import Resque
from ..store.scheduler_store import SchedulerStore
from .lock import MasterLock
from .moving import move_due

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionResetError)


class DelayedDuty:
    """A worker's (or a master's) periodic pass over the due delayed jobs; the host loop calls
    :meth:`run_if_due` and sleeps no later than :attr:`due`."""

    def __init__(self, resque: Resque, lock_value: str, log: Any, interval: float = defaults.DUTY_INTERVAL,
                 lock_ttl: int = defaults.DUTY_LOCK_TTL) -> None:
        self.resque = resque
        self.store = SchedulerStore(resque.redis, resque.keys)
        self.lock = MasterLock(self.store, lock_value, lock_ttl, log)
        self.name = f"{lock_value}:scheduler"  # names us in the failure record of an unmovable item
        self.log = log
        self.interval = interval
        self.due = time.monotonic() + random.uniform(0, interval)  # workers started together spread out
        self._reported: set[str] = set()

    def run_if_due(self) -> int:
        """One pass if its time has come; returns how many jobs moved. Redis being down is the
        caller's to handle; anything else is logged once and never stops the worker."""
        now = time.monotonic()
        if now < self.due:
            return 0
        self.due = now + self.interval * random.uniform(0.9, 1.1)
        try:
            return self._pass()
        except _REDIS_DOWN:
            self.lock.forget()
            raise
        except Exception as exc:  # a reply no one foresaw: the next pass tries again
            self._report(f"moving delayed jobs failed: {type(exc).__name__}: {exc}")
            return 0

    def _pass(self) -> int:
        if not self.store.due_timestamps(int(time.time()), 1):
            self._report_problems()
            return 0
        if not self.lock.elect():
            return 0  # a scheduler process (or another worker, right now) is moving them
        try:
            moved = move_due(self.resque, None, defaults.DELAYED_BATCH, self.name)
        finally:
            self.lock.release()
        if moved.moved or moved.failed:
            self.log.info("moved due delayed jobs", moved=moved.moved, failed=moved.failed)
        self.store.problems += moved.problems
        self._report_problems()
        return moved.moved

    def _report_problems(self) -> None:
        for problem in self.store.take_problems():
            self._report(problem)

    def _report(self, problem: str) -> None:
        if problem not in self._reported:
            self._reported.add(problem)
            self.log.warning("delayed jobs: problem in Redis content", problem=problem)
