"""Running an ``async def perform`` job as a task on the caller's event loop (``--async N``).

Why: :func:`.job.run` gives a coroutine a loop of its own (``asyncio.run``), one job per slot;
the async worker wants hundreds of them on one loop. The order of events and hooks is
:func:`.job.run`'s; ``around_perform`` hooks take a plain callable, so a class with any runs
through :func:`.job.run` in a thread instead (:func:`runs_on_loop` says which).
"""

from __future__ import annotations

import inspect
from typing import Any

from ..exceptions import DontPerform
from ..wire import payload as wire
from . import hooks
from .job import Job, Outcome, _on_failure, failure_outcome, is_ruby_style

_on_loop: dict[Any, bool] = {}


def runs_on_loop(target: Any) -> bool:
    """Is ``perform`` (or ``perform_async``, which a class may offer beside a sync ``perform`` for
    async mode, as ``Pyresque_HttpCallback`` does) an ``async def`` with no ``around_perform`` hooks?"""
    known = _on_loop.get(target)
    if known is None:
        known = inspect.iscoroutinefunction(_async_perform(target)) and not hooks.class_hooks(target, "around_perform")
        _on_loop[target] = known
    return known


def _async_perform(target: Any) -> Any:
    if not isinstance(target, type):
        return target
    offered = getattr(target, "perform_async", None)
    return offered if inspect.iscoroutinefunction(offered) else getattr(target, "perform", None)


async def run_async(job: Job, target: Any) -> Outcome:
    """:func:`.job.run` for a :func:`runs_on_loop` target; never raises for the job's own errors
    (a cancellation included: it is the outcome, and the worker says what it was for)."""
    try:
        hooks.trigger("beforePerform", job)
        for hook in hooks.class_hooks(target, "before_perform"):
            hook(*job.args)
        result = await _perform(job, target)
        for hook in hooks.class_hooks(target, "after_perform"):
            hook(*job.args)
        hooks.trigger("afterPerform", job)
    except DontPerform:
        return Outcome(True, result_json="false", skipped=True)
    except BaseException as exc:  # CancelledError too: a timeout's or a stop's
        _on_failure(job, target, exc)
        return failure_outcome(exc)
    return Outcome(True, result_json=wire.encode_result(result))


async def _perform(job: Job, target: Any) -> Any:
    if is_ruby_style(target):
        runner: Any = _async_perform(target)
        return await runner(*job.args)
    instance = target()
    instance.args = wire.php_args(job.args)
    instance.queue = job.queue
    instance.job = job
    set_up = getattr(instance, "setUp", None)
    if callable(set_up):
        set_up()
    offered = getattr(instance, "perform_async", None)
    result = await (offered() if inspect.iscoroutinefunction(offered) else instance.perform())
    tear_down = getattr(instance, "tearDown", None)
    if callable(tear_down):
        tear_down()
    return result


def is_cancellation(outcome: Outcome) -> bool:
    """Did the job end because its task was cancelled (and let the CancelledError through)?"""
    return not outcome.ok and outcome.exception.endswith("CancelledError")
