"""Per-class metrics: recorded by real workers in the job's finishing script, read back by admin.metrics."""

from __future__ import annotations

import math
import time

import pytest

from pyresque.admin import metrics
from pyresque.store.scripts import METRICS_MAX_FIELDS
from pyresque.wire.keys import METRIC_BUCKETS_MS, METRICS_RETENTION
from support import WorkerProcess, wait_for

MINUTES = "resque:pyresque_metrics:*"
TOTAL = "resque:pyresque_metrics_total"


def minute_fields(r) -> dict[str, int | float]:
    """Every minute hash summed (a test may straddle a minute)."""
    out: dict[str, int | float] = {}
    for key in r.scan_iter(MINUTES):
        for field, value in r.hgetall(key).items():
            out[field.decode()] = out.get(field.decode(), 0) + float(value)
    return out


def total_fields(r) -> dict[str, float]:
    return {field.decode(): float(value) for field, value in r.hgetall(TOTAL).items()}


def bucket_of(ms: float) -> int:
    return next((i for i, bound in enumerate(METRIC_BUCKETS_MS) if ms <= bound), len(METRIC_BUCKETS_MS))


def test_a_worker_records_runs_failures_time_and_histogram_per_class(resque, redis_url, r, tmp_path):
    for _ in range(3):
        resque.enqueue("default", "NoopJob")
    resque.enqueue("default", "SleepJob", 0.06)
    resque.enqueue("default", "FailJob", "boom")
    resque.enqueue("default", "FailJob", "boom")
    resque.enqueue("default", "FlakyJob")  # fails twice (retried), then succeeds: three runs
    with WorkerProcess(redis_url, tmp_path):
        wait_for(lambda: total_fields(r).get("FlakyJob|p") == 3, timeout=15, what="FlakyJob's third run")
        wait_for(lambda: minute_fields(r).get("FailJob|p") == 2, what="the failures")
    minute, total = minute_fields(r), total_fields(r)
    assert minute == pytest.approx(total)  # the first writes: the totals are the minutes' sum
    assert (total["NoopJob|p"], total.get("NoopJob|f", 0)) == (3, 0)
    assert (total["FailJob|p"], total["FailJob|f"]) == (2, 2)
    assert (total["FlakyJob|p"], total["FlakyJob|f"]) == (3, 2)  # a retried run counts as a failed run
    assert total["SleepJob|us"] >= 60_000
    sleep_buckets = {k: v for k, v in total.items() if k.startswith("SleepJob|b")}
    assert sum(sleep_buckets.values()) == 1
    (only,) = sleep_buckets
    assert int(only.rpartition("|b")[2]) == bucket_of(total["SleepJob|us"] / 1000) > bucket_of(50)
    for job_class in ("NoopJob", "FailJob", "FlakyJob"):
        assert sum(v for k, v in total.items() if k.startswith(f"{job_class}|b")) == total[f"{job_class}|p"]
    keys = list(r.scan_iter(MINUTES))
    assert keys and all(0 < r.ttl(key) <= METRICS_RETENTION for key in keys)  # kept 8 h, no longer
    assert all(int(key.decode().rpartition(":")[2]) % 60 == 0 for key in keys)  # named by the minute's start
    assert r.ttl(TOTAL) == -1

    window = metrics.read_window(resque, 600)
    assert window.problems == []
    assert {name: (m.processed, m.failed) for name, m in window.classes.items()} == {
        "FailJob": (2, 2), "FlakyJob": (3, 2), "NoopJob": (3, 0), "SleepJob": (1, 0)}
    sleep = window.classes["SleepJob"]
    assert METRIC_BUCKETS_MS[bucket_of(sleep.total_ms) - 1] <= sleep.quantile(0.95) <= METRIC_BUCKETS_MS[
        bucket_of(sleep.total_ms)]
    assert metrics.read_window(resque, 600, job_class="NoopJob").classes.keys() == {"NoopJob"}
    totals, problems = metrics.read_totals(resque)
    assert problems == [] and totals["FailJob"].failed == 2


@pytest.mark.parametrize("mode", [{"PYRESQUE_INLINE": "1"}, {"PYRESQUE_THREADS": "2"}], ids=["inline", "threads-2"])
def test_inline_and_threaded_workers_record_too(resque, redis_url, r, tmp_path, mode):
    resque.enqueue("default", "NoopJob")
    resque.enqueue("default", "FailJob", "x")
    with WorkerProcess(redis_url, tmp_path, **mode):
        wait_for(lambda: total_fields(r).get("FailJob|f") == 1, what="the failure's metrics")
        wait_for(lambda: total_fields(r).get("NoopJob|p") == 1, what="the run's metrics")


def test_keys_of_the_wrong_type_never_break_the_bookkeeping(resque, redis_url, r, tmp_path):
    now = int(time.time()) // 60 * 60
    for minute in (now, now + 60, now + 120):  # whichever minute the job ends in
        r.set(f"resque:pyresque_metrics:{minute}", "not a hash")
    r.rpush(TOTAL, "not a hash either")
    job_id = resque.enqueue("default", "NoopJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        wait_for(lambda: resque.status(job_id).status == 4, what="the job to complete")
        wait_for(lambda: "is not a hash of counters" in worker.log() and TOTAL in worker.log(),
                 what=f"the problem reported\n{worker.log()}")
    assert int(r.get("resque:stat:processed")) == 1
    assert r.get(f"resque:pyresque_metrics:{now}") == b"not a hash"
    assert r.ttl(f"resque:pyresque_metrics:{now}") == -1  # not ours: no expiry put on it
    assert r.lrange(TOTAL, 0, -1) == [b"not a hash either"]
    window = metrics.read_window(resque, 120)
    assert window.classes == {} and any("WRONGTYPE" in p for p in window.problems)


def test_a_field_that_is_not_a_number_loses_only_that_count(resque, redis_url, r, tmp_path):
    r.hset(TOTAL, "NoopJob|us", "abc")
    job_id = resque.enqueue("default", "NoopJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        wait_for(lambda: resque.status(job_id).status == 4, what="the job to complete")
        wait_for(lambda: "a metric of NoopJob not counted" in worker.log(), what=f"the problem\n{worker.log()}")
    assert r.hget(TOTAL, "NoopJob|p") == b"1" and r.hget(TOTAL, "NoopJob|us") == b"abc"
    totals, problems = metrics.read_totals(resque)
    assert totals["NoopJob"].processed == 1 and problems == [f"{TOTAL} has 1 unreadable fields: ignored"]


def test_totals_take_no_new_class_past_the_cap(resque, redis_url, r, tmp_path):
    r.hset(TOTAL, mapping={f"Junk{i}|p": 1 for i in range(METRICS_MAX_FIELDS)})
    job_id = resque.enqueue("default", "NoopJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        wait_for(lambda: resque.status(job_id).status == 4, what="the job to complete")
        wait_for(lambda: "holds too many job classes" in worker.log(), what=f"the problem\n{worker.log()}")
    assert r.hlen(TOTAL) == METRICS_MAX_FIELDS and not r.hexists(TOTAL, "NoopJob|p")
    assert minute_fields(r)["NoopJob|p"] == 1  # the minute (which expires) still has it


def test_pyresque_metrics_0_records_nothing(resque, redis_url, r, tmp_path):
    job_id = resque.enqueue("default", "NoopJob")
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_METRICS="0"):
        wait_for(lambda: resque.status(job_id).status == 4, what="the job to complete")
    assert list(r.scan_iter("resque:pyresque_metrics*")) == []


def test_quantiles_are_estimated_inside_the_bucket_as_prometheus_does():
    m = metrics.ClassMetrics("X", processed=4)
    m.buckets[bucket_of(7)] = 2  # (5, 10]
    m.buckets[bucket_of(70)] = 2  # (50, 100]
    assert m.quantile(0.5) == pytest.approx(10.0)
    assert m.quantile(0.75) == pytest.approx(75.0)
    m.buckets[-1] = 100  # past 300 s
    assert m.quantile(0.95) == math.inf
    assert metrics.ClassMetrics("empty").quantile(0.5) is None


def test_a_window_longer_than_what_is_kept_is_refused(resque):
    with pytest.raises(ValueError, match="at most 28800"):
        metrics.read_window(resque, METRICS_RETENTION + 60)
