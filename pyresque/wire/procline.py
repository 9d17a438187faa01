"""Resque-format process titles: part of the interop contract, not decoration.

Ruby prunes a same-host worker unless ``ps`` matches ``[r]esque:work|[r]esque:\\sStarting|[r]esque-[0-9]``;
php-resque prunes one unless ``ps`` matches ``[r]esque``. Every title here starts with
``resque-<version>:`` (or ``resque: Starting``), so neither prunes a live pyresque worker, and
:func:`looks_like_resque` applies the same rules to other processes.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from .. import defaults
from .terminal import escape

RUBY_WORKER_PATTERN = re.compile(r"resque:work|resque:\sStarting|resque-[0-9]")
PHP_WORKER_PATTERN = re.compile(r"resque")


def _load_setproctitle() -> Any:
    """setproctitle's C function, loaded without the package's ``__init__`` when possible.

    That ``__init__`` imports :mod:`logging`, hence :mod:`threading`, whose at-fork handler
    then runs in every child the forking helper makes: ~120 copy-on-write page faults and
    ~0.25 ms of CPU per job on this kind of machine, for a module the helper never uses.
    """
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("setproctitle")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(location, "_setproctitle" + suffix)
            if os.path.isfile(path):
                name = "setproctitle._setproctitle"
                loader = importlib.machinery.ExtensionFileLoader(name, path)
                module_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                if module_spec is not None:
                    module = importlib.util.module_from_spec(module_spec)
                    loader.exec_module(module)
                    sys.modules[name] = module  # a job that imports setproctitle gets this one
                    return module.setproctitle
    try:
        from setproctitle import setproctitle
    except ImportError:  # pragma: no cover - setproctitle is a dependency; stay usable without it
        return lambda title: None
    return setproctitle


_setproctitle = _load_setproctitle()


def _set_title(title: str) -> None:
    """Titles carry queue names and job classes from Redis: escaped, so ``ps`` shows no raw
    escape sequence and a NUL does not make setproctitle raise inside the worker loop."""
    _setproctitle(escape(title))


_last_title = ""


def prefix() -> str:
    return f"{os.environ.get('RESQUE_PROCLINE_PREFIX', '')}resque-{defaults.PROCLINE_VERSION}"


_PREFIX = prefix()


def set_title(status: str) -> None:
    """Set ``resque-<version>: <status>``; a repeat of the current title costs nothing."""
    global _last_title
    title = f"{_PREFIX}: {status}"
    if title != _last_title:
        _set_title(title)
        _last_title = title


def starting() -> None:
    _set_title(f"{os.environ.get('RESQUE_PROCLINE_PREFIX', '')}resque: Starting")


def waiting(queues: str) -> str:
    return f"Waiting for {queues}"


def forked(child_pid: int, at: int) -> str:
    return f"Forked {child_pid} at {at}"


def processing(queue: str, since: int, job_class: str) -> str:
    return f"Processing {queue} since {since} [{job_class}]"


def threads(queues: str, busy: int, total: int) -> str:
    """A threaded worker's title: its slots are ``worker:<id>`` records, this is the summary."""
    if busy == 0:
        return f"Waiting for {queues} ({total} threads)"
    return f"Processing {queues} with {busy} of {total} threads busy"


def master(status: str) -> None:
    """The supervising master's title, ``resque-pool-master: <status>`` (resque-pool's).

    php's ``[r]esque`` scan matches it; Ruby's ``[r]esque-[0-9]`` does not, on purpose: a
    master is not a worker, and its pid is never in ``workers``.
    """
    _set_title(f"{os.environ.get('RESQUE_PROCLINE_PREFIX', '')}resque-pool-master: {status}")


def looks_like_resque(cmdline: str) -> bool:
    """Would Ruby's pid scan count this command line as a live Resque worker?"""
    return bool(RUBY_WORKER_PATTERN.search(cmdline)) and "resque-web" not in cmdline


def scheduler(status: str) -> None:
    """The scheduler's title, resque-scheduler's format: ``resque-scheduler-<ver>: <status>``.

    Like the master's, php's ``[r]esque`` scan matches it and Ruby's worker scan does not: a
    scheduler is not a worker.
    """
    global _last_title
    title = f"{os.environ.get('RESQUE_PROCLINE_PREFIX', '')}resque-scheduler-{defaults.PROCLINE_VERSION}: {status}"
    if title != _last_title:
        _set_title(title)
        _last_title = title
