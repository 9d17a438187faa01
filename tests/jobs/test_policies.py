"""Retries with backoff, time limits, unique jobs and concurrency limits, on real workers."""

from __future__ import annotations

import json
import threading
import time

import pytest

import fixtures  # noqa: F401 - registers the job classes here, as a producer does: enqueue finds @unique on them
from pyresque import Resque
from pyresque.jobs.policies import RetryPolicy, retry, timeout
from support import WorkerProcess, records, wait_for


@pytest.fixture
def scheduler_loop(redis_url):
    """Moves due delayed jobs every 50 ms with the scheduler's own move step."""
    from pyresque.scheduling.delayed import move_due

    resque = Resque(redis_url)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            move_due(resque)
            stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def _failures(r):
    return [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]


def test_a_job_over_its_time_limit_is_killed_recorded_and_the_worker_carries_on(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    slow = resque.enqueue("default", "SlowJobWithLimit", 10)
    after = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path, RESQUE_TERM_TIMEOUT="0.5") as worker:
        worker.worker_id(r)
        started = time.monotonic()
        wait_for(lambda: resque.status(after).status == 4, timeout=10, what=f"next job\n{worker.log()}")
        assert time.monotonic() - started < 5
        assert not records(worker, "slow_limited_finished")
    [failure] = _failures(r)
    assert failure["exception"] == "pyresque.JobTimeout" and "time limit of 1s" in failure["error"]
    assert resque.status(slow).status == 3


def test_worker_default_timeout_applies_to_classes_without_one(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "SleepJob", 10)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_JOB_TIMEOUT="0.5") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 3, timeout=8, what="timed out job")
    assert _failures(r)[0]["exception"] == "pyresque.JobTimeout"


def test_inline_mode_enforces_time_limits_too(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "SlowJobWithLimit", 10)
    after = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_INLINE="1") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(after).status == 4, timeout=8, what="next job")
    assert resque.status(job_id).status == 3 and _failures(r)[0]["exception"] == "pyresque.JobTimeout"


def test_a_flaky_job_succeeds_on_attempt_3_with_backoff(redis_url, r, tmp_path, scheduler_loop):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "FlakyJob", {"x": 1})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 4, timeout=15, what=f"success\n{worker.log()}")
        runs = sorted(records(worker, "flaky"), key=lambda rec: rec["t"])
    assert [run["attempt"] for run in runs] == [1, 2, 3]
    assert runs[1]["t"] - runs[0]["t"] >= 0.3 and runs[2]["t"] - runs[1]["t"] >= 0.6
    assert resque.status(job_id).result == {"succeeded_on": 3}
    assert _failures(r) == []
    assert "job failed, retrying" in worker.log() and "attempt=2" in worker.log()


def test_a_hopeless_job_ends_in_failed_with_its_history(redis_url, r, tmp_path, scheduler_loop):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "HopelessJob", "runtime")
    never = resque.enqueue("default", "HopelessJob", "value")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 3, timeout=15, what="final failure")
        wait_for(lambda: resque.status(never).status == 3, timeout=5, what="no retry for ValueError")
    by_id = {f["payload"]["id"]: f for f in _failures(r)}
    assert len(_failures(r)) == 2
    final = by_id[job_id]
    assert final["payload"]["attempt"] == 3
    assert [h["attempt"] for h in final["payload"]["retry_history"]] == [1, 2]
    assert all(h["exception"] == "RuntimeError" for h in final["payload"]["retry_history"])
    assert "attempt" not in by_id[never]["payload"]


def test_twenty_identical_unique_jobs_run_once(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "UniqueJob", 7) for _ in range(20)]
    assert sum(1 for i in ids if i) == 1 and r.llen("resque:queue:default") == 1
    assert resque.enqueue("default", "UniqueJob", 8) is not None  # other args: another job
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: r.get("resque:stat:processed") == b"2", what="both unique jobs")
        assert sorted(rec["n"] for rec in records(worker, "unique_ran")) == [7, 8]
    assert resque.enqueue("default", "UniqueJob", 7) is not None  # the lock went with the job


def test_a_concurrency_limit_of_2_holds_across_4_workers(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    for n in range(10):
        resque.enqueue("default", "LimitedJob", n)
    workers = [WorkerProcess(redis_url, tmp_path).start() for _ in range(4)]
    try:
        wait_for(lambda: len(records(workers[0], "limited")) == 10, timeout=30, what="all limited jobs")
    finally:
        for worker in workers:
            worker.stop()
    runs = records(workers[0], "limited")
    assert sorted(run["n"] for run in runs) == list(range(10))
    events = sorted([(run["start"], 1) for run in runs] + [(run["end"], -1) for run in runs])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    assert r.zcard("resque:pyresque_concurrency:LimitedJob") == 0


def test_aliases_of_a_unique_class_share_one_lock_from_enqueue_to_the_workers_release(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    assert resque.enqueue("default", "Unique", 1) is not None
    assert resque.enqueue("default", "App\\Unique", 1) is None  # before: a second job, under the alias
    assert resque.enqueue("default", "App\\Unique", 2) is not None
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: r.get("resque:stat:processed") == b"2", what=f"both unique jobs\n{worker.log()}")
    assert sorted(rec["n"] for rec in records(worker, "aliased_unique_ran")) == [1, 2]
    # the worker released the lock the alias's enqueue took (before: it released another key)
    assert resque.enqueue("default", "Unique", 2) is not None
    assert len(r.keys("resque:pyresque_unique:*")) == 1  # that new job's; the others went with their jobs


def test_aliases_of_a_limited_class_share_one_concurrency_slot(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    resque.enqueue("default", "Limited", 1)
    resque.enqueue("default", "App\\Limited", 2)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_THREADS="2") as worker:  # two slots: room for both
        wait_for(lambda: len(records(worker, "aliased_limited")) == 2, what=f"both limited jobs\n{worker.log()}")
    first, second = sorted(records(worker, "aliased_limited"), key=lambda run: run["start"])
    assert first["end"] <= second["start"]  # before: each name had a slot of its own, and they overlapped
    assert r.keys("resque:pyresque_concurrency:*") == []


@pytest.mark.parametrize("kwargs", [dict(attempts=0), dict(attempts=-1), dict(attempts=2, backoff="sometimes"),
                                    dict(attempts=2, backoff=-1), dict(attempts=2, backoff=[]), dict(attempts=2, jitter=2)])
def test_nonsense_retry_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        retry(**kwargs)


def test_backoff_shapes():
    assert RetryPolicy(5, 2).delay(3) == 2
    assert [RetryPolicy(5, [1, 5]).delay(n) for n in (1, 2, 3)] == [1, 5, 5]
    assert [RetryPolicy(9, "exponential", base=1, cap=10).delay(n) for n in (1, 2, 3, 5)] == [1, 2, 4, 10]
    assert RetryPolicy(5, 10, jitter=0.5).delay(1, rand=lambda: 1.0) == 15
    with pytest.raises(ValueError):
        timeout(0)
