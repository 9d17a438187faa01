"""A worker's identity in Redis: it stays registered, and its id names one live process."""

from __future__ import annotations

import time

import pytest

from pyresque import Resque
from pyresque.wire import payload as wire
from support import WorkerProcess, wait_for


@pytest.mark.usefixtures("worker_mode")
def test_a_worker_whose_registration_vanished_registers_again(redis_url, r, tmp_path):
    """A Redis restarted without persistence forgets every worker: resque-web, the CLI and the
    prune must see this one again, or its jobs would be failed only by a heartbeat prune."""
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_HEARTBEAT_INTERVAL="0.2") as worker:
        ids = worker.worker_ids(r)
        r.flushall()
        wait_for(lambda: all(r.sismember("resque:workers", wid) and r.exists(f"resque:worker:{wid}:started")
                             for wid in ids), what=f"re-registration\n{worker.log()}")
        job = resque.enqueue("default", "PHP_Job", {})
        wait_for(lambda: resque.status(job).status == wire.COMPLETE, what="a job after it")
    assert "registration vanished" in worker.log()


def test_the_prune_follows_each_workers_own_heartbeat(redis_url, r, tmp_path):
    """A worker that prunes after 5 s must not take slower beaters for dead: a pyresque worker
    that declared 60 s, or a Ruby worker (no declaration: Ruby's 300 s), 20 s after a beat."""
    now = float(r.time()[0])
    beat = wire.iso_offset(now - 20)
    for wid, horizon in (("other-host:11:default", "60"), ("other-host:12:default", None),
                         ("other-host:13:default", "10"), ("other-host:14:default", "nan")):
        r.sadd("resque:workers", wid)
        r.hset("resque:workers:heartbeat", wid, beat)
        if horizon is not None:
            r.hset("resque:pyresque_prune_horizons", wid, horizon)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_PRUNE_INTERVAL="5", PYRESQUE_HEARTBEAT_INTERVAL="1") as worker:
        worker.worker_id(r)
        wait_for(lambda: not r.sismember("resque:workers", "other-host:13:default"), what=f"the prune\n{worker.log()}")
    assert r.sismember("resque:workers", "other-host:11:default")
    assert r.sismember("resque:workers", "other-host:12:default")
    assert r.sismember("resque:workers", "other-host:14:default")  # unreadable: Ruby's 300 s
    assert not r.hexists("resque:pyresque_prune_horizons", "other-host:13:default")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("env", [{}, {"PYRESQUE_PREFORK": "0"}], ids=["helper", "no-prefork"])
def test_a_killed_workers_job_child_ends_before_its_job_is_requeued(redis_url, r, tmp_path, env):
    """Its child kept running unrecorded: a requeue_on_dirty_exit job ran twice at once, and a
    plain job was marked FAILED and then completed."""
    import signal

    from support import records

    resque = Resque(redis_url)
    resque.enqueue("default", "IdempotentSleepJob", 30)
    plain = resque.enqueue("other", "SleepJob", 2)
    first = WorkerProcess(redis_url, tmp_path, queue="default", **env).start()
    second = WorkerProcess(redis_url, tmp_path, queue="other", **env).start()
    try:
        [started] = wait_for(lambda: records(first, "idem_started"), what=f"the first run\n{first.log()}")
        wait_for(lambda: records(second, "sleep_started"), what=f"the plain job\n{second.log()}")
        first.signal(signal.SIGKILL)
        second.signal(signal.SIGKILL)
        first.wait()
        second.wait()
        with WorkerProcess(redis_url, tmp_path, queue="default") as third:
            runs = wait_for(lambda: len(records(third, "idem_started")) == 2 and records(third, "idem_started"),
                            what=f"the requeued run\n{third.log()}")
            assert not _alive(started["pid"]), "the first run was still running when the job ran again"
            assert runs[1]["pid"] != started["pid"]
        assert resque.status(plain).status == wire.FAILED
        time.sleep(2.5)  # the plain job sleeps 2 s: a child that outlived its worker would finish it
        assert records(second, "sleep_finished") == [] and resque.status(plain).status == wire.FAILED
    finally:
        first.stop()
        second.stop()


def _worker(resque, hostname="container"):
    from pyresque.worker.options import WorkerOptions
    from pyresque.worker.worker import Worker

    return Worker(resque, ["default"], WorkerOptions(fork=False, interval=0), hostname=hostname)


def test_an_id_a_live_worker_holds_is_not_reused(resque, r):
    """Two containers with one hostname, both pid 1, overwrote each other's working-on record."""
    worker = _worker(resque)
    held = worker.id
    r.sadd("resque:workers", held)
    r.set(f"resque:worker:{held}:started", "2026-01-01 00:00:00 +0000")
    r.hset("resque:workers:heartbeat", held, wire.iso_offset(float(r.time()[0])))
    worker.register()
    assert worker.id != held and worker.id.startswith("container+") and worker.id.endswith(held[len("container"):])
    assert r.sismember("resque:workers", worker.id) and r.sismember("resque:workers", held)
    assert r.get(f"resque:worker:{held}:started") == b"2026-01-01 00:00:00 +0000"  # the other's keys stay
    assert wire.parse_worker_id(worker.id).host != "container"  # php/Ruby: another host, heartbeat rule
    worker.register()  # its own registration again (after a Redis restart, say): same id
    assert r.scard("resque:workers") == 2


def test_an_id_whose_holder_stopped_beating_is_taken_over(resque, r):
    worker = _worker(resque)
    r.sadd("resque:workers", worker.id)
    r.set(f"resque:worker:{worker.id}:started", "2026-01-01 00:00:00 +0000")
    r.hset("resque:workers:heartbeat", worker.id, "2020-01-01T00:00:00+00:00")
    held = worker.id
    worker.register()
    assert worker.id == held and r.get(f"resque:worker:{held}:started") != b"2026-01-01 00:00:00 +0000"


def test_a_prune_lock_held_by_a_dead_worker_of_this_host_is_taken_over(resque, r):
    """A worker SIGKILLed while pruning held Ruby's lock for its 60 s: no prune at all meanwhile."""
    from pyresque.worker.heartbeat import Pruner

    r.set("resque:pruning_dead_workers_in_progress", "thishost:999999:default", ex=60)
    r.sadd("resque:workers", "thishost:999998:default")
    dead = {999998, 999999}
    pruner = Pruner(resque.store, "thishost:1:default", "thishost", is_alive=lambda pid: pid not in dead,
                    helper_of=lambda pid: None)
    assert pruner.prune() == ["thishost:999998:default"]
    r.set("resque:pruning_dead_workers_in_progress", "thishost:2:default", ex=60)  # a live holder: wait
    r.sadd("resque:workers", "thishost:999998:default")
    assert pruner.prune() == []
