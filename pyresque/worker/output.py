"""A job's ``print()`` as log events, for ``LOGGING=json``.

With JSON logging every line on the log stream is a JSON object that a collector parses; a job
that prints (or a library that writes to ``sys.stderr``) would put raw text between them. In
JSON mode the worker replaces ``sys.stdout`` and ``sys.stderr`` with :class:`LineCapture`:
each line written becomes one event, ``{"event": "job output", "stream": "stdout", "line": …,
"job_id": …}``, in fork mode (the child inherits the capture, or the forking helper installs
its own), inline and threaded mode alike. Our own log lines do not pass through it: structlog
holds the stream it was configured with. Writes to file descriptor 1 or 2 themselves (a
subprocess, C code) are not seen. Console mode leaves both streams alone.

Only the standard library's cheapest modules are imported: the forking helper, which forks
every job's child, loads this module and no logging library.
"""

from __future__ import annotations

import _thread
import io
import json
import sys
import time
from typing import Callable, TextIO

#: (stream name, line, the job's log fields or None) -> None
Emit = Callable[[str, str, "dict[str, object] | None"], None]

#: A line longer than this is emitted in pieces, so a job printing without newlines cannot
#: grow the buffer without bound.
MAX_LINE = 65536

_jobs: dict[int, dict[str, object]] = {}  # thread id -> the log fields of the job that thread runs
_installed: list[LineCapture] = []


class LineCapture(io.TextIOBase):
    """A text stream that turns every whole line written to it into one :data:`Emit` call.
    Lines are assembled per thread, so the jobs of a threaded worker do not mix theirs."""

    def __init__(self, name: str, original: TextIO, emit: Emit) -> None:
        super().__init__()
        self.stream_name = name
        self.original = original
        self._emit = emit
        self._partial: dict[int, str] = {}
        self._emitting: set[int] = set()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.original, "errors", None)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:  # faulthandler, subprocess and the like want the real descriptor
        return self.original.fileno()

    @property
    def buffer(self) -> _BytesInto:
        """``sys.stdout.buffer.write(b"…")``: bytes are decoded (as the stream would encode) and
        captured like text, never written raw between the JSON lines."""
        return _BytesInto(self)

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        thread = _thread.get_ident()
        if thread in self._emitting:  # something our emitter wrote to this stream: pass it on
            self.original.write(text)
            return len(text)
        buffered = self._partial.pop(thread, "") + text
        *lines, rest = buffered.split("\n")
        while len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self._partial[thread] = rest
        for line in lines:
            self._send(thread, line)
        return len(text)

    def flush(self) -> None:
        """Emit this thread's unfinished line (the job ended, or asked for it to be seen)."""
        thread = _thread.get_ident()
        rest = self._partial.pop(thread, "")
        if rest:
            self._send(thread, rest)
        try:
            self.original.flush()
        except (OSError, ValueError):
            pass

    def _send(self, thread: int, line: str) -> None:
        self._emitting.add(thread)
        try:
            self._emit(self.stream_name, line.rstrip("\r"), _jobs.get(thread))
        except (OSError, ValueError):  # a closed log stream: the line is lost, not the job
            pass
        finally:
            self._emitting.discard(thread)


class _BytesInto(io.RawIOBase):
    """The binary side of a :class:`LineCapture`."""

    def __init__(self, capture: LineCapture) -> None:
        super().__init__()
        self._capture = capture

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._capture.write(bytes(data).decode(self._capture.encoding, "replace"))
        return len(data)

    def flush(self) -> None:
        self._capture.flush()


def install(emit: Emit) -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by captures that call ``emit`` per line."""
    if _installed:
        return
    for name in ("stdout", "stderr"):
        original = getattr(sys, name)
        if original is None:  # started without one (closed, pythonw): nothing to keep clean
            continue
        try:
            original.flush()
        except (OSError, ValueError):
            pass
        capture = LineCapture(name, original, emit)
        _installed.append(capture)
        setattr(sys, name, capture)


def installed() -> bool:
    """Is the capture on in this process (the forking helper is started with it too)?"""
    return bool(_installed)


def job_started(fields: dict[str, object]) -> None:
    """Lines this thread writes from now on belong to the job these log fields name
    (``Job.log_fields``: job_id, job_class, queue, attempt)."""
    _jobs[_thread.get_ident()] = {k: v for k, v in fields.items() if v is not None}


def job_ended() -> None:
    """Emit the job's unfinished lines, then stop naming it."""
    for capture in _installed:
        capture.flush()
    _jobs.pop(_thread.get_ident(), None)


def json_emitter(stream: TextIO) -> Emit:
    """Events rendered as structlog's JSON renderer does, for the forking helper (no structlog)."""

    def emit(name: str, line: str, job: dict[str, object] | None) -> None:
        event: dict[str, object] = {"stream": name, "line": line, **(job or {})}
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        event.update({"event": "job output" if job else "output", "level": "info", "timestamp": stamp})
        stream.write(json.dumps(event) + "\n")
        stream.flush()

    return emit


def capture_into_log() -> None:
    """In the worker (JSON mode): job output becomes structlog events on the log stream, named
    with the job's id in every mode (php-resque's events mark where a job begins and ends)."""
    from .. import log
    from ..jobs import hooks

    logger = log.get_logger("pyresque.job")

    def emit(name: str, line: str, job: dict[str, object] | None) -> None:
        if job:
            logger.info("job output", stream=name, line=line, **job)
        else:
            logger.info("output", stream=name, line=line)

    install(emit)
    hooks.listen("beforePerform", lambda job: job_started(job.log_fields))
    hooks.listen("afterPerform", lambda job: job_ended())
    hooks.listen("onFailure", lambda exc, job: job_ended())
