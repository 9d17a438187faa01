"""A job child ends with the worker that forked it.

A child's result goes only to its worker, so a child that outlived a SIGKILLed worker would run
on unrecorded while the prune fails (or requeues, and runs again) the same job. No psutil here:
the forking helper loads this, and every module it loads makes each fork slower.
"""

from __future__ import annotations

import os
import signal
from typing import Any

_prctl: Any = None


def prepare_death_with_parent() -> None:
    """Load ``prctl`` once in a parent that forks job children itself (Linux; else nothing)."""
    global _prctl
    if _prctl is None:
        try:
            import ctypes

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False


def end_with_this_process(signum: int = signal.SIGTERM) -> Any:
    """A ``preexec_fn`` for a helper process we start (a dev session's redis-server or scheduler):
    it gets ``signum`` when we die, even by SIGKILL, instead of running on orphaned."""
    prepare_death_with_parent()
    parent = os.getpid()

    def preexec() -> None:
        if _prctl:
            _prctl(1, signum, 0, 0, 0)  # PR_SET_PDEATHSIG, kept across exec
            if os.getppid() != parent:
                os.kill(os.getpid(), signum)

    return preexec


def die_with_parent(parent: int) -> None:
    """In a child forked by ``parent``: SIGKILL when it dies (``PR_SET_PDEATHSIG``), or at once if
    it already has (the fork raced its death)."""
    if _prctl:
        _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
