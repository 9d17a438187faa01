"""Threaded mode (--threads N): one process, one registered worker id per slot, real signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

from pyresque import Resque
from pyresque.process.liveness import process_is_resque
from pyresque.wire import payload as wire
from pyresque.worker.heartbeat import Pruner
from pyresque.worker.options import WorkerOptions
from pyresque.worker.threaded import ThreadedWorker
from support import JOBS, WorkerProcess, records, wait_for

HOST = socket.gethostname()


def _threaded(redis_url, tmp_path, threads=4, **env):
    return WorkerProcess(redis_url, tmp_path, PYRESQUE_THREADS=str(threads), **env)


def _slot_ids(r, pid):
    ids = [m.decode() for m in r.smembers("resque:workers")]
    return sorted((i for i in ids if f":{pid}:" in i), key=lambda i: wire.parse_worker_id(i).slot)


def _failures(r):
    return [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]


def _gone(r, wid):
    return (not r.sismember("resque:workers", wid) and not r.exists(f"resque:worker:{wid}")
            and not r.exists(f"resque:worker:{wid}:started") and not r.hexists("resque:workers:heartbeat", wid))


def test_slots_run_jobs_at_once_each_visible_under_its_own_worker_id(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "NapJob", 1.5) for _ in range(4)]
    with _threaded(redis_url, tmp_path, threads=4) as worker:
        wait_for(lambda: len(records(worker, "nap_started")) == 4, what=f"4 jobs in flight\n{worker.log()}")
        assert not records(worker, "nap_finished")  # all four started before any ended: concurrency
        slots = _slot_ids(r, worker.pid)
        assert [wire.parse_worker_id(s) for s in slots] == [
            wire.WorkerId(HOST, worker.pid, ("default",), n) for n in (1, 2, 3, 4)]
        running = {json.loads(r.get(f"resque:worker:{s}"))["payload"]["id"] for s in slots}
        assert running == set(ids)  # each slot's working-on record holds its own job
        for s in slots:
            assert r.get(f"resque:worker:{s}:started") and r.hget("resque:workers:heartbeat", s)
        assert {p["pid"] for p in records(worker, "nap_started")} == {worker.pid}  # no fork
        wait_for(lambda: all(resque.status(i).status == 4 for i in ids), what="jobs complete")
        assert [resque.status(i).result for i in ids] == ["napped"] * 4
        assert r.get("resque:stat:processed") == b"4"
        worker.signal(signal.SIGQUIT)
        assert worker.wait() == 0
    assert all(_gone(r, s) for s in slots)
    assert not any(k.startswith(b"resque:stat:processed:") for k in r.keys())


def test_burst_mode_drains_and_exits(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "NoopJob") for _ in range(30)]
    worker = _threaded(redis_url, tmp_path, threads=5, INTERVAL="0").start()
    assert worker.wait() == 0
    assert all(resque.status(i).status == 4 for i in ids)
    assert r.get("resque:stat:processed") == b"30" and r.scard("resque:workers") == 0


def test_a_worker_whose_slots_all_died_exits_1_saying_why_with_the_jobs_still_queued(redis_url, r, tmp_path):
    # systemd's Restart=on-failure (and the pool master) restart only a worker that exits non-zero
    crash = tmp_path / "crash_slots.py"
    crash.write_text("from pyresque.worker.threaded import Slot\n\n\n"
                     "def _reserve(self):\n    raise RuntimeError('planted: the slot trips over its reserve')\n\n\n"
                     "Slot._reserve = _reserve\n")
    resque = Resque(redis_url)
    for _ in range(3):
        resque.enqueue("default", "NoopJob")
    worker = _threaded(redis_url, tmp_path, threads=2, APP_INCLUDE=f"{JOBS},{crash}").start()
    assert worker.wait() == 1, worker.log()  # before: 0
    log = worker.log()
    assert log.count("slot stopped by an internal error") == 2 and "planted: the slot trips" in log
    assert "every slot has stopped, not told to: exiting 1" in log
    assert r.llen("resque:queue:default") == 3 and r.scard("resque:workers") == 0


def test_the_pool_serves_every_slot_and_the_main_thread_at_once(redis_url):
    # redis-py caps a pool at 100 connections; with BLOCKING every slot holds one in BLPOP.
    resque = Resque(redis_url)
    ThreadedWorker(resque, ["default"], WorkerOptions(threads=150, blocking=True))
    pool = resque.redis.connection_pool
    held = [pool.get_connection() for _ in range(151)]
    for connection in held:
        pool.release(connection)


def test_quit_lets_every_slot_finish_its_job(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "SleepJob", 1) for _ in range(2)]
    with _threaded(redis_url, tmp_path, threads=2) as worker:
        wait_for(lambda: len(records(worker, "sleep_started")) == 2, what=f"jobs started\n{worker.log()}")
        worker.signal(signal.SIGQUIT)
        assert worker.wait() == 0
        assert len(records(worker, "sleep_finished")) == 2
    assert [resque.status(i).status for i in ids] == [4, 4] and r.llen("resque:failed") == 0


def test_term_records_every_job_in_flight_as_dirty_exit_and_exits(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "SleepJob", 5) for _ in range(2)]
    with _threaded(redis_url, tmp_path, threads=3) as worker:
        wait_for(lambda: len(records(worker, "sleep_started")) == 2, what=f"jobs started\n{worker.log()}")
        slots = _slot_ids(r, worker.pid)
        worker.signal(signal.SIGTERM)
        assert worker.wait(4) == 0
        assert not records(worker, "sleep_finished")
    failures = _failures(r)
    assert sorted(f["payload"]["id"] for f in failures) == sorted(ids)
    assert {(f["exception"], f["error"]) for f in failures} == {("pyresque.DirtyExit", "Job exited abnormally")}
    assert {f["worker"] for f in failures} <= set(slots)
    assert [resque.status(i).status for i in ids] == [3, 3]
    assert all(_gone(r, s) for s in slots)


def test_usr1_interrupts_the_jobs_and_keeps_working(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    first = resque.enqueue("default", "NapJob", 30)
    with _threaded(redis_url, tmp_path, threads=2) as worker:
        wait_for(lambda: records(worker, "nap_started"), what=f"job started\n{worker.log()}")
        worker.signal(signal.SIGUSR1)
        wait_for(lambda: resque.status(first).status == 3, what=f"job interrupted\n{worker.log()}")
        [failure] = _failures(r)
        assert (failure["exception"], failure["error"]) == ("pyresque.DirtyExit", "Job exited abnormally")
        after = resque.enqueue("default", "NoopJob")
        wait_for(lambda: resque.status(after).status == 4, what="the worker keeps working")
        assert worker.process.poll() is None


def test_usr2_pauses_every_slot_and_cont_resumes(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with _threaded(redis_url, tmp_path, threads=3) as worker:
        worker.worker_id(r)
        worker.signal(signal.SIGUSR2)
        wait_for(lambda: "pausing" in worker.log(), what="pause")
        job = resque.enqueue("default", "NoopJob")
        time.sleep(0.5)  # three polls' worth: a slot that still reserved would have taken it
        assert r.llen("resque:queue:default") == 1
        worker.signal(signal.SIGCONT)
        wait_for(lambda: resque.status(job).status == 4, what="job after resume")


def test_time_limit_interrupts_a_python_job_and_records_a_stuck_one(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    napping = resque.enqueue("default", "NapJob", 30)
    stuck = resque.enqueue("default", "SleepJob", 30)  # blocked in C: only the main thread can record it
    with _threaded(redis_url, tmp_path, threads=2, PYRESQUE_JOB_TIMEOUT="0.5", RESQUE_TERM_TIMEOUT="0.5") as worker:
        wait_for(lambda: resque.status(napping).status == 3 and resque.status(stuck).status == 3,
                 timeout=15, what=f"both jobs failed\n{worker.log()}")
        by_id = {f["payload"]["id"]: f for f in _failures(r)}
        for job_id in (napping, stuck):
            assert by_id[job_id]["exception"] == "pyresque.JobTimeout"
            assert by_id[job_id]["error"] == "Job exceeded its time limit of 0.5s and was interrupted"
        after = [resque.enqueue("default", "NoopJob") for _ in range(4)]  # the stuck slot was replaced
        wait_for(lambda: all(resque.status(i).status == 4 for i in after), what="jobs after the timeouts")
        assert len(_slot_ids(r, worker.pid)) == 2


def test_bad_payloads_fail_with_the_reason_and_the_slots_keep_going(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    r.rpush("resque:queue:default", b"not json", b'{"args": []}', b"\xff\xfe")
    good = resque.enqueue("default", "NoopJob")
    with _threaded(redis_url, tmp_path, threads=2) as worker:
        wait_for(lambda: resque.status(good).status == 4 and r.llen("resque:failed") == 3, what=worker.log())
        assert {f["exception"] for f in _failures(r)} == {"pyresque.InvalidPayload"}
        assert worker.process.poll() is None


def test_sigkill_mid_job_every_slot_job_is_failed_by_the_next_prune(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "SleepJob", 30) for _ in range(2)]
    first = _threaded(redis_url, tmp_path, threads=2).start()
    try:
        wait_for(lambda: len(records(first, "sleep_started")) == 2, what=f"jobs started\n{first.log()}")
        slots = _slot_ids(r, first.pid)
        first.signal(signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    with WorkerProcess(redis_url, tmp_path) as second:  # a plain worker: its start-up prune
        second.worker_id(r)
        wait_for(lambda: all(resque.status(i).status == 3 for i in ids), what=second.log())
    failures = _failures(r)
    assert sorted(f["payload"]["id"] for f in failures) == sorted(ids)
    assert {f["worker"] for f in failures} == set(slots)
    assert all(_gone(r, s) for s in slots)


def test_neighbours_pruning_rules_keep_a_live_threaded_worker(redis_url, r, tmp_path):
    with _threaded(redis_url, tmp_path, threads=2) as worker:
        wait_for(lambda: len(_slot_ids(r, worker.pid)) == 2, what=worker.log())
        slots = _slot_ids(r, worker.pid)
        ps = subprocess.run(["ps", "-A", "-o", "pid,command"], capture_output=True, text=True).stdout
        ruby_pids = {line.split()[0] for line in ps.splitlines() if "resque-" in line and line.split()[1:]}
        php_pids = {line.split()[0] for line in ps.splitlines() if "resque" in line}
        for wid in slots:
            host, pid, queues_raw = wid.split(":", 2)  # php: explode(':', $worker, 3); Ruby: split(':')
            assert pid in php_pids and pid in ruby_pids
            # another host to php and Ruby (neither prunes it by pid); resque-web lists no fake queue
            assert host != HOST and host.startswith(f"{HOST}@") and queues_raw == "default"
            assert r.hexists("resque:workers:heartbeat", wid)  # Ruby's heartbeat rule: every slot beats
        assert process_is_resque(worker.pid)
        ours = Pruner(Resque(redis_url).store, f"{HOST}:1:default", HOST)
        assert ours.prune() == []
        assert _slot_ids(r, worker.pid) == slots


def test_threads_cannot_be_combined_with_fork_every(redis_url):
    result = subprocess.run([sys.executable, "-m", "pyresque", "worker", "--threads", "2", "--fork-every", "3"],
                            env={"QUEUE": "default", "REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "cannot be combined with --fork-every" in result.stderr
