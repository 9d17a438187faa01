"""Workers move due delayed jobs and retries themselves (pyresque.scheduling.duty): no job waits
on a scheduler process nobody started, and a scheduler process that runs is left to do it."""

from __future__ import annotations

import json
import re
import time

from pyresque import Resque
from pyresque.log import get_logger
from pyresque.scheduling.delayed import enqueue_at
from pyresque.scheduling.duty import DelayedDuty
from pyresque.wire import payload as wire
from support import LOCK, WorkerProcess, cli, records, wait_for


def _overdue(r, seconds: float, **args) -> None:
    """A delayed job due ``seconds`` ago, as resque-scheduler stores one (enqueue_at would push a
    job whose time has passed at once)."""
    ts = int(time.time() - seconds)
    r.zadd("resque:delayed_queue_schedule", {str(ts): ts})
    r.rpush(f"resque:delayed:{ts}", json.dumps({"class": "PHP_Job", "args": [args], "queue": "default"}))


def _processed(r) -> int:
    return int(r.get("resque:stat:processed") or 0)


def test_a_retrying_job_runs_to_success_with_only_a_worker(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "FlakyJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        wait_for(lambda: resque.status(job_id).status == wire.COMPLETE, timeout=20,
                 what=f"the third attempt, with no scheduler process\n{worker.log()}")
        assert [run["attempt"] for run in records(worker, "flaky")] == [1, 2, 3]
    assert r.llen("resque:failed") == 0


def test_a_job_enqueued_in_1_second_runs_with_only_a_worker(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        done = cli(redis_url, "enqueue", "PHP_Job", '{"delayed": true}', "--in", "1")
        assert done.returncode == 0, done.stderr
        job_id = done.stdout.split()[-1]
        wait_for(lambda: resque.status(job_id) is not None and resque.status(job_id).status == wire.COMPLETE,
                 timeout=15, what=f"the delayed job to run\n{worker.log()}")
    assert r.zcard("resque:delayed_queue_schedule") == 0


def test_a_worker_started_with_no_scheduler_leaves_them_and_info_says_nothing_moves_them(redis_url, r, tmp_path):
    _overdue(r, 60, late=True)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_SCHEDULER="0") as worker:
        worker.worker_id(r)
        time.sleep(2.5)  # more than two of a worker's passes
        assert r.zcard("resque:delayed_queue_schedule") == 1
        shown = cli(redis_url, "info")
        assert "delayed 1 (0 retrying), earliest 1m" in shown.stdout
        assert "NOT MOVING" in shown.stdout
        doc = json.loads(cli(redis_url, "info", "--json").stdout)
        assert doc["delayed"]["jobs"] == 1 and doc["delayed"]["stalled"] is True
    with WorkerProcess(redis_url, tmp_path):
        wait_for(lambda: _processed(r) == 1, what="a default worker to move and run it")
    assert "NOT MOVING" not in cli(redis_url, "info").stdout


def test_info_counts_retries_waiting_for_their_time(redis_url, r):
    resque = Resque(redis_url)
    payload = wire.for_retry({"class": "X", "args": [], "id": "a" * 32}, 1, "RuntimeError", "boom")
    from pyresque.scheduling.delayed import delay_payload

    delay_payload(resque, time.time() + 3600, "default", payload)
    enqueue_at(resque, time.time() + 3600, "default", "Y")
    doc = json.loads(cli(redis_url, "info", "--json").stdout)
    assert (doc["delayed"]["jobs"], doc["delayed"]["retrying"], doc["delayed"]["stalled"]) == (2, 1, False)
    assert re.search(r"^delayed 2 \(1 retrying\), next due in (1h|59m\d\ds)$", cli(redis_url, "info").stdout, re.M)


def test_workers_leave_the_moving_to_a_scheduler_that_holds_the_lock(redis_url, r, tmp_path):
    r.set(LOCK, "otherhost:4242", ex=60)  # a live scheduler (Ruby's or ours) on another host
    _overdue(r, 1)
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        time.sleep(2.5)
        assert r.zcard("resque:delayed_queue_schedule") == 1
        r.delete(LOCK)  # the scheduler is gone: the workers take over at once
        wait_for(lambda: _processed(r) == 1, what="the worker to move it")


def test_a_pass_moves_due_jobs_and_releases_the_lock_at_once(resque, r):
    _overdue(r, 1, first=True)
    enqueue_at(resque, time.time() + 3600, "default", "PHP_Job")
    duty = DelayedDuty(resque, "vm:1", get_logger("test"), interval=0)
    assert duty.run_if_due() == 1
    assert json.loads(r.lindex("resque:queue:default", 0))["args"] == [{"first": True}]
    assert r.get(LOCK) is None  # held only for the move: a scheduler process takes it next pass
    assert r.zcard("resque:delayed_queue_schedule") == 1  # the later one stays


def test_a_pass_with_nothing_due_takes_no_lock(resque, r):
    enqueue_at(resque, time.time() + 3600, "default", "PHP_Job")
    duty = DelayedDuty(resque, "vm:1", get_logger("test"), interval=0)
    r.config_resetstat()
    assert duty.run_if_due() == 0
    stats = r.info("commandstats")
    assert "cmdstat_zrangebyscore" in stats and not any(k in stats for k in ("cmdstat_set", "cmdstat_evalsha"))


def test_an_inline_worker_moves_due_jobs_while_its_own_job_runs(redis_url, r, tmp_path):
    """No loop runs during an inline job: its heartbeat thread does the looking instead."""
    resque = Resque(redis_url)
    gated = resque.enqueue("default", "GateJob", "long")
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_INLINE="1") as worker:
        wait_for(lambda: records(worker, "gate_started"), what="the long job to start")
        _overdue(r, 1, moved=True)
        wait_for(lambda: r.llen("resque:queue:default") == 1, what=f"the busy worker to move it\n{worker.log()}")
        assert resque.status(gated).status == wire.RUNNING
        worker.open_gate("long")
        wait_for(lambda: _processed(r) == 2, what="both jobs")
