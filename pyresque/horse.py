"""What runs only in the forked child: run one job, report to the parent, exit.

The child never talks to Redis: it sends its outcome (result or exception) to the parent over a
pipe and the parent does all the bookkeeping in one round trip. A redis-py connection opened in
a forked CPython child costs ~10 ms of copy-on-write faults on this kind of machine; skipping it
is most of what makes fork-per-job fast.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn

from . import job as jobmod
from . import procline, signals
from .exceptions import PyresqueError


class JobTerminated(PyresqueError):
    """The worker asked the job to stop (TERM_CHILD, a timeout): raised inside ``perform``."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise JobTerminated(signal.Signals(signum).name)


def run_child(job: jobmod.Job, target: Any, result_fd: int, close_fds: tuple[int, ...], since: int) -> NoReturn:
    """Entry point after ``fork()`` in the child. Never returns."""
    code = 0
    try:
        os.setpgid(0, 0)  # own process group: the parent kills the job and anything it spawned
        signals.restore_defaults()
        signal.signal(signal.SIGTERM, _raise_terminated)
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        procline.set_title(procline.processing(job.queue, since, job.job_class))
        outcome = jobmod.run(job, target, after_fork=True)
        _write_all(result_fd, outcome.to_message())
    except BaseException:  # pragma: no cover - the parent records a dirty exit
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
