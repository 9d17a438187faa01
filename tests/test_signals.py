"""Every row of the signal table, with real signals to a real worker (vectors s_signal_*)."""

from __future__ import annotations

import json
import signal
import time

import pytest

import vectors
from pyresque import Resque
from support import WorkerProcess, records, wait_for

pytestmark = pytest.mark.usefixtures("worker_mode")


def _start_sleep_job(redis_url, r, tmp_path, seconds=4, **env):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "SleepJob", seconds)
    worker = WorkerProcess(redis_url, tmp_path, **env).start()
    wid = worker.worker_id(r)
    wait_for(lambda: records(worker, "sleep_started"), what=f"job to start\n{worker.log()}")
    return resque, job_id, worker, wid


def _unregistered(r, wid) -> bool:
    return (not r.sismember("resque:workers", wid) and not r.exists(f"resque:worker:{wid}")
            and not r.exists(f"resque:worker:{wid}:started") and not r.hexists("resque:workers:heartbeat", wid)
            and not r.exists(f"resque:stat:processed:{wid}") and not r.exists(f"resque:stat:failed:{wid}"))


def _vector_after(name: str) -> dict:
    return vectors.state(vectors.load(f"php-resque-v1.3.6/{name}"), "after_signal_settled")


def test_quit_finishes_the_job_then_exits(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path, seconds=1.5)
    try:
        worker.signal(signal.SIGQUIT)
        assert worker.wait() == 0
        assert records(worker, "sleep_finished")
        assert resque.status(job_id).status == 4
        assert _unregistered(r, wid) and r.llen("resque:failed") == 0
        php_state = _vector_after("s_signal_quit")
        php = json.loads(php_state[next(k for k in php_state if k.endswith(":status"))]["value"])
        assert php["status"] == resque.status(job_id).status
    finally:
        worker.stop()


def _assert_killed_job(r, resque, job_id, worker, wid):
    assert not records(worker, "sleep_finished")
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert (failure["exception"], failure["error"]) == ("pyresque.DirtyExit", "Job exited abnormally")
    assert failure["payload"]["id"] == job_id and failure["worker"] == wid
    assert resque.status(job_id).status == 3 and 0 < r.ttl(f"resque:job:{job_id}:status") <= 86400
    php_failure = json.loads(_vector_after("s_signal_term")["resque:failed"]["value"][0])
    assert php_failure["error"] == failure["error"] and list(php_failure) == list(failure)
    assert r.get("resque:stat:failed") == b"1" and r.get("resque:stat:processed") == b"1"


def test_term_kills_the_child_records_dirty_exit_and_exits(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path)
    try:
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(5) == 0
        assert time.monotonic() - sent < 3
        _assert_killed_job(r, resque, job_id, worker, wid)
        assert _unregistered(r, wid)
    finally:
        worker.stop()


def test_int_behaves_like_term(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path)
    try:
        worker.signal(signal.SIGINT)
        assert worker.wait(5) == 0
        _assert_killed_job(r, resque, job_id, worker, wid)
        assert _unregistered(r, wid)
    finally:
        worker.stop()


def test_usr1_kills_the_child_and_keeps_working(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path)
    try:
        worker.signal(signal.SIGUSR1)
        wait_for(lambda: resque.status(job_id).status == 3, what="failed status")
        _assert_killed_job(r, resque, job_id, worker, wid)
        assert worker.process.poll() is None and r.sismember("resque:workers", wid)
        next_id = resque.enqueue("default", "PHP_Job", {})
        wait_for(lambda: resque.status(next_id).status == 4, what="next job")
    finally:
        worker.stop()


def test_term_child_terms_the_job_first(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path, TERM_CHILD="1", RESQUE_TERM_TIMEOUT="2")
    try:
        worker.signal(signal.SIGTERM)
        assert worker.wait(6) == 0
        [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
        assert (failure["exception"], failure["error"]) == ("pyresque.JobTerminated", "SIGTERM")
        assert resque.status(job_id).status == 3 and _unregistered(r, wid)
    finally:
        worker.stop()


def test_term_child_kills_a_job_that_ignores_term(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "IgnoreTermJob", 10)
    worker = WorkerProcess(redis_url, tmp_path, TERM_CHILD="1", RESQUE_TERM_TIMEOUT="1").start()
    try:
        wid = worker.worker_id(r)
        wait_for(lambda: records(worker, "ignore_term_started"), what="job start")
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(6) == 0
        assert 0.9 < time.monotonic() - sent < 4
        [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
        assert failure["error"] == "Job exited abnormally" and resque.status(job_id).status == 3
        assert _unregistered(r, wid)
    finally:
        worker.stop()


def test_graceful_term_behaves_like_quit(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path, seconds=1.5, GRACEFUL_TERM="1")
    try:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        assert records(worker, "sleep_finished") and resque.status(job_id).status == 4
        assert _unregistered(r, wid)
    finally:
        worker.stop()


def test_second_term_during_graceful_shutdown_exits_at_once(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path, seconds=10, GRACEFUL_TERM="1")
    try:
        worker.signal(signal.SIGTERM)
        time.sleep(0.3)
        assert worker.process.poll() is None
        worker.signal(signal.SIGTERM)
        assert worker.wait(4) == 0
        assert resque.status(job_id).status == 3 and _unregistered(r, wid)
    finally:
        worker.stop()


def test_usr2_pauses_after_the_job_and_cont_resumes(redis_url, r, tmp_path):
    resque, job_id, worker, wid = _start_sleep_job(redis_url, r, tmp_path, seconds=1)
    try:
        worker.signal(signal.SIGUSR2)
        second = resque.enqueue("default", "PHP_Job", {})
        wait_for(lambda: resque.status(job_id).status == 4, what="first job finishes while pausing")
        time.sleep(0.6)
        assert resque.status(second).status == 1 and r.llen("resque:queue:default") == 1
        import subprocess

        title = subprocess.run(["ps", "-o", "args=", "-p", str(worker.pid)], capture_output=True, text=True).stdout
        assert title.strip().endswith(": Paused")
        paused_vector = vectors.state(vectors.load("php-resque-v1.3.6/s_signal_usr2_cont"), "while_paused")
        assert paused_vector["resque:queue:default"]["type"] == "list"  # php keeps the second job queued too
        worker.signal(signal.SIGCONT)
        wait_for(lambda: resque.status(second).status == 4, what="second job after CONT")
    finally:
        worker.stop()


def test_pause_all_workers_key_is_honoured(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    r.set("resque:pause-all-workers", "true")
    job_id = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        time.sleep(0.6)
        assert resque.status(job_id).status == 1
        r.delete("resque:pause-all-workers")
        wait_for(lambda: resque.status(job_id).status == 4, what="job after unpause")
