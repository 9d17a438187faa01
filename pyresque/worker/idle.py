"""How a worker with nothing to do waits: blocked in BLMOVE (:mod:`pyresque.store.waiting`, the
default), or polling every ``INTERVAL`` (``BLOCKING=0``, or a Redis that cannot wait); either
way it wakes for its own timers and for signals, and never reserves while a wait is still on.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from ..store.datastore import DataStore
from ..store.waiting import QueueWaiter, WaitUnsupported


class IdleWait:
    """One worker's idle state: its BLMOVEs (if it waits) or its next poll (if it polls)."""

    def __init__(self, store: DataStore, worker_id: str, blocking: bool, interval: float, log: Any) -> None:
        self.waiter = QueueWaiter(store, worker_id) if blocking else None
        self.interval = interval
        self.log = log
        self._next_poll = time.monotonic()

    @property
    def blocking(self) -> bool:
        return self.waiter is not None

    def rename(self, worker_id: str, log: Any) -> None:
        """The worker took another id (its own was held by a live worker)."""
        self.log = log
        if self.waiter is not None:
            self.waiter.worker_id = worker_id

    def forget_registration(self) -> None:
        """The worker registered again (Redis restarted, or a prune dropped it): so must its lists."""
        if self.waiter is not None:
            self.waiter.forget_registration()

    def pending(self) -> bool:
        """Is a wait still on? Then a job that arrives ends it and no reserve is needed: BLMOVEs
        are blocked, or (polling) the interval has not passed since the last empty reserve."""
        if self.waiter is not None:
            return self.waiter.pending
        return time.monotonic() < self._next_poll

    def job_done(self) -> None:
        """A job ran: look for the next one at once (php-resque polls again without a pause)."""
        self._next_poll = time.monotonic()

    def wait(self, queues: Sequence[str], until: float, wake_fd: int, sleep: Callable[[float], None]) -> bool:
        """Every queue is empty: wait until a job comes, ``until`` (monotonic) or ``wake_fd``.
        Returns True when it waited in BLMOVE, False when it slept (``sleep`` wakes for signals)."""
        if self.waiter is not None and self._attempt(lambda w: w.wait(queues, self.interval, until, (wake_fd,))):
            return True
        if not self.pending():
            self._next_poll = time.monotonic() + self.interval
        sleep(max(min(self._next_poll, until) - time.monotonic(), 0.0))
        return False

    def cancel(self) -> None:
        """End the wait (before a pause): no job may sit parked while the worker does not look."""
        self._attempt(QueueWaiter.cancel)

    def close(self) -> None:
        """At exit: end the wait, put back what it parked, drop the worker's lists."""
        if self.waiter is not None:
            self.waiter.close()

    def _attempt(self, step: Callable[[QueueWaiter], Any]) -> bool:
        """Run a step of the wait; if Redis cannot wait, say so once and poll from now on."""
        if self.waiter is None:
            return False
        try:
            step(self.waiter)
            return True
        except WaitUnsupported as exc:
            self.log.warning("cannot wait for jobs with BLMOVE; polling every INTERVAL instead",
                             reason=str(exc), interval=self.interval)
            self.waiter.close()
            self.waiter = None
            return False
