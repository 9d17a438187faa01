"""The supervising master's signal contract, as data. Handlers only record the signal; the loop acts.

=========  ===================================================================================
signal     master
=========  ===================================================================================
QUIT       QUIT every worker (each finishes its job), wait for them all, exit
TERM/INT   forwarded: each worker acts on it as :mod:`pyresque.worker.signals` says (GRACEFUL_TERM,
           TERM_CHILD respected);
           a second one is forwarded too; the master exits once every worker is gone
USR1       forwarded: every worker kills its job's child and keeps working
USR2/CONT  forwarded: pause / resume every worker (workers started later follow suit)
HUP        rolling restart: re-read the configuration, start a new generation of workers,
           QUIT the old generation once every new worker has registered
TTIN/TTOU  one worker more / fewer in every queue group
CHLD       (from the kernel) reap, and replace a worker that died unexpectedly
=========  ===================================================================================
"""

from __future__ import annotations

import enum
import signal


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
