"""Per-class job metrics that workers record, read back; and the live figures ``/metrics`` shows.

Workers count every run in the same Lua call that finishes the job (``store/scripts.py``
FINISH_LUA: no extra round trip): per job class, processed runs, failed runs, total microseconds
and a histogram over the fixed :data:`~pyresque.wire.keys.METRIC_BUCKETS_MS`, into one hash per
minute (kept :data:`~pyresque.wire.keys.METRICS_RETENTION`, 8 h) and one hash of totals that never
expires nor goes down (what Prometheus' counters need). This module turns those hashes into
:class:`ClassMetrics` for ``pyresque metrics``, and gathers what a Prometheus scrape reads live
(:func:`live`); ``pyresque.web.prometheus`` only formats. Everything is read in a bounded number
of round trips, however many queues, workers or minutes there are.
"""

from __future__ import annotations

import math
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..queue import Resque
from ..scheduling.delayed import store_for
from ..wire.keys import (
    METRIC_BUCKET,
    METRIC_BUCKETS_MS,
    METRIC_FAILED,
    METRIC_MICROS,
    METRIC_PROCESSED,
    METRICS_RETENTION,
    split_metric_field,
)
from .overview import QueueView, _enqueued_age, _worker_view

#: How many delayed timestamps a scrape sizes (one LLEN each, pipelined): past it,
#: ``delayed_jobs`` counts the earliest ones only, and ``delayed_jobs_exact`` is False.
DELAYED_SCAN_LIMIT = 10_000


@dataclass
class ClassMetrics:
    """One job class's runs: counts, total time, and the histogram (runs per bucket, not
    cumulative; the last bucket is ``+Inf``)."""

    job_class: str
    processed: int = 0
    failed: int = 0
    total_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(METRIC_BUCKETS_MS) + 1))

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.processed if self.processed else None

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile in ms, estimated from the buckets as Prometheus' ``histogram_quantile``
        does (linear inside the bucket that holds it); ``math.inf`` past the last bound, ``None``
        with no runs."""
        total = sum(self.buckets)
        if total == 0:
            return None
        rank, seen = q * total, 0
        for index, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                if index == len(METRIC_BUCKETS_MS):
                    return math.inf
                low = METRIC_BUCKETS_MS[index - 1] if index else 0.0
                return low + (METRIC_BUCKETS_MS[index] - low) * max(rank - seen, 0.0) / count
            seen += count
        return math.inf  # not reached: the buckets hold ``total`` runs

    def add(self, other: ClassMetrics) -> None:
        self.processed += other.processed
        self.failed += other.failed
        self.total_ms += other.total_ms
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets)]

    def summary(self) -> dict[str, Any]:
        """For ``--json`` and the text table: counts, mean, p50, p95 (ms; ``inf`` past 300 s)."""
        return {"class": self.job_class, "processed": self.processed, "failed": self.failed,
                "total_ms": round(self.total_ms, 3), "mean_ms": _rounded(self.mean_ms),
                "p50_ms": _rounded(self.quantile(0.5)), "p95_ms": _rounded(self.quantile(0.95)),
                "buckets": dict(zip([str(b) for b in METRIC_BUCKETS_MS] + ["+Inf"], self.buckets))}


def parse_metrics_hash(raw: dict[bytes, bytes], job_class: str | None = None) -> tuple[dict[str, ClassMetrics], int]:
    """A metrics hash as read, into classes (only ``job_class`` when given); also how many fields
    could not be read (not ours, or not a number: another program's doing)."""
    classes: dict[str, ClassMetrics] = {}
    unreadable = 0
    for raw_field, raw_value in raw.items():
        split = split_metric_field(raw_field.decode("utf-8", "replace"))
        value = _number(raw_value)
        if split is None or value is None:
            unreadable += 1
            continue
        name, kind = split
        if job_class is not None and name != job_class:
            continue
        metrics = classes.get(name) or classes.setdefault(name, ClassMetrics(name))
        if kind == METRIC_PROCESSED:
            metrics.processed = int(value)
        elif kind == METRIC_FAILED:
            metrics.failed = int(value)
        elif kind == METRIC_MICROS:
            metrics.total_ms = value / 1000.0
        elif kind.startswith(METRIC_BUCKET) and kind[1:].isdigit() and int(kind[1:]) < len(metrics.buckets):
            metrics.buckets[int(kind[1:])] = int(value)
        else:
            unreadable += 1
    return classes, unreadable


@dataclass
class Minute:
    start: int  # epoch second the minute starts at
    classes: dict[str, ClassMetrics]


@dataclass
class Window:
    """The minutes from ``start`` (inclusive) to ``end`` (exclusive), and their sum per class."""

    start: int
    end: int
    minutes: list[Minute]
    classes: dict[str, ClassMetrics]
    problems: list[str]


def read_window(resque: Resque, since: float, job_class: str | None = None) -> Window:
    """The last ``since`` seconds (whole minutes, the current one included; at most the 8 h kept),
    per minute and summed, in one round trip for the minutes. Clock: Redis ``TIME``."""
    if not 0 < since <= METRICS_RETENTION:
        raise ValueError(f"since must be more than 0 and at most {METRICS_RETENTION} s (the time metrics are kept)")
    store = resque.store
    current = int(store.server_time()) // 60 * 60
    starts = [current - 60 * back for back in range(math.ceil(since / 60) - 1, -1, -1)]
    minutes: list[Minute] = []
    summed: dict[str, ClassMetrics] = {}
    problems: list[str] = []
    for start, raw in zip(starts, store.hashes([resque.keys.metrics_minute(s) for s in starts])):
        classes, unreadable = parse_metrics_hash(raw, job_class)
        if unreadable:
            problems.append(f"{resque.keys.metrics_minute(start)} has {unreadable} unreadable fields: ignored")
        minutes.append(Minute(start, classes))
        for name, metrics in classes.items():
            summed.setdefault(name, ClassMetrics(name)).add(metrics)
    problems += store.take_problems()
    return Window(starts[0], current + 60, minutes, dict(sorted(summed.items())), problems)


def read_totals(resque: Resque, job_class: str | None = None) -> tuple[dict[str, ClassMetrics], list[str]]:
    """Every class's runs since metrics were first recorded (monotonic counters)."""
    raw = resque.store.hashes([resque.keys.metrics_total])[0]
    classes, unreadable = parse_metrics_hash(raw, job_class)
    problems = resque.store.take_problems()
    if unreadable:
        problems.append(f"{resque.keys.metrics_total} has {unreadable} unreadable fields: ignored")
    return dict(sorted(classes.items())), problems


# -- what a scrape reads live -------------------------------------------------------------------
@dataclass
class Live:
    queues: list[QueueView]
    #: (host, language, state) -> workers; language pyresque, ruby or php; state working/paused/idle
    workers: Counter[tuple[str, str, str]]
    processed: int  # stat:processed
    failed: int  # stat:failed
    failed_list: int
    paused_all: bool
    delayed_timestamps: int
    delayed_jobs: int
    delayed_jobs_exact: bool
    #: seconds the earliest delayed timestamp is past due (0 when none is due): > a few seconds
    #: means nothing is moving them
    delayed_overdue: float
    classes: dict[str, ClassMetrics]
    problems: list[str]


def language(flavour: str, worker_id: str, horizons: dict[str, str]) -> str:
    """``php`` for php-resque's formats; of the two that write Ruby's, pyresque is the one with a
    ``pyresque_prune_horizons`` entry."""
    if flavour == "php":
        return "php"
    return "pyresque" if worker_id in horizons else "ruby"


def live(resque: Resque) -> Live:
    """Everything ``/metrics`` shows, in about a dozen round trips whatever the counts."""
    store = resque.store
    names = store.queue_names()
    now = store.server_time()
    queues = [QueueView(name, size, _enqueued_age(head, now) if head is not None else (0.0 if size == 0 else None))
              for name, (size, head) in zip(names, store.queue_heads(names))]
    horizons = store.prune_horizons()
    ids = store.worker_ids()
    paused_all, local_host = store.all_paused(), socket.gethostname()
    views = [_worker_view(wid, (*glance, 0, 0), now, paused_all, local_host)
             for wid, glance in zip(ids, store.worker_glance(ids))]
    workers = Counter((v.host, language(v.flavour, v.id, horizons), v.state) for v in views)
    stats = store.stats()
    failed_list = store.failed_size()
    classes, problems = read_totals(resque)
    scheduler = store_for(resque)
    members = scheduler.timestamps()
    sizes = scheduler.bucket_sizes(members[:DELAYED_SCAN_LIMIT])
    problems += [f"{resque.keys.delayed(m).decode('utf-8', 'replace')} is not a list: not counted"
                 for m, size in zip(members, sizes) if size is None]
    problems = list(dict.fromkeys(problems + scheduler.take_problems() + store.take_problems()))
    earliest = _number(members[0]) if members else None
    return Live(queues=queues, workers=workers, processed=stats["processed"], failed=stats["failed"],
                failed_list=failed_list, paused_all=paused_all, delayed_timestamps=len(members),
                delayed_jobs=sum(size for size in sizes if size is not None),
                delayed_jobs_exact=len(members) <= DELAYED_SCAN_LIMIT,
                delayed_overdue=max(0.0, round(now - earliest, 3)) if earliest is not None else 0.0,
                classes=classes, problems=problems)


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _rounded(value: float | None) -> float | None:
    return value if value is None or math.isinf(value) else round(value, 3)
