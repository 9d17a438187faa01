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
import struct
import sys
from typing import Any, NoReturn

from ..exceptions import JobTerminated
from ..jobs import job as jobmod
from ..process import parent_death
from ..wire import payload as wire
from ..wire import procline
from . import output, signals


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
        """Hand over one job as a length-prefixed frame."""
        message = wire.encode_ruby({"queue": job.queue, "raw": job.raw.decode("utf-8"), "worker": job.worker_id,
                                    "since": since}).encode("utf-8")
        _write_all(self.job_w, FRAME.pack(len(message)) + message)

    def close(self) -> None:
        """Let go of the pipes (the child, if idle, sees EOF and exits)."""
        for fd in (self.job_w, self.result_r):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.job_w = self.result_r = -1

    def cancel(self) -> None:
        """Close the pipes unused: the idle child exits; reap it if it is ours."""
        self.close()
        if self.reaped_elsewhere:
            return
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


#: Every message on the job and result pipes is a 4-byte big-endian length, then the bytes. A
#: report's first byte says whether the child goes on (``C``) or exits now (``R``, retiring).
FRAME = struct.Struct("!I")


def parse_report(buffer: bytes) -> tuple[bytes, bool] | None:
    """(message, retiring) once ``buffer`` holds a whole report frame, else ``None``."""
    if len(buffer) < FRAME.size:
        return None
    (size,) = FRAME.unpack_from(buffer)
    if len(buffer) < FRAME.size + size:
        return None
    body = buffer[FRAME.size:FRAME.size + size]
    return body[1:], body[:1] == b"R"


def spawn(resolver: Any, close_fds: tuple[int, ...], max_jobs: int = 1, max_rss_mb: float = 0,
          defaults_set: bool = False) -> Horse:
    """Fork a child that serves up to ``max_jobs`` jobs (or until its RSS passes ``max_rss_mb``).

    ``close_fds``: the parent's fds the child must not keep. ``defaults_set``: the forking
    process (the zygote) already has default dispositions but for SIGCHLD.
    """
    job_r, job_w = os.pipe()
    result_r, result_w = os.pipe()
    parent = os.getpid()
    if not defaults_set:  # the worker forks it: it must end with the worker (the helper ends its own)
        parent_death.prepare_death_with_parent()
    gc.freeze()  # keep the child from touching (and copying) the parent's heap
    pid = os.fork()
    if pid == 0:
        os.close(job_w)
        os.close(result_r)
        if not defaults_set:
            parent_death.die_with_parent(parent)
        _serve(job_r, result_w, resolver, close_fds, max_jobs, max_rss_mb, defaults_set)
    os.close(job_r)
    os.close(result_w)
    try:
        os.setpgid(pid, pid)  # also from the parent, so killpg works from the first moment
    except OSError:
        pass
    return Horse(pid, job_w, result_r)


def _serve(job_r: int, result_fd: int, resolver: Any, close_fds: tuple[int, ...], max_jobs: int,
           max_rss_mb: float, defaults_set: bool = False) -> NoReturn:
    """In the child: run jobs as they come (up to ``max_jobs``), report each, exit. Never returns."""
    code = 0
    try:
        os.setpgid(0, 0)  # own process group: the parent kills the job and anything it spawned
        signal.set_wakeup_fd(-1)
        if not defaults_set:
            signals.restore_defaults()
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the forking helper's, not the job's
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        _rehearse()
        served = 0
        while True:
            message = _read_frame(job_r)
            if message is None:  # no more jobs, or the parent is gone
                os._exit(0)
            signal.signal(signal.SIGTERM, _raise_terminated)
            doc = json.loads(message)
            job = jobmod.Job(doc["queue"], wire.decode_payload(doc["raw"]), doc["worker"], doc["raw"].encode("utf-8"))
            procline.set_title(procline.processing(job.queue, doc["since"], job.job_class))
            output.job_started(job.log_fields)  # LOGGING=json: what the job prints is logged as the job's
            outcome = jobmod.run(job, resolver.resolve(job.job_class), after_fork=served == 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            served += 1
            retiring = served >= max_jobs or (max_rss_mb > 0 and _rss_mb() > max_rss_mb)
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            output.job_ended()
            body = (b"R" if retiring else b"C") + outcome.to_message()
            _write_all(result_fd, FRAME.pack(len(body)) + body)
            if retiring:
                # Closing now, not at exit, lets the parent book the job while this process is
                # still being torn down (the kernel frees the address space before it closes files).
                os.close(result_fd)
                break
    except BaseException:  # pragma: no cover - the parent records a dirty exit
        code = 1
    finally:
        os._exit(code)


_SAMPLE = b'{"queue":"q","raw":"{\\"class\\":\\"X\\",\\"args\\":[],\\"id\\":\\"0\\"}","worker":"w","since":0}'


def _rehearse() -> None:
    """Walk the per-job path once on a sample while waiting for the job (no user code runs).

    A forked child pays a copy-on-write fault for every page it first writes (refcounts
    included); doing it here, while idle, keeps those faults off the job's critical path.
    """
    doc = json.loads(_SAMPLE)
    job = jobmod.Job(doc["queue"], wire.decode_payload(doc["raw"]), doc["worker"], doc["raw"].encode("utf-8"))
    procline.processing(job.queue, doc["since"], job.job_class)
    body = b"C" + jobmod.Outcome(True, result_json=wire.encode_result(None)).to_message()
    FRAME.pack(len(body))


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read_frame(fd: int) -> bytes | None:
    header = _read_exactly(fd, FRAME.size)
    if header is None:
        return None
    return _read_exactly(fd, FRAME.unpack(header)[0])


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    missing = size
    while missing:
        data = os.read(fd, missing)
        if not data:
            return None
        chunks.append(data)
        missing -= len(data)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
