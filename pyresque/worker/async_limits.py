"""What protects an async worker's process: its sync jobs' thread pool, its loop's lag, its memory.

* :class:`DaemonPool`: the bounded pool a plain ``def perform`` runs in. Daemon threads, unlike
  ``ThreadPoolExecutor``'s (joined at interpreter exit): a job stuck in C code that the worker
  already recorded as killed must not keep a stopping process alive.
* :class:`LagProbe`: how late the loop wakes a timer. Past ``PYRESQUE_ASYNC_LAG_WARN`` seconds
  it logs (at most every 10 s) and the worker reserves nothing new until the loop catches up.
* :class:`MemoryCeiling`: past ``PYRESQUE_ASYNC_MAX_MEMORY`` MiB of RSS the worker takes no
  new job and retires once its jobs are done (exit 0: a master or systemd starts a fresh one).
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any, Callable

import psutil

_LAG_EVERY = 0.1  # seconds between two probes
_LAG_LOG_EVERY = 10.0


class DaemonPool(Executor):
    """A bounded executor of daemon threads, started as work needs them."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # a waiting thread takes it
            elif len(self._threads) < self.size:
                thread = threading.Thread(target=self._serve, name=f"pyresque-async-sync-{len(self._threads) + 1}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        self._work.put((future, (lambda: fn(*args, **kwargs))))
        return future

    def _serve(self) -> None:
        while True:
            try:
                item = self._work.get()
                if item is None:
                    return
                future, call = item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(call())
                    except BaseException as exc:  # the job's own errors are outcomes; this is ours
                        future.set_exception(exc)
            except BaseException:  # a stray interruption that came after its job returned
                pass
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for _ in self._threads:
            self._work.put(None)


class LagProbe:
    """Measures how late the loop runs a timer; ``lagging`` while the last probe passed the threshold."""

    def __init__(self, threshold: float, log: Any) -> None:
        self.threshold = threshold
        self.log = log
        self.lagging = False
        self.samples: collections.deque[float] = collections.deque(maxlen=20000)
        self._last_log = 0.0

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(_LAG_EVERY)
            lag = max(0.0, time.monotonic() - before - _LAG_EVERY)
            self.samples.append(lag)
            self.lagging = self.threshold > 0 and lag > self.threshold
            if self.lagging and time.monotonic() - self._last_log >= _LAG_LOG_EVERY:
                self._last_log = time.monotonic()
                self.log.warning("event loop lagging: no new job is reserved until it catches up",
                                 lag_ms=round(lag * 1000, 1), threshold_ms=round(self.threshold * 1000, 1))

    def summary(self) -> dict[str, float]:
        """p50, p99 and max of the probes so far, in ms (the benchmark reads them from the log)."""
        ordered = sorted(self.samples)
        if not ordered:
            return {}

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)
        return {"lag_p50_ms": at(0.5), "lag_p99_ms": at(0.99), "lag_max_ms": round(ordered[-1] * 1000, 2),
                "lag_probes": len(ordered)}


class MemoryCeiling:
    """The process's RSS against a ceiling in MiB (0 = none), read at most once a second."""

    def __init__(self, ceiling_mb: float, log: Any) -> None:
        self.ceiling_mb = ceiling_mb
        self.log = log
        self.retiring = False
        self._checked = 0.0
        self._process = psutil.Process() if ceiling_mb > 0 else None

    def check(self) -> bool:
        """True (and from then on :attr:`retiring`) once RSS passed the ceiling."""
        if self._process is None or self.retiring:
            return self.retiring
        now = time.monotonic()
        if now - self._checked < 1.0:
            return False
        self._checked = now
        rss_mb = self._process.memory_info().rss / (1024 * 1024)
        if rss_mb > self.ceiling_mb:
            self.retiring = True
            self.log.warning("memory ceiling passed: taking no new job, retiring once the jobs in flight finish",
                             rss_mb=round(rss_mb, 1), ceiling_mb=self.ceiling_mb)
        return self.retiring
