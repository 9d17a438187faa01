"""``pyresque metrics``: the per-class runs, failures and times that workers record (metrics.py)."""

from __future__ import annotations

import math
import time
from typing import Any

import click

from ..admin import metrics as admin_metrics
from ..scheduling.schedules import parse_duration
from ..wire.keys import METRIC_BUCKETS_MS, METRICS_RETENTION
from .common import UsageProblem, connection_options, echo, handle_errors, json_line, open_resque
from .ops import _table


@click.command()
@click.option("--class", "job_class", default=None, help="Only this job class (its name as in the payload).")
@click.option("--since", default="1h", show_default=True,
              help="How far back: a duration like 15m, 1h, 8h (metrics are kept 8 h).")
@click.option("--by-minute", is_flag=True, help="One row per minute and class, not the sum over the window.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@handle_errors
def metrics(job_class: str | None, since: str, by_minute: bool, as_json: bool, redis_url: str | None,
            prefix: str | None) -> None:
    """Per job class: runs, failed runs, mean, p50 and p95 execution time.

    Workers record them with each job's bookkeeping (PYRESQUE_METRICS=0 turns that off), one
    Redis hash per minute kept 8 h. p50/p95 are estimated from the fixed histogram buckets
    (5 ms .. 300 s), as Prometheus' histogram_quantile does; "> 300 s" past the last one.
    A retried run counts as a failed run; a job failed by the prune (its worker died) is not counted.
    """
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise UsageProblem(f"--since: {exc}") from None
    if not 0 < seconds <= METRICS_RETENTION:
        raise UsageProblem(f"--since must be more than 0 and at most {METRICS_RETENTION // 3600}h "
                           f"(metrics are kept {METRICS_RETENTION // 3600} h), not {since!r}")
    window = admin_metrics.read_window(open_resque(redis_url, prefix), seconds, job_class)
    if as_json:
        doc: dict[str, Any] = {"from": window.start, "to": window.end, "buckets_ms": list(METRIC_BUCKETS_MS),
                               "classes": [m.summary() for m in window.classes.values()], "problems": window.problems}
        if by_minute:
            doc["minutes"] = [{"minute": minute.start, "classes": [m.summary() for m in minute.classes.values()]}
                              for minute in window.minutes if minute.classes]
        echo(json_line(doc))
        return
    for line in _text(window, by_minute, job_class):
        echo(line)


def _text(window: admin_metrics.Window, by_minute: bool, job_class: str | None) -> list[str]:
    span = f"{_clock(window.start)} .. {_clock(window.end)} UTC"
    lines = [f"warning: {problem}" for problem in window.problems]
    if not window.classes:
        return lines + [f"(no runs recorded{f' for {job_class}' if job_class else ''} from {span})"]
    head: tuple[str, ...] = ("CLASS", "PROCESSED", "FAILED", "MEAN", "P50", "P95")
    if by_minute:
        rows = [("MINUTE",) + head] + [(_clock(minute.start),) + _row(m) for minute in window.minutes
                                       for m in minute.classes.values()]
    else:
        rows = [head] + [_row(m) for m in window.classes.values()]
    lines += _table(rows)
    return lines + ["", f"from {span}"]


def _row(m: admin_metrics.ClassMetrics) -> tuple[str, ...]:
    return (m.job_class, str(m.processed), str(m.failed), _ms(m.mean_ms), _ms(m.quantile(0.5)), _ms(m.quantile(0.95)))


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return f"> {METRIC_BUCKETS_MS[-1] // 1000} s"
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def _clock(epoch: int) -> str:
    return time.strftime("%H:%M", time.gmtime(epoch))
