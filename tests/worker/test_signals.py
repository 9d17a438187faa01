"""Every row of the signal table, with real signals to a real worker (vectors s_signal_*), in every
execution mode (conftest.WORKER_MODES).

Where fork modes kill the job's child, the other modes do their documented counterpart (README:
execution modes, threaded mode): inline runs the job in the worker itself, so TERM, INT, USR1 and a
second TERM let it finish (there is no child to kill); a threaded worker cannot kill a thread, so
it records the job DirtyExit ("Job exited abnormally") as a killed child is, or interrupts it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

import support
import vectors
from pyresque import Resque
from support import WorkerProcess, records, wait_for

pytestmark = pytest.mark.usefixtures("worker_mode")

GRACEFUL = "shutting down after the current job"


def _start_gated_job(redis_url, r, tmp_path, **env):
    """A worker running a GateJob that only ends when the test opens its gate."""
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "GateJob", "job")
    worker = WorkerProcess(redis_url, tmp_path, **env).start()
    ids = worker.worker_ids(r)
    wait_for(lambda: records(worker, "gate_started"), what=f"job to start\n{worker.log()}")
    return resque, job_id, worker, worker.working_on(r, job_id), ids


def _unregistered(r, ids) -> bool:
    return all(not r.sismember("resque:workers", wid) and not r.exists(f"resque:worker:{wid}")
               and not r.exists(f"resque:worker:{wid}:started") and not r.hexists("resque:workers:heartbeat", wid)
               and not r.exists(f"resque:stat:processed:{wid}") and not r.exists(f"resque:stat:failed:{wid}")
               for wid in ids)


def _vector_after(name: str) -> dict:
    return vectors.state(vectors.load(f"php-resque-v1.3.6/{name}"), "after_signal_settled")


def _let_finish_once_acted_on(worker, log_line: str) -> None:
    """Open the gate once the worker has acted on the signal just sent. Inline acts on signals once
    its job returns (the job runs in the worker itself); the signal is already pending by then."""
    if not support.mode_is_inline():
        wait_for(lambda: log_line in worker.log(), what=f"{log_line!r}\n{worker.log()}")
    worker.open_gate("job")


def test_quit_finishes_the_job_then_exits(redis_url, r, tmp_path):
    resque, job_id, worker, wid, ids = _start_gated_job(redis_url, r, tmp_path)
    try:
        worker.signal(signal.SIGQUIT)
        _let_finish_once_acted_on(worker, GRACEFUL)
        assert worker.wait() == 0
        _assert_finished_job(r, resque, job_id, worker)
        assert _unregistered(r, ids)
        php_state = _vector_after("s_signal_quit")
        php = json.loads(php_state[next(k for k in php_state if k.endswith(":status"))]["value"])
        assert php["status"] == resque.status(job_id).status
    finally:
        worker.stop()


def _assert_finished_job(r, resque, job_id, worker):
    assert records(worker, "gate_finished")
    assert resque.status(job_id).status == 4 and r.llen("resque:failed") == 0
    assert r.get("resque:stat:processed") == b"1" and not r.exists("resque:stat:failed")


def _assert_killed_job(r, resque, job_id, worker, wid):
    assert not records(worker, "gate_finished")
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert (failure["exception"], failure["error"]) == ("pyresque.DirtyExit", "Job exited abnormally")
    assert failure["payload"]["id"] == job_id and failure["worker"] == wid
    assert resque.status(job_id).status == 3 and 0 < r.ttl(f"resque:job:{job_id}:status") <= 86400
    php_failure = json.loads(_vector_after("s_signal_term")["resque:failed"]["value"][0])
    assert php_failure["error"] == failure["error"] and list(php_failure) == list(failure)
    assert r.get("resque:stat:failed") == b"1" and r.get("resque:stat:processed") == b"1"


def _stop_now(redis_url, r, tmp_path, signum):
    resque, job_id, worker, wid, ids = _start_gated_job(redis_url, r, tmp_path)
    try:
        sent = time.monotonic()
        worker.signal(signum)
        if support.mode_is_inline():  # no child to kill: the job finishes, then the worker exits
            worker.open_gate("job")
            assert worker.wait(5) == 0
            _assert_finished_job(r, resque, job_id, worker)
        else:  # the child is killed (fork modes) or the job recorded as killed (threads)
            assert worker.wait(5) == 0
            assert time.monotonic() - sent < 3
            _assert_killed_job(r, resque, job_id, worker, wid)
        assert _unregistered(r, ids)
    finally:
        worker.stop()
    return worker.log()


def test_term_kills_the_child_records_dirty_exit_and_exits(redis_url, r, tmp_path):
    _stop_now(redis_url, r, tmp_path, signal.SIGTERM)


def test_int_behaves_like_term(redis_url, r, tmp_path):
    log = _stop_now(redis_url, r, tmp_path, signal.SIGINT)
    assert "QUIT (Ctrl-" in log and "finishes it first" in log  # Ctrl-C says how not to kill the job


def test_usr1_kills_the_child_and_keeps_working(redis_url, r, tmp_path):
    resque, job_id, worker, wid, ids = _start_gated_job(redis_url, r, tmp_path)
    try:
        worker.signal(signal.SIGUSR1)
        if support.mode_is_inline():  # no child to kill: the job finishes
            worker.open_gate("job")
            wait_for(lambda: resque.status(job_id).status == 4, what=f"job complete\n{worker.log()}")
            _assert_finished_job(r, resque, job_id, worker)
        else:
            wait_for(lambda: resque.status(job_id).status == 3, what=f"failed status\n{worker.log()}")
            _assert_killed_job(r, resque, job_id, worker, wid)
        assert worker.process.poll() is None and all(r.sismember("resque:workers", each) for each in ids)
        next_id = resque.enqueue("default", "PHP_Job", {})
        wait_for(lambda: resque.status(next_id).status == 4, what="next job")
    finally:
        worker.stop()


def test_term_child_terms_the_job_first(redis_url, r, tmp_path):
    resque, job_id, worker, wid, ids = _start_gated_job(redis_url, r, tmp_path, TERM_CHILD="1", RESQUE_TERM_TIMEOUT="2")
    try:
        worker.signal(signal.SIGTERM)
        if support.mode_is_inline():  # no child to TERM: the job finishes
            worker.open_gate("job")
            assert worker.wait(6) == 0
            _assert_finished_job(r, resque, job_id, worker)
        else:
            assert worker.wait(6) == 0
            [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
            # JobTerminated raised inside the job: by its SIGTERM, or in its thread (threads)
            assert (failure["exception"], failure["error"]) == ("pyresque.JobTerminated", "SIGTERM")
            assert failure["worker"] == wid and resque.status(job_id).status == 3
        assert _unregistered(r, ids)
    finally:
        worker.stop()


@pytest.mark.no_counterpart_in(
    "inline", reason="inline never TERMs nor kills a job (TERM lets it finish: test_term_child_terms_the_job_first), "
    "and a job that ignores SIGTERM there ignores it for the worker itself, the same process")
def test_term_child_kills_a_job_that_ignores_term(redis_url, r, tmp_path):
    """Threads: a job blocked in C ignores its interruption; the main thread records it instead."""
    resque = Resque(redis_url)
    stubborn, started = ("SleepJob", "sleep_started") if support.mode_is_threaded() else ("IgnoreTermJob", "ignore_term_started")
    job_id = resque.enqueue("default", stubborn, 10)
    worker = WorkerProcess(redis_url, tmp_path, TERM_CHILD="1", RESQUE_TERM_TIMEOUT="1").start()
    try:
        ids = worker.worker_ids(r)
        wait_for(lambda: records(worker, started), what="job start")
        wid = worker.working_on(r, job_id)
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(6) == 0
        assert 0.9 < time.monotonic() - sent < 4
        [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
        assert failure["error"] == "Job exited abnormally" and resque.status(job_id).status == 3
        assert failure["worker"] == wid and _unregistered(r, ids)
    finally:
        worker.stop()


def test_graceful_term_behaves_like_quit(redis_url, r, tmp_path):
    resque, job_id, worker, wid, ids = _start_gated_job(redis_url, r, tmp_path, GRACEFUL_TERM="1")
    try:
        worker.signal(signal.SIGTERM)
        _let_finish_once_acted_on(worker, GRACEFUL)
        assert worker.wait() == 0
        _assert_finished_job(r, resque, job_id, worker)
        assert _unregistered(r, ids)
    finally:
        worker.stop()


def test_second_term_during_graceful_shutdown_exits_at_once(redis_url, r, tmp_path):
    resque, job_id, worker, wid, ids = _start_gated_job(redis_url, r, tmp_path, GRACEFUL_TERM="1")
    try:
        worker.signal(signal.SIGTERM)
        if not support.mode_is_inline():  # inline acts on both TERMs once its job returns
            wait_for(lambda: GRACEFUL in worker.log(), what=f"graceful shutdown\n{worker.log()}")
        assert worker.process.poll() is None
        worker.signal(signal.SIGTERM)
        if support.mode_is_inline():  # no child to kill: the job still finishes
            worker.open_gate("job")
            assert worker.wait(4) == 0
            _assert_finished_job(r, resque, job_id, worker)
        else:
            assert worker.wait(4) == 0
            _assert_killed_job(r, resque, job_id, worker, wid)
        assert _unregistered(r, ids)
    finally:
        worker.stop()


def _title(pid: int) -> str:
    return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()


def test_usr2_pauses_after_the_job_and_cont_resumes(redis_url, r, tmp_path):
    resque, job_id, worker, wid, ids = _start_gated_job(redis_url, r, tmp_path)
    try:
        worker.signal(signal.SIGUSR2)
        # before a second job exists, the pause has reached every reserving loop: a threaded worker
        # titles itself Paused once its slots are told; inline acts on it once its job returns
        if support.mode_is_threaded():
            wait_for(lambda: _title(worker.pid).endswith(": Paused"), what=f"pause\n{worker.log()}")
        elif support.mode_forks():
            wait_for(lambda: "pausing" in worker.log(), what=f"pause\n{worker.log()}")
        second = resque.enqueue("default", "PHP_Job", {})
        worker.open_gate("job")
        wait_for(lambda: resque.status(job_id).status == 4, what="first job finishes while pausing")
        time.sleep(0.6)
        assert resque.status(second).status == 1 and r.llen("resque:queue:default") == 1
        assert _title(worker.pid).endswith(": Paused")
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
        log = worker.log()
        assert "paused: pause-all-workers is set" in log and "resuming: pause-all-workers was cleared" in log
