"""Worker events (php-resque's names) and per-class job hooks (Ruby's name prefixes).

Events: ``beforeFirstFork(worker)``, ``beforeFork(job)``, ``afterFork(job)``,
``beforePerform(job)``, ``afterPerform(job)``, ``onFailure(exception, job)``,
``beforeEnqueue(job_class, args, queue, job_id)`` (raise ``DontCreate`` to cancel) and
``afterEnqueue(…)`` (see :meth:`pyresque.Resque.enqueue`), ``beforePause(worker)``,
``afterPause(worker)``, ``workerExit(worker)``.

A listener that raises inside the job's process (afterFork, beforePerform, afterPerform) fails
the job, as in php-resque; ``DontPerform`` from beforePerform skips it. A listener that raises in
the worker's own process (beforeFirstFork, beforeFork, pause events, workerExit, onFailure) is
logged with its context and does not stop the worker: unlike php-resque, a broken listener never
loses the job it was called for.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

EVENTS = (
    "beforeFirstFork", "beforeFork", "afterFork", "beforePerform", "afterPerform", "onFailure",
    "beforePause", "afterPause", "workerExit", "beforeEnqueue", "afterEnqueue",
)

_listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)


def listen(event: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
    _listeners[event].append(callback)
    return callback


def stop_listening(event: str, callback: Callable[..., Any]) -> None:
    if callback in _listeners.get(event, []):
        _listeners[event].remove(callback)


def clear_listeners() -> None:
    _listeners.clear()


def trigger(event: str, *args: Any) -> None:
    """Call every listener in registration order; exceptions propagate to the caller."""
    listeners = _listeners.get(event)
    if listeners:
        for callback in list(listeners):
            callback(*args)


_hook_names: dict[tuple[int, str], list[str]] = {}


def class_hooks(target: Any, prefix: str) -> list[Callable[..., Any]]:
    """Ruby's rule: every callable attribute starting with ``prefix``, sorted by name.

    The names are looked up once per class (in the worker parent, so every forked child
    inherits them) rather than with ``dir()`` on every job.
    """
    key = (id(target), prefix)
    names = _hook_names.get(key)
    if names is None:
        names = sorted(name for name in dir(target) if name.startswith(prefix))
        _hook_names[key] = names
    return [hook for hook in (getattr(target, name, None) for name in names) if callable(hook)]


def warm_class_hooks(target: Any) -> None:
    for prefix in ("before_perform", "around_perform", "after_perform", "on_failure"):
        class_hooks(target, prefix)
