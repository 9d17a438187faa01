"""Heartbeats, pruning of dead workers (theirs and ours), SIGKILL recovery, Redis restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

from pyresque import Resque
from pyresque.wire import payload as wire
from support import ROOT, WorkerProcess, records, wait_for

HOST = socket.gethostname()


def _failures(r):
    return [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]


def test_sigkilled_worker_job_is_failed_by_the_next_start(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "SleepJob", 2)
    first = WorkerProcess(redis_url, tmp_path).start()
    wid = first.worker_id(r)
    wait_for(lambda: records(first, "sleep_started"), what="job start")
    first.signal(signal.SIGKILL)
    first.wait()
    assert r.exists(f"resque:worker:{wid}")  # the record survives its worker: nothing is lost
    with WorkerProcess(redis_url, tmp_path) as second:
        second.worker_id(r)
        wait_for(lambda: not r.sismember("resque:workers", wid), what="dead worker pruned")
    [failure] = _failures(r)
    assert failure["payload"]["id"] == job_id and failure["worker"] == wid
    assert (failure["exception"], failure["error"]) == ("pyresque.DirtyExit", "Job still being processed")
    assert resque.status(job_id).status == 3
    for key in (f"resque:worker:{wid}", f"resque:worker:{wid}:started"):
        assert not r.exists(key)
    assert not r.hexists("resque:workers:heartbeat", wid)


def test_sigkilled_worker_job_is_requeued_when_its_class_opted_in(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "IdempotentSleepJob", 30)
    first = WorkerProcess(redis_url, tmp_path).start()
    wid = first.worker_id(r)
    wait_for(lambda: records(first, "idem_started"), what="job start")
    os.killpg(records(first, "idem_started")[0]["pid"], signal.SIGKILL)  # the orphan too, for a clean test
    first.signal(signal.SIGKILL)
    first.wait()
    time.sleep(0.1)
    # the next worker prunes at start-up and, the class being idempotent, runs the job again
    with WorkerProcess(redis_url, tmp_path, QUEUE="other") as second:
        second.worker_id(r)
        wait_for(lambda: not r.sismember("resque:workers", wid), what="dead worker pruned")
    assert _failures(r) == []
    [item] = r.lrange("resque:queue:default", 0, -1)
    assert json.loads(item)["id"] == job_id and resque.status(job_id).status == 1


def test_a_forged_dead_worker_record_makes_no_worker_import_the_module_it_names(redis_url, r, tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "forged_app.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "class Job:\n    requeue_on_dirty_exit = True\n    @staticmethod\n    def perform():\n        pass\n")
    dead = "otherhost:123:default"
    payload = {"class": "forged_app.Job", "args": [], "id": "forged"}
    r.sadd("resque:workers", dead)
    r.hset("resque:workers:heartbeat", dead, wire.iso_offset(time.time() - 3600))
    r.set(f"resque:worker:{dead}", wire.encode_working_on("default", wire.iso_z(), json.dumps(payload)))
    with WorkerProcess(redis_url, tmp_path, QUEUE="other", ALLOWED_MODULES="forged_app",
                       PYTHONPATH=f"{tmp_path}:{ROOT}") as worker:
        worker.worker_id(r)
        wait_for(lambda: not r.sismember("resque:workers", dead), what=f"the forged worker pruned\n{worker.log()}")
    assert not marker.exists()  # before: every starting worker's prune imported forged_app
    [failure] = _failures(r)  # not requeued: a class not loaded cannot have asked for it
    assert failure["payload"] == payload and failure["exception"] == "pyresque.DirtyExit"
    assert r.llen("resque:queue:default") == 0


def test_expired_heartbeats_are_pruned_on_any_host_and_silent_foreigners_left(redis_url, r, tmp_path):
    stale = wire.iso_offset(time.time() - 3600)
    payload = {"class": "SleepJob", "args": [3]}
    r.sadd("resque:workers", "otherhost:123:default", "otherhost:124:default", f"{HOST}:999999:default")
    r.hset("resque:workers:heartbeat", mapping={"otherhost:123:default": stale, "ghost:1:x": stale})
    r.set("resque:worker:otherhost:123:default", wire.encode_working_on("default", wire.iso_z(), json.dumps(payload)))
    r.set(f"resque:worker:{HOST}:999999:default",
          wire.encode_working_on("default", wire.iso_z(), json.dumps({"class": "PHP_Job", "args": [{}]})))
    with WorkerProcess(redis_url, tmp_path) as worker:
        wid = worker.worker_id(r)
        assert sorted(m.decode() for m in r.smembers("resque:workers")) == sorted(["otherhost:124:default", wid])
        assert list(r.hgetall("resque:workers:heartbeat")) == [wid.encode()]
    by_worker = {f["worker"]: f for f in _failures(r)}
    assert by_worker["otherhost:123:default"]["error"] == (
        "Worker otherhost:123:default did not gracefully exit while processing SleepJob")
    assert by_worker[f"{HOST}:999999:default"]["error"] == "Job still being processed"
    assert by_worker["otherhost:123:default"]["payload"] == payload


def test_live_neighbours_are_not_pruned(redis_url, r, tmp_path):
    with WorkerProcess(redis_url, tmp_path) as first:
        first_id = first.worker_id(r)
        with WorkerProcess(redis_url, tmp_path) as second:
            second.worker_id(r)
            time.sleep(0.3)
            assert r.sismember("resque:workers", first_id)


def test_heartbeat_is_refreshed_on_its_timer(redis_url, r, tmp_path):
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_HEARTBEAT_INTERVAL="0.5") as worker:
        wid = worker.worker_id(r)
        first = r.hget("resque:workers:heartbeat", wid)
        time.sleep(1.6)
        later = r.hget("resque:workers:heartbeat", wid)
        assert wire.parse_time(later.decode()) > wire.parse_time(first.decode())


def test_worker_survives_a_redis_restart(redis_server, redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path) as worker:
        wid = worker.worker_id(r)
        redis_server.stop()
        time.sleep(3)
        redis_server.start()
        job_id = Resque(redis_url).enqueue("default", "PHP_Job", {"after": "restart"})
        wait_for(lambda: resque.status(job_id) and resque.status(job_id).status == 4, timeout=20,
                 what=f"job after restart\n{worker.log()}")
        assert r.sismember("resque:workers", wid)  # re-registered on the fresh server
        assert worker.process.poll() is None
    log = worker.log()
    assert log.count("redis unavailable") == 1 and "Traceback" not in log
