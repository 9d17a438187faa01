"""Async mode (--async N): one process, one event loop, a registered worker id per job in flight.

The shared behaviour suites run in this mode too (``async-4`` in conftest's WORKER_MODES); these
are the behaviours only this mode has: many ``async def`` jobs at once on one loop, cancellation
as the way a job is told, the reserve bounded by free slots, the memory ceiling, the lag probe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from pyresque import Resque
from pyresque.wire import payload as wire
from support import JOBS, TESTS, WorkerProcess, records, wait_for

ASYNC_JOBS = str(TESTS / "async_jobs.py")


def _async(redis_url, tmp_path, slots=4, **env):
    return WorkerProcess(redis_url, tmp_path, PYRESQUE_ASYNC=str(slots), APP_INCLUDE=f"{JOBS},{ASYNC_JOBS}", **env)


def _failures(r):
    return [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]


def _slot_ids(r, pid):
    return sorted((m.decode() for m in r.smembers("resque:workers") if f":{pid}:" in m.decode()),
                  key=lambda i: wire.parse_worker_id(i).slot)


def test_async_jobs_run_at_once_on_one_loop_each_under_its_own_worker_id(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "AsyncGateJob", f"g{n}") for n in range(12)]
    with _async(redis_url, tmp_path, slots=12) as worker:
        wait_for(lambda: len(records(worker, "agate_started")) == 12, what=f"12 jobs in flight\n{worker.log()}")
        started = records(worker, "agate_started")
        assert {(s["pid"], s["thread"], s["loop"]) for s in started} == {
            (worker.pid, started[0]["thread"], started[0]["loop"])}  # one process, one thread, one loop
        slots = _slot_ids(r, worker.pid)
        assert [wire.parse_worker_id(s).slot for s in slots] == list(range(1, 13))
        assert {json.loads(r.get(f"resque:worker:{s}"))["payload"]["id"] for s in slots} == set(ids)
        assert all(resque.status(i).status == wire.RUNNING for i in ids)
        for n in range(12):
            worker.open_gate(f"g{n}")
        wait_for(lambda: all(resque.status(i).status == wire.COMPLETE for i in ids), what="jobs complete")
        assert r.get("resque:stat:processed") == b"12"
        worker.signal(signal.SIGQUIT)
        assert worker.wait() == 0
    assert not _slot_ids(r, worker.pid)


def test_the_reserve_never_takes_more_jobs_than_free_slots(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    for n in range(10):
        resque.enqueue("default", "AsyncGateJob", f"g{n}")
    with _async(redis_url, tmp_path, slots=3) as worker:
        wait_for(lambda: len(records(worker, "agate_started")) == 3, what=f"3 jobs in flight\n{worker.log()}")
        assert r.llen("resque:queue:default") == 7
        assert sum(1 for s in _slot_ids(r, worker.pid) if r.exists(f"resque:worker:{s}")) == 3
        first = records(worker, "agate_started")[0]["name"]
        worker.open_gate(first)
        wait_for(lambda: len(records(worker, "agate_started")) == 4, what="the freed slot's next job")
        assert r.llen("resque:queue:default") == 6


def test_quit_lets_every_job_in_flight_finish(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "AsyncGateJob", f"g{n}") for n in range(4)]
    with _async(redis_url, tmp_path, slots=4) as worker:
        wait_for(lambda: len(records(worker, "agate_started")) == 4, what="4 jobs in flight")
        worker.signal(signal.SIGQUIT)
        for n in range(4):
            worker.open_gate(f"g{n}")
        assert worker.wait() == 0
    assert [resque.status(i).status for i in ids] == [wire.COMPLETE] * 4 and not _failures(r)
    assert not records(worker, "agate_cancelled")


def test_term_cancels_every_async_job_and_records_it_killed(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "AsyncGateJob", f"g{n}") for n in range(3)]
    with _async(redis_url, tmp_path, slots=4) as worker:
        wait_for(lambda: len(records(worker, "agate_started")) == 3, what="3 jobs in flight")
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    failures = _failures(r)
    assert sorted(f["payload"]["id"] for f in failures) == sorted(ids)
    assert {(f["exception"], f["error"]) for f in failures} == {("pyresque.DirtyExit", "Job exited abnormally")}
    assert len(records(worker, "agate_cancelled")) == 3  # each job was told (CancelledError)
    assert [resque.status(i).status for i in ids] == [wire.FAILED] * 3


def test_term_child_tells_each_job_and_records_job_terminated(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "AsyncGateJob", f"g{n}") for n in range(2)]
    with _async(redis_url, tmp_path, slots=2, TERM_CHILD="1", RESQUE_TERM_TIMEOUT="3") as worker:
        wait_for(lambda: len(records(worker, "agate_started")) == 2, what="2 jobs in flight")
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    assert {f["exception"] for f in _failures(r)} == {"pyresque.JobTerminated"}
    assert len(records(worker, "agate_cancelled")) == 2 and len(_failures(r)) == 2
    assert all(resque.status(i).status == wire.FAILED for i in ids)


def test_a_time_limit_cancels_the_task_and_records_job_timeout(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "AsyncGateJob", "never")
    with _async(redis_url, tmp_path, slots=2, PYRESQUE_JOB_TIMEOUT="0.5") as worker:
        wait_for(lambda: resque.status(job_id).status == wire.FAILED, what=f"the timeout\n{worker.log()}")
        [failure] = _failures(r)
        assert failure["exception"] == "pyresque.JobTimeout" and "0.5s" in failure["error"]
        assert records(worker, "agate_cancelled")
        after = resque.enqueue("default", "AsyncRubyJob", 21)  # the slot is free again
        wait_for(lambda: resque.status(after).status == wire.COMPLETE, what="the next job")


def test_sigkill_leaves_every_job_in_flight_to_the_next_prune(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "AsyncGateJob", f"g{n}") for n in range(5)]
    worker = _async(redis_url, tmp_path, slots=8).start()
    wait_for(lambda: len(records(worker, "agate_started")) == 5, what="5 jobs in flight")
    worker.process.kill()
    worker.process.wait()
    worker.stop()
    with _async(redis_url, tmp_path, slots=1) as pruner:  # its start-up prune finds the dead slots
        wait_for(lambda: len(_failures(r)) == 5, what=f"the prune\n{pruner.log()}")
    assert sorted(f["payload"]["id"] for f in _failures(r)) == sorted(ids)
    assert {f["exception"] for f in _failures(r)} == {"pyresque.DirtyExit"}


def test_sync_jobs_run_in_the_thread_pool_beside_async_ones(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    naps = [resque.enqueue("default", "NapJob", 0.5) for _ in range(2)]
    gate = resque.enqueue("default", "AsyncGateJob", "g")
    with _async(redis_url, tmp_path, slots=4, PYRESQUE_ASYNC_THREADS="2") as worker:
        wait_for(lambda: len(records(worker, "nap_started")) == 2 and records(worker, "agate_started"),
                 what="both sync jobs and the async one in flight")
        worker.open_gate("g")
        wait_for(lambda: all(resque.status(i).status == wire.COMPLETE for i in [*naps, gate]), what="all done")
        assert "sync_threads=2" in worker.log()


def test_the_memory_ceiling_retires_the_worker_before_it_takes_a_job(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "AsyncRubyJob", 1)
    with _async(redis_url, tmp_path, slots=2, PYRESQUE_ASYNC_MAX_MEMORY="1") as worker:
        assert worker.wait() == 0
    assert "memory ceiling passed" in worker.log()
    assert resque.status(job_id).status == wire.WAITING and r.llen("resque:queue:default") == 1
    assert not _slot_ids(r, worker.pid)


def test_a_lagging_loop_is_logged(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "AsyncLoopBlockerJob", 0.6)
    with _async(redis_url, tmp_path, slots=2, PYRESQUE_ASYNC_LAG_WARN="0.2") as worker:
        wait_for(lambda: resque.status(job_id).status == wire.COMPLETE, what="the job")
        wait_for(lambda: "event loop lagging" in worker.log(), what=f"the lag line\n{worker.log()}")


def test_async_cannot_be_combined_with_threads_or_fork_every(redis_url):
    env = {**os.environ, "REDIS_URL": redis_url, "QUEUE": "default"}
    for extra in (["--threads", "4"], ["--fork-every", "3"]):
        done = subprocess.run([sys.executable, "-m", "pyresque", "worker", "--async", "10", *extra], env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done.stderr
        assert "--async runs jobs on one event loop" in done.stderr and extra[0] in done.stderr


def test_an_async_worker_survives_a_redis_restart_with_a_job_in_flight(redis_server, redis_url, r, tmp_path):
    resque = Resque(redis_url)
    resque.enqueue("default", "AsyncGateJob", "g")
    with _async(redis_url, tmp_path, slots=4) as worker:
        ids = worker.worker_ids(r)
        wait_for(lambda: records(worker, "agate_started"), what="the job in flight")
        redis_server.stop()
        worker.open_gate("g")  # it finishes while Redis is away: its bookkeeping waits
        wait_for(lambda: records(worker, "agate_finished"), what="the job's end")
        redis_server.start()
        job_id = Resque(redis_url).enqueue("default", "AsyncRubyJob", 2)
        wait_for(lambda: resque.status(job_id) and resque.status(job_id).status == wire.COMPLETE, timeout=20,
                 what=f"a job after the restart\n{worker.log()}")
        assert all(r.sismember("resque:workers", wid) for wid in ids), worker.log()  # every slot registered again
        assert worker.process.poll() is None
    log = worker.log()
    assert log.count("redis unavailable") == 1 and "Traceback" not in log
