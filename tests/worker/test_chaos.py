"""Kill chaos: children, forking helpers and workers SIGKILLed at random while jobs run.

No job is lost (every one ends COMPLETE, or FAILED with a failure record), none runs twice, and
no working-on record or registration of a dead worker is left once the survivors have pruned.
"""

from __future__ import annotations

import random
import signal
import time

import psutil
import pytest

from pyresque import Resque
from pyresque.wire import payload as wire
from support import WorkerProcess, records, wait_for

JOBS = 300
CHAOS_SECONDS = 6.0


def _victims(worker: WorkerProcess) -> list[psutil.Process]:
    try:
        return [worker_proc := psutil.Process(worker.pid)] + worker_proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


#: fork mode (the default), and async mode: eight slots' jobs in flight per SIGKILLed process
CHAOS_MODES = {"fork": {}, "async-8": {"PYRESQUE_ASYNC": "8"}}


@pytest.mark.parametrize("mode", sorted(CHAOS_MODES))
def test_random_sigkills_lose_and_duplicate_nothing(redis_url, r, tmp_path, mode):
    env = {"PYRESQUE_HEARTBEAT_INTERVAL": "1", **CHAOS_MODES[mode]}
    rng = random.Random(13)
    resque = Resque(redis_url)
    ids = [resque.enqueue("default", "ChaosJob", n, rng.choice((0, 0.01, 0.05))) for n in range(JOBS)]
    workers = [WorkerProcess(redis_url, tmp_path, **env).start() for _ in range(2)]
    kills = 0
    try:
        deadline = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.05, 0.25))
            index = rng.randrange(len(workers))
            victims = _victims(workers[index])
            if victims:
                victim = rng.choice(victims)  # the worker itself, its helper, or a job child
                try:
                    victim.send_signal(signal.SIGKILL)
                    kills += 1
                except psutil.NoSuchProcess:
                    pass
            if workers[index].process.poll() is not None:
                workers[index].stop()
                workers[index] = WorkerProcess(redis_url, tmp_path, **env).start()
        wait_for(lambda: all(resque.status(j).status in wire.FINAL_STATUSES for j in ids)
                 and r.llen("resque:queue:default") == 0, timeout=60,
                 what=f"every job to end\n{workers[0].log()[-3000:]}")
        # a worker SIGKILLed idle (an async worker drains 300 jobs in a second) has no job to
        # fail: the survivors' next prune (every heartbeat) unregisters it; wait for that
        live = {str(w.pid) for w in workers if w.process.poll() is None}
        if live:
            wait_for(lambda: all(m.decode().split(":")[1] in live for m in r.smembers("resque:workers")),
                     timeout=15, what="the survivors' prune of the killed workers")
    finally:
        for worker in workers:
            worker.stop()
    assert kills > 10
    done = [rec["n"] for rec in records(workers[0], "chaos_done")]
    assert len(done) == len(set(done)), "a job ran to completion twice"
    failed = {wire.decode_failure(raw)["payload"]["id"] for raw in r.lrange("resque:failed", 0, -1)}
    statuses = {j: resque.status(j).status for j in ids}
    assert {j for j, s in statuses.items() if s == wire.FAILED} == failed  # each failure recorded, once
    assert r.llen("resque:failed") == len(failed)
    assert set(statuses.values()) <= {wire.COMPLETE, wire.FAILED}
    assert not [k for k in r.keys("resque:worker:*") if not k.endswith(b":started")]  # no record left
    assert r.scard("resque:workers") == 0
