"""The worker's signal contract, as data. Handlers only record the signal; the loop acts.

=========  ====================================================================================
signal     worker parent
=========  ====================================================================================
QUIT       finish the current job, then unregister and exit
TERM       kill the child now (SIGKILL), record DirtyExit, unregister, exit (Resque's default);
           ``TERM_CHILD=1``: TERM the child, wait ``RESQUE_TERM_TIMEOUT`` (4 s), then KILL;
           ``GRACEFUL_TERM=1``: behave like QUIT (systemd/Kubernetes stops)
INT        as TERM (without GRACEFUL_TERM)
USR1       kill the child (as TERM would), record DirtyExit, keep working
USR2       pause after the current job (no new job is reserved)
CONT       resume
(2nd)      a second TERM or INT while shutting down kills the child and exits at once
=========  ====================================================================================

The child restores the default handlers: it is the parent's to decide its fate.
"""

from __future__ import annotations

import enum
import os
import select
import signal
from typing import Any, Iterable


class Action(enum.Enum):
    SHUTDOWN = "shutdown"  # graceful: finish the job
    SHUTDOWN_NOW = "shutdown_now"  # kill the child, exit
    KILL_CHILD = "kill_child"
    PAUSE = "pause"
    RESUME = "resume"


def table(graceful_term: bool) -> dict[int, Action]:
    return {
        signal.SIGQUIT: Action.SHUTDOWN,
        signal.SIGTERM: Action.SHUTDOWN if graceful_term else Action.SHUTDOWN_NOW,
        signal.SIGINT: Action.SHUTDOWN_NOW,
        signal.SIGUSR1: Action.KILL_CHILD,
        signal.SIGUSR2: Action.PAUSE,
        signal.SIGCONT: Action.RESUME,
    }


HANDLED = (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT)


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


def restore_defaults() -> None:
    """In the child: default dispositions, no wakeup fd."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)


# == the supervising master (master.py) ========================================================
# =========  ===================================================================================
# signal     master
# =========  ===================================================================================
# QUIT       QUIT every worker (each finishes its job), wait for them all, exit
# TERM/INT   forwarded: each worker acts on it as above (GRACEFUL_TERM, TERM_CHILD respected);
#            a second one is forwarded too; the master exits once every worker is gone
# USR1       forwarded: every worker kills its job's child and keeps working
# USR2/CONT  forwarded: pause / resume every worker (workers started later follow suit)
# HUP        rolling restart: re-read the configuration, start a new generation of workers,
#            QUIT the old generation once every new worker has registered
# TTIN/TTOU  one worker more / fewer in every queue group
# CHLD       (from the kernel) reap, and replace a worker that died unexpectedly
# =========  ===================================================================================


class MasterAction(enum.Enum):
    STOP = "stop"  # forward the signal, stop replacing workers, exit when none is left
    FORWARD = "forward"  # pass it on to every worker
    PAUSE = "pause"
    RESUME = "resume"
    ROLLING_RESTART = "rolling_restart"
    MORE = "more"
    FEWER = "fewer"
    CHILD_EXITED = "child_exited"


MASTER_TABLE: dict[int, MasterAction] = {
    signal.SIGQUIT: MasterAction.STOP,
    signal.SIGTERM: MasterAction.STOP,
    signal.SIGINT: MasterAction.STOP,
    signal.SIGUSR1: MasterAction.FORWARD,
    signal.SIGUSR2: MasterAction.PAUSE,
    signal.SIGCONT: MasterAction.RESUME,
    signal.SIGHUP: MasterAction.ROLLING_RESTART,
    signal.SIGTTIN: MasterAction.MORE,
    signal.SIGTTOU: MasterAction.FEWER,
    signal.SIGCHLD: MasterAction.CHILD_EXITED,
}


def accept_deferred() -> None:
    """Unblock the worker's signals once its handlers are installed.

    A master starts each worker with these signals blocked, so that a signal sent while the
    new process is still importing (before it has handlers) waits instead of killing it with
    the default action; it is delivered here, to the real handlers.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
