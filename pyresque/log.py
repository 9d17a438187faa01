"""Logging through structlog: a human console by default, one JSON object per line on request."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
from typing import Any, TextIO

import structlog

from . import defaults
from .wire.terminal import escape

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


#: The two lines every successful job logs, which ``VERBOSE=0`` leaves out (failures still log).
ROUTINE_JOB_EVENTS = frozenset({"job started", "job done"})


def _drop_routine_job_lines(logger: Any, method: str, event: Any) -> Any:
    if event.get("event") in ROUTINE_JOB_EVENTS:
        raise structlog.DropEvent
    return event


def configure(fmt: str = "console", level: str = "info", stream: TextIO | None = None, queued: bool = False,
              job_lines: bool = True) -> None:
    """Set up structlog once per process. ``fmt`` is ``console`` or ``json``; ``job_lines=False``
    (``VERBOSE=0``) drops each successful job's start and done lines, dropped before any work.

    ``queued`` (threaded mode): rendered lines are written, in order, by one writer thread, so
    the threads that log never wait on the stream (see :class:`QueuedLines`).
    """
    if fmt not in ("console", "json"):
        raise ValueError(f"log format must be 'console' or 'json', not {fmt!r}")
    renderers: list[Any]
    if fmt == "json":  # json.dumps escapes every control character itself
        renderers = [structlog.processors.JSONRenderer()]
    else:
        renderers = [_escape_for_console, structlog.dev.ConsoleRenderer(colors=False)]
    factory: Any = structlog.PrintLoggerFactory(stream or sys.stderr)
    if queued:
        factory = _queued_factory(stream or sys.stderr)
    structlog.configure(
        processors=[
            *([] if job_lines else [_drop_routine_job_lines]),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


#: The fields :func:`bind_job` adds to every line logged while a job is handled.
JOB_FIELDS = ("job_id", "job_class", "queue", "attempt", "worker")


def bind_job(fields: dict[str, Any]) -> None:
    """Every line this thread logs from now on names the job (structlog's context variables)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if k in JOB_FIELDS})


def unbind_job() -> None:
    structlog.contextvars.unbind_contextvars(*JOB_FIELDS)


_MULTI_LINE = ("exception", "stack")  # tracebacks: ours to lay out over several lines


def _escape_for_console(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Values carry class names, queue names and errors from Redis, and the console renderer
    prints a string raw (an escape sequence in a class name would reach the terminal): each
    goes through :func:`wire.terminal.escape`. Other values it shows as their ``repr``, which
    escapes what is inside them."""
    return {key: escape(value, keep_newlines=key in _MULTI_LINE) if isinstance(value, str) else value
            for key, value in event.items()}


def get_logger(name: str = "pyresque") -> Any:
    return structlog.get_logger(name)


def flush(timeout: float = 5.0) -> None:
    """Wait until every line logged so far is written (queued mode; a no-op otherwise)."""
    if _writer is not None:
        _writer.flush(timeout)


class QueuedLines:
    """structlog's output for a process of many threads: ``msg`` queues the rendered line and
    one writer thread writes what has queued up, in order, whole lines only.

    Why: structlog's ``PrintLogger`` writes and flushes each line under a lock. The write
    releases the GIL, and with 100 job threads the lock's holder then waits for the GIL while
    every other thread that logs waits for the lock: a convoy that cost a threaded worker a
    quarter of its throughput on a busy machine. A full backlog (a stalled reader) blocks the
    loggers, as the lock did. A forked child writes its own lines directly.
    """

    def __init__(self, stream: TextIO, backlog: int = defaults.LOG_BACKLOG) -> None:
        self._stream = stream
        self._lines: queue.Queue[str | threading.Event] = queue.Queue(backlog)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._direct_lock: threading.Lock | None = None  # set in a forked child: no writer there

    def msg(self, message: str) -> None:
        if self._direct_lock is not None:
            with self._direct_lock:
                self._write([message])
            return
        if self._thread is None:
            self._start()
        self._lines.put(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def flush(self, timeout: float) -> None:
        if self._thread is None or self._direct_lock is not None:
            return
        done = threading.Event()
        try:
            self._lines.put(done, timeout=timeout)
        except queue.Full:
            return
        done.wait(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="pyresque-log", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            batch = [self._lines.get()]
            try:
                while True:
                    batch.append(self._lines.get_nowait())
            except queue.Empty:
                pass
            lines: list[str] = []
            for item in batch:
                if isinstance(item, threading.Event):  # a flush: what came before it is out
                    self._write(lines)
                    lines = []
                    item.set()
                else:
                    lines.append(item)
            self._write(lines)

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: the lines are lost, not the worker
            pass

    def _forked(self) -> None:
        self._direct_lock = threading.Lock()


_writer: QueuedLines | None = None


def _queued_factory(stream: TextIO) -> Any:
    global _writer
    if _writer is None or _writer._stream is not stream:
        if _writer is not None:
            _writer.flush(5.0)
        _writer = QueuedLines(stream)
    writer = _writer
    return lambda *args: writer


def _after_fork_in_child() -> None:
    if _writer is not None:
        _writer._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush)
