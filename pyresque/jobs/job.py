"""A reserved job, and running it in the current process with its hooks. No processes here.

Two job shapes::

    @pyresque.register("PHP_Job")
    class PhpStyle:                     # php-resque: an instance, self.args = args[0]
        def setUp(self): ...
        def perform(self): return {"ok": True}   # -> status packet "result"
        def tearDown(self): ...

    @pyresque.register
    class RubyStyle:                    # Ruby: perform(*args) as a static/class method
        @staticmethod
        def perform(a, b): ...

Either shape's ``perform`` may be ``async def``: it runs to completion on an event loop of its
own (``asyncio.run``), in whichever execution mode the worker uses.

Order (php-resque's and Ruby's combined): afterFork event (child only), beforePerform event,
``before_perform*`` hooks, instance + ``setUp``, ``around_perform*`` hooks wrapping
``perform``, ``tearDown``, ``after_perform*`` hooks, afterPerform event. ``DontPerform`` from
beforePerform, a before hook or ``setUp`` skips the job without failing it. On an exception,
``on_failure*(exc, *args)`` hooks and the onFailure event run, then the job fails.
"""

from __future__ import annotations

import inspect
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, cast

from ..exceptions import DontPerform, JobTimeout
from ..wire import payload as wire
from . import hooks


@dataclass
class Job:
    """One reserved job: the queue it came from and its decoded payload."""

    queue: str
    payload: dict[str, Any]
    worker_id: str = ""
    raw: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry, …"""
        return wire.attempt_of(self.payload)

    @property
    def job_class(self) -> str:
        return str(self.payload.get("class", "<unreadable payload>"))

    @property
    def args(self) -> list[Any]:
        args = self.payload.get("args")
        return args if isinstance(args, list) else []

    @property
    def id(self) -> str | None:
        value = self.payload.get("id")
        return value if isinstance(value, str) else None

    @property
    def log_fields(self) -> dict[str, Any]:
        """What every log line about this job carries (README: "Log fields")."""
        return {"job_id": self.id, "job_class": self.job_class, "queue": self.queue, "attempt": self.attempt,
                "worker": self.worker_id}

    @property
    def status_prefix(self) -> str:
        value = self.payload.get("prefix")
        return value if isinstance(value, str) else ""

    def __str__(self) -> str:  # php-resque's (Job{queue} | ID: id | class | args)
        return f"(Job{{{self.queue}}} | ID: {self.id or '-'} | {self.job_class} | {wire.encode_ruby(self.args)})"


@dataclass
class Outcome:
    """What running a job came to; sent from the child to the parent as JSON."""

    ok: bool
    result_json: str = "null"
    skipped: bool = False
    exception: str = ""
    error: str = ""
    backtrace: list[str] = field(default_factory=list)

    def to_message(self) -> bytes:
        return wire.encode_ruby({
            "ok": self.ok, "result": self.result_json, "skipped": self.skipped,
            "exception": self.exception, "error": self.error, "backtrace": self.backtrace,
        }).encode("utf-8", "backslashreplace")

    @classmethod
    def from_message(cls, data: bytes) -> Outcome | None:
        import json

        try:
            doc = json.loads(data)
            return cls(bool(doc["ok"]), str(doc["result"]), bool(doc["skipped"]), str(doc["exception"]),
                       str(doc["error"]), [str(line) for line in doc["backtrace"]])
        except (ValueError, KeyError, TypeError, RecursionError):
            return None


def exception_name(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``package.module.Error`` otherwise."""
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    if cls.__module__.startswith("pyresque."):
        return f"pyresque.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def format_backtrace(exc: BaseException) -> list[str]:
    """Frames as Ruby shows them (``file:line:in `name'``), innermost last, pyresque's own left out."""
    import traceback  # on failure only: the forking helper (and each child) stays without it

    frames = traceback.extract_tb(exc.__traceback__)
    lines = [f"{f.filename}:{f.lineno}:in `{f.name}'" for f in frames if "/pyresque/" not in f.filename.replace("\\", "/")]
    return lines or [f"{f.filename}:{f.lineno}:in `{f.name}'" for f in frames[-1:]]


def failure_outcome(exc: BaseException, with_backtrace: bool = True) -> Outcome:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the failure
        message = f"<unprintable {type(exc).__name__}>"
    backtrace = format_backtrace(exc) if with_backtrace else []
    return Outcome(False, exception=exception_name(exc), error=message, backtrace=backtrace)


_ruby_style: dict[Any, bool] = {}


def is_ruby_style(target: Any) -> bool:
    """A function, or a class whose ``perform`` is a static or class method."""
    known = _ruby_style.get(target)
    if known is not None:
        return known
    if not isinstance(target, type):
        return True
    static = inspect.getattr_static(target, "perform", None)
    _ruby_style[target] = known = isinstance(static, (staticmethod, classmethod))
    return known


_prepared: set[Any] = set()


def prepare(target: Any) -> None:
    """Look up what running ``target`` needs once, in the process that forks the children:
    each child then inherits the answers instead of computing (and faulting in) them per job."""
    if target in _prepared:
        return
    _prepared.add(target)
    hooks.warm_class_hooks(target)
    is_ruby_style(target)
    perform = getattr(target, "perform", target)
    if inspect.iscoroutinefunction(perform):
        import asyncio  # noqa: F401 - loaded once here, not by every child that runs the job


def run(job: Job, target: Any, after_fork: bool = False) -> Outcome:
    """Run ``job`` with ``target`` here and now; never raises for the job's own errors."""
    try:
        if after_fork:
            hooks.trigger("afterFork", job)
        hooks.trigger("beforePerform", job)
        for hook in hooks.class_hooks(target, "before_perform"):
            hook(*job.args)
        result = _perform(job, target)
        for hook in hooks.class_hooks(target, "after_perform"):
            hook(*job.args)
        hooks.trigger("afterPerform", job)
    except DontPerform:
        return Outcome(True, result_json="false", skipped=True)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt in a job are failures too
        _on_failure(job, target, exc)
        return failure_outcome(exc)
    return Outcome(True, result_json=wire.encode_result(result))


def _perform(job: Job, target: Any) -> Any:
    if is_ruby_style(target):
        runner: Callable[..., Any] = cast(Any, target).perform if isinstance(target, type) else target

        def call() -> Any:
            return _awaited(runner(*job.args))

        return _around(target, job.args, call)
    instance = target()
    instance.args = wire.php_args(job.args)
    instance.queue = job.queue
    instance.job = job
    set_up = getattr(instance, "setUp", None)
    if callable(set_up):
        set_up()
    result = _around(target, job.args, lambda: _awaited(instance.perform()))
    tear_down = getattr(instance, "tearDown", None)
    if callable(tear_down):
        tear_down()
    return result


def _awaited(result: Any) -> Any:
    """An ``async def perform`` returns a coroutine: run it to completion on a loop of its own."""
    if inspect.iscoroutine(result):
        import asyncio

        return asyncio.run(result)
    return result


def _around(target: Any, args: list[Any], call: Callable[[], Any]) -> Any:
    """Ruby's around hooks: the first in name order is outermost; each receives a callable."""
    wrapped = call
    for hook in reversed(hooks.class_hooks(target, "around_perform")):
        wrapped = (lambda h, inner: lambda: h(inner, *args))(hook, wrapped)
    return wrapped()


def _on_failure(job: Job, target: Any, exc: BaseException) -> None:
    for hook in hooks.class_hooks(target, "on_failure"):
        try:
            hook(exc, *job.args)
        except Exception:  # an on_failure hook must not mask the job's own failure
            pass
    try:
        hooks.trigger("onFailure", exc, job)
    except Exception:
        pass


def run_with_time_limit(job: Job, target: Any, limit: float | None) -> Outcome:
    """:func:`run` in this process (inline mode); a time limit interrupts the job with SIGALRM."""
    if not limit:
        return run(job, target)

    def expired(signum: int, frame: Any) -> None:
        raise JobTimeout(f"Job exceeded its time limit of {limit:g}s and was interrupted")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return run(job, target)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
