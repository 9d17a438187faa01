"""``/metrics``: the Resque Redis in Prometheus' text format, read live at each scrape.

Mount :func:`metrics_endpoint` in a Starlette (or FastAPI) app whose ``app.state.resque`` is a
:class:`pyresque.Resque`::

    app = Starlette(routes=[Route("/metrics", metrics_endpoint)])
    app.state.resque = Resque("redis://…")

A custom collector (no metric objects kept in the process): every scrape reads Redis through
:func:`pyresque.admin.metrics.live` in about a dozen pipelined round trips, whatever the number
of queues and workers, in a thread of the threadpool so the event loop never waits on Redis.
Names (README "Metrics"): ``pyresque_queue_jobs``, ``pyresque_queue_latency_seconds``,
``pyresque_workers``, ``pyresque_jobs_processed_total``, ``pyresque_jobs_failed_total``,
``pyresque_failed_list_jobs``, ``pyresque_delayed_jobs``, ``pyresque_delayed_timestamps``,
``pyresque_delayed_overdue_seconds``, ``pyresque_paused``, ``pyresque_job_runs_total``,
``pyresque_job_failures_total``, ``pyresque_job_duration_seconds`` (histogram) and
``pyresque_unreadable_keys`` (keys another program broke, skipped: the log names them).
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import log
from ..admin import metrics as admin_metrics
from ..queue import Resque
from ..wire.keys import METRIC_BUCKETS_MS

_log = log.get_logger()


class ResqueCollector:
    """Collects :func:`~pyresque.admin.metrics.live` into metric families at each scrape."""

    def __init__(self, resque: Resque) -> None:
        self.resque = resque

    def collect(self) -> Iterator[Metric]:
        now = admin_metrics.live(self.resque)
        for problem in now.problems:
            _log.warning("metrics: a key in Redis holds the wrong type, skipped", problem=problem)
        depth = GaugeMetricFamily("pyresque_queue_jobs", "Jobs waiting in the queue.", labels=["queue"])
        latency = GaugeMetricFamily("pyresque_queue_latency_seconds",
                                    "Age of the oldest job in the queue (0 when empty; absent when its payload "
                                    "has no enqueue time, as Ruby's).", labels=["queue"])
        for queue in now.queues:
            depth.add_metric([queue.name], queue.size)
            if queue.oldest_age is not None:
                latency.add_metric([queue.name], max(0.0, queue.oldest_age))
        yield depth
        yield latency
        workers = GaugeMetricFamily("pyresque_workers", "Registered workers by host, language (pyresque, ruby, php) "
                                    "and state (working, idle, paused).", labels=["host", "language", "state"])
        for (host, language, state), count in sorted(now.workers.items()):
            workers.add_metric([host, language, state], count)
        yield workers
        yield CounterMetricFamily("pyresque_jobs_processed", "Resque's stat:processed.", value=now.processed)
        yield CounterMetricFamily("pyresque_jobs_failed", "Resque's stat:failed.", value=now.failed)
        yield GaugeMetricFamily("pyresque_failed_list_jobs", "Failure records in the failed list.",
                                value=now.failed_list)
        yield GaugeMetricFamily("pyresque_delayed_jobs", "Delayed jobs and retries waiting for their time (those "
                                f"of the earliest {admin_metrics.DELAYED_SCAN_LIMIT} due times, when there are more).",
                                value=now.delayed_jobs)
        yield GaugeMetricFamily("pyresque_delayed_timestamps", "Distinct due times of delayed jobs.",
                                value=now.delayed_timestamps)
        yield GaugeMetricFamily("pyresque_delayed_overdue_seconds", "How late the earliest due delayed job is "
                                "(more than a few seconds: nothing is moving them).", value=now.delayed_overdue)
        yield GaugeMetricFamily("pyresque_paused", "1 while Ruby's pause-all-workers is set.",
                                value=1 if now.paused_all else 0)
        yield from _class_families(now.classes)
        yield GaugeMetricFamily("pyresque_unreadable_keys", "Keys of the wrong type this scrape skipped.",
                                value=len(now.problems))


def _class_families(classes: dict[str, admin_metrics.ClassMetrics]) -> Iterator[Metric]:
    runs = CounterMetricFamily("pyresque_job_runs", "Runs per job class, as workers recorded them.", labels=["class"])
    failures = CounterMetricFamily("pyresque_job_failures", "Failed runs per job class (a retried run counts).",
                                   labels=["class"])
    duration = HistogramMetricFamily("pyresque_job_duration_seconds", "Execution time per job class.",
                                     labels=["class"])
    bounds = [_le(ms) for ms in METRIC_BUCKETS_MS] + ["+Inf"]
    for name, metrics in classes.items():
        runs.add_metric([name], metrics.processed)
        failures.add_metric([name], metrics.failed)
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, metrics.buckets):
            cumulative += count
            buckets.append((bound, cumulative))
        duration.add_metric([name], buckets, sum_value=metrics.total_ms / 1000.0)
    yield runs
    yield failures
    yield duration


def _le(ms: int) -> str:
    return repr(ms / 1000.0)


def render(resque: Resque, accept: str = "") -> tuple[bytes, str]:
    """One scrape's body and content type, in the format the ``Accept`` header asks for
    (Prometheus' text format, or OpenMetrics: prometheus-client's choice). Blocking: reads Redis."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResqueCollector(resque))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


async def metrics_endpoint(request: Request) -> Response:
    """Starlette endpoint: ``request.app.state.resque`` must be the :class:`~pyresque.Resque` to read."""
    resque: Any = getattr(request.app.state, "resque", None)
    if not isinstance(resque, Resque):
        raise RuntimeError("metrics_endpoint needs app.state.resque to be a pyresque.Resque")
    body, content_type = await run_in_threadpool(render, resque, request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})
