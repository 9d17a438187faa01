"""Signal handlers that only record a flag, and a fd that wakes the process's ``select()``.

Habit 3 of the codebase: a handler never acts, the main loop does. Each process (worker,
master, scheduler) brings its own table of what a signal means.
"""

from __future__ import annotations

import os
import select
import signal
from typing import Any, Iterable


class SignalInbox:
    """Handlers that only record which signals arrived, plus a fd that wakes ``select()``.

    One per process (worker, master, scheduler): ``install`` takes the process's signal
    dispositions and wakeup fd; ``take`` hands the loop what arrived since; ``close`` gives the
    defaults back.
    """

    def __init__(self, signums: Iterable[int]) -> None:
        self.signums = tuple(signums)
        self.pending: list[int] = []
        self.fd = self._write_fd = -1

    @property
    def fds(self) -> tuple[int, int]:
        """Both ends of the wakeup pipe: a forked helper must close them."""
        return self.fd, self._write_fd

    def install(self) -> None:
        self.fd, self._write_fd = os.pipe()
        for fd in self.fds:
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in self.signums:
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)  # only a flag: the loop acts on it

    def take(self) -> list[int]:
        """The signals received since the last call, oldest first; empties the wakeup pipe."""
        try:
            while os.read(self.fd, 512):
                pass
        except OSError:  # BlockingIOError: drained; or not installed
            pass
        taken, self.pending[:] = list(self.pending), []
        return taken

    def wait(self, seconds: float | None) -> None:
        """Sleep up to ``seconds`` (``None``: until a signal), waking at once when one arrives."""
        select.select([self.fd], [], [], None if seconds is None else max(0.0, seconds))

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        for signum in self.signums:
            signal.signal(signum, signal.SIG_DFL)
        for fd in self.fds:
            if fd >= 0:
                os.close(fd)
        self.fd = self._write_fd = -1
