"""What is running on a Resque Redis, for operators: workers on every host, queues, totals, pause.

Reads what php-resque, Ruby Resque and pyresque workers all write (``workers``,
``worker:<id>``, ``worker:<id>:started``, ``workers:heartbeat``), in each one's time formats,
so one listing shows all of them. Ages are measured against Redis ``TIME``, the clock the
heartbeats are written with.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidPayload
from ..process.liveness import process_title
from ..queue import Resque
from ..scheduling.delayed import iter_delayed, store_for
from ..wire import payload as wire

#: Delayed items ``info`` reads to count retries; past it the count is a lower bound.
RETRY_SCAN_LIMIT = 10_000

#: A due delayed job this many seconds late means nothing is moving them: workers look every
#: second, schedulers every few (resque-scheduler's default interval is 5 s).
OVERDUE_ALARM = 30.0


@dataclass
class WorkerView:
    """One registered worker, whatever wrote it."""

    id: str
    host: str
    pid: int | None
    queues: list[str]
    #: ``working`` (it has a ``worker:<id>`` record), ``paused`` or ``idle``
    state: str
    #: ``php`` when the worker wrote php-resque's key formats (``date('c')`` start time, no
    #: heartbeat), ``ruby`` for Ruby Resque and pyresque (both write Ruby's)
    flavour: str
    job: dict[str, Any] | None  # queue, class, args, id, run_at of the job in progress
    job_age: float | None  # seconds since the job's run_at
    started: str | None  # as written
    started_age: float | None
    heartbeat: str | None  # as written (Ruby and pyresque only)
    heartbeat_age: float | None
    processed: int
    failed: int


@dataclass
class QueueView:
    name: str
    size: int
    #: seconds since the oldest (first) job was enqueued: its ``queue_time`` (php-resque,
    #: pyresque) or ActiveJob's ``enqueued_at``; ``None`` when the payload says nothing (Ruby's)
    oldest_age: float | None


@dataclass
class Info:
    queues: list[QueueView]
    pending: int
    processed: int  # stat:processed
    failed: int  # stat:failed
    failed_list: int  # LLEN failed (what Ruby's Resque.info calls "failed")
    workers: int
    working: int
    idle: int
    paused_all: bool  # Ruby's pause-all-workers key
    hosts: list[str] = field(default_factory=list)
    delayed: DelayedView | None = None


@dataclass
class DelayedView:
    """Delayed jobs and retries waiting for their time, and whether anything moves them."""

    jobs: int
    retrying: int  # of those, retries of failed jobs (a lower bound past RETRY_SCAN_LIMIT items)
    retrying_exact: bool
    next_due_in: float | None  # seconds until the earliest is due (negative: overdue)
    mover: str | None  # who holds resque-scheduler's master lock right now, if anyone
    stalled: bool  # due jobs are OVERDUE_ALARM late: no worker nor scheduler is moving them


def list_workers(resque: Resque, local_host: str | None = None) -> list[WorkerView]:
    """Every registered worker, ordered by host then pid."""
    store = resque.store
    ids = store.worker_ids()
    details = store.worker_details(ids)
    now = store.server_time()
    paused_all = store.all_paused()
    local_host = local_host or socket.gethostname()
    views = [_worker_view(wid, detail, now, paused_all, local_host) for wid, detail in zip(ids, details)]
    return sorted(views, key=lambda v: (v.host, v.pid if v.pid is not None else -1, v.id))


def _worker_view(wid: str, detail: tuple[Any, ...], now: float, paused_all: bool, local_host: str) -> WorkerView:
    raw_job, raw_started, raw_beat, processed, failed = detail
    parsed = wire.parse_worker_id(wid)
    host, pid, queues = (parsed.host, parsed.pid, list(parsed.queues)) if parsed else (wid, None, [])
    started = _text(raw_started)
    beat = _text(raw_beat)
    flavour = "php" if beat is None and started is not None and not _ruby_started(started) else "ruby"
    job = None
    job_age = None
    if raw_job is not None:
        record = wire.decode_working_on(raw_job)
        payload = record.payload if record is not None and isinstance(record.payload, dict) else {}
        job = {"queue": record.queue if record else None, "class": payload.get("class"), "args": payload.get("args"),
               "id": payload.get("id"), "run_at": record.run_at if record else None}
        job_age = _age(record.run_at if record else None, now)
    if job is not None:
        state = "working"
    elif (paused_all and flavour == "ruby") or (host == local_host and pid is not None and _title_paused(pid)):
        state = "paused"  # php-resque ignores pause-all-workers; its USR2 shows in its title
    else:
        state = "idle"
    return WorkerView(id=wid, host=host, pid=pid, queues=queues, state=state, flavour=flavour, job=job,
                      job_age=job_age, started=started, started_age=_age(started, now), heartbeat=beat,
                      heartbeat_age=_age(beat, now), processed=processed, failed=failed)


def info(resque: Resque) -> Info:
    store = resque.store
    names = store.queue_names()
    heads = store.queue_heads(names)
    now = store.server_time()
    queues = [QueueView(name, size, _enqueued_age(head, now) if head is not None else None)
              for name, (size, head) in zip(names, heads)]
    ids = store.worker_ids()
    working = sum(1 for job, *_ in store.worker_details(ids) if job is not None)
    stats = store.stats()
    hosts = sorted({p.host for p in map(wire.parse_worker_id, ids) if p is not None})
    return Info(queues=queues, pending=sum(q.size for q in queues), processed=stats["processed"],
                failed=stats["failed"], failed_list=store.failed_count(), workers=len(ids), working=working,
                idle=len(ids) - working, paused_all=store.all_paused(), hosts=hosts, delayed=delayed_view(resque))


def delayed_view(resque: Resque) -> DelayedView:
    scheduler_store = store_for(resque)
    jobs = retrying = 0
    exact = True
    first_due: int | None = None
    for job in iter_delayed(resque):
        if job.item is None:
            continue
        jobs += 1
        first_due = job.timestamp if first_due is None else min(first_due, job.timestamp)
        if jobs > RETRY_SCAN_LIMIT:
            exact = False
            continue
        attempt = (job.payload or {}).get("attempt")
        if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 1:
            retrying += 1
    now = resque.store.server_time()
    next_due_in = None if first_due is None else round(first_due - now, 3)
    return DelayedView(jobs=jobs, retrying=retrying, retrying_exact=exact, next_due_in=next_due_in,
                       mover=scheduler_store.lock_holder(),
                       stalled=next_due_in is not None and next_due_in < -OVERDUE_ALARM)


def set_paused(resque: Resque, paused: bool) -> list[str]:
    """Set or clear Ruby's ``pause-all-workers``; returns the registered workers that ignore it
    (php-resque's: they have no heartbeat; send them USR2/CONT instead)."""
    resque.store.set_pause_all(paused)
    return [view.id for view in list_workers(resque) if view.flavour == "php"]


# -- reading the formats ----------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _ruby_started(text: str) -> bool:
    """Ruby's ``Time#to_s`` (``2026-11-22 04:57:53 +0000``), which pyresque writes too."""
    return len(text) == 25 and text[10] == " " and text[19:21] in (" +", " -")


def _age(text: str | None, now: float) -> float | None:
    when = wire.parse_time(text) if text else None
    return None if when is None else round(now - when, 3)


def _enqueued_age(raw: bytes, now: float) -> float | None:
    try:
        payload = wire.decode_payload(raw)
    except InvalidPayload:
        return None
    queue_time = payload.get("queue_time")
    if isinstance(queue_time, (int, float)) and not isinstance(queue_time, bool) and math.isfinite(queue_time):
        return round(now - float(queue_time), 3)  # (Python's JSON reader takes Infinity and NaN)
    args = payload["args"]
    if args and isinstance(args[0], dict) and isinstance(args[0].get("enqueued_at"), str):  # ActiveJob
        return _age(args[0]["enqueued_at"], now)
    return None


def _title_paused(pid: int) -> bool:
    """A local worker's title says Paused (Ruby's, php-resque's and ours all end so)."""
    title = process_title(pid)
    return title is not None and "resque" in title and title.rstrip().endswith("Paused")
