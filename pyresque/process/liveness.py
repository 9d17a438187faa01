"""Is a local pid alive, and is it a Resque worker? Through psutil, never ``ps | grep``.
"""

from __future__ import annotations

import psutil

from ..wire import procline


def process_is_resque(pid: int) -> bool:
    """Alive and titled like a Resque worker (php's ``[r]esque`` rule, the broadest of the two)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return bool(procline.PHP_WORKER_PATTERN.search(cmdline))


def process_title(pid: int) -> str | None:
    """A local process's title (command line), or ``None`` when it is gone or not ours to read."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def helper_of(pid: int) -> int | None:
    """The pid of a live forking helper of worker ``pid`` (titled ``Forker for worker <pid>``).

    A worker that died leaves its helper killing and reaping the job child it was running; until
    the helper is gone the job may still be running, so the prune waits for it."""
    suffix = f"Forker for worker {pid}"
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if " ".join(proc.info["cmdline"] or ()).rstrip().endswith(suffix):
                return int(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None
