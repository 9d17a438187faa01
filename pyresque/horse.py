"""What runs only in the forked child: run one job, report to the parent, exit.

The child never talks to Redis: it sends its outcome (result or exception) to the parent over a
pipe and the parent does all the bookkeeping in one round trip. A redis-py connection opened in
a forked CPython child costs ~10 ms of copy-on-write faults on this kind of machine; skipping it
is most of what makes fork-per-job fast.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from typing import Any, NoReturn

from . import job as jobmod
from . import payload as wire
from . import procline, signals
from .exceptions import PyresqueError


class JobTerminated(PyresqueError):
    """The worker asked the job to stop (TERM_CHILD, a timeout): raised inside ``perform``."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise JobTerminated(signal.Signals(signum).name)


class Horse:
    """A forked child waiting for its one job: the parent's handle on it.

    Children are forked *ahead*: the parent forks the next one while the current one runs its
    job, so on a machine with two cores the fork's cost is off the critical path. Each job still
    gets a fresh process that has run nothing else.
    """

    __slots__ = ("pid", "job_w", "result_r", "reaped_elsewhere")

    def __init__(self, pid: int, job_w: int, result_r: int, reaped_elsewhere: bool = False) -> None:
        self.pid = pid
        self.job_w = job_w
        self.result_r = result_r
        self.reaped_elsewhere = reaped_elsewhere  # a zygote's child: the zygote reaps it

    def send(self, job: jobmod.Job, since: int) -> None:
        """Hand over the job (the child reads until EOF) and let go of the pipe."""
        message = wire.encode_ruby({"queue": job.queue, "raw": job.raw.decode("utf-8"), "worker": job.worker_id,
                                    "since": since}).encode("utf-8")
        try:
            _write_all(self.job_w, message)
        finally:
            os.close(self.job_w)
            self.job_w = -1

    def cancel(self) -> None:
        """Close the job pipe unused: the idle child exits; reap it."""
        if self.job_w >= 0:
            os.close(self.job_w)
            self.job_w = -1
        os.close(self.result_r)
        if self.reaped_elsewhere:
            return
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def spawn(resolver: Any, close_fds: tuple[int, ...]) -> Horse:
    """Fork a child that will wait for one job. ``close_fds``: the parent's fds it must not keep."""
    job_r, job_w = os.pipe()
    result_r, result_w = os.pipe()
    gc.freeze()  # keep the child from touching (and copying) the parent's heap
    pid = os.fork()
    if pid == 0:
        os.close(job_w)
        os.close(result_r)
        _serve_one(job_r, result_w, resolver, close_fds)
    os.close(job_r)
    os.close(result_w)
    try:
        os.setpgid(pid, pid)  # also from the parent, so killpg works from the first moment
    except OSError:
        pass
    return Horse(pid, job_w, result_r)


def _serve_one(job_r: int, result_fd: int, resolver: Any, close_fds: tuple[int, ...]) -> NoReturn:
    """In the child: wait for the job, run it, report, exit. Never returns."""
    code = 0
    try:
        os.setpgid(0, 0)  # own process group: the parent kills the job and anything it spawned
        signals.restore_defaults()
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        message = _read_all(job_r)
        if not message:  # cancelled, or the parent is gone
            os._exit(0)
        signal.signal(signal.SIGTERM, _raise_terminated)
        doc = json.loads(message)
        job = jobmod.Job(doc["queue"], wire.decode_payload(doc["raw"]), doc["worker"], doc["raw"].encode("utf-8"))
        procline.set_title(procline.processing(job.queue, doc["since"], job.job_class))
        outcome = jobmod.run(job, resolver.resolve(job.job_class), after_fork=True)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        _write_all(result_fd, outcome.to_message())
        # Closing now, not at exit, lets the parent book the job while this process is still
        # being torn down (the kernel frees the address space before it closes files).
        os.close(result_fd)
    except BaseException:  # pragma: no cover - the parent records a dirty exit
        code = 1
    finally:
        os._exit(code)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
