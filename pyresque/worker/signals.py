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
import signal


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


def restore_defaults() -> None:
    """In the child: default dispositions, no wakeup fd."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)


def accept_deferred() -> None:
    """Unblock the worker's signals once its handlers are installed.

    A master starts each worker with these signals blocked, so that a signal sent while the
    new process is still importing (before it has handlers) waits instead of killing it with
    the default action; it is delivered here, to the real handlers.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def hint(signum: int) -> dict[str, str]:
    """What to log beside a stop signal that kills the job in hand: Ctrl-C does, as in Resque,
    and whoever pressed it may not know that QUIT lets the job finish."""
    if signum != signal.SIGINT:
        return {}
    return {"hint": "INT/TERM kill the job in hand (Resque's rule); QUIT (Ctrl-\\) finishes it first, "
                    "and GRACEFUL_TERM=1 makes TERM do the same"}
