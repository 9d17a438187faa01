"""A worker's identity in Redis: it stays registered, and its id names one live process."""

from __future__ import annotations

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
