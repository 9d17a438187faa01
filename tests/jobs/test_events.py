"""php-resque's worker events, registered from APP_INCLUDE, fire in order and in the right process."""

from __future__ import annotations

import json
import signal
import time

import support
from pyresque import Resque
from support import WorkerProcess, wait_for


def test_worker_events_fire_in_order_in_the_right_process(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ok = resque.enqueue("default", "PHP_Job", {})
    include = str(support.TESTS / "events_include.py")
    with WorkerProcess(redis_url, tmp_path, APP_INCLUDE=include) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(ok).status == 4, what="job")
        bad = resque.enqueue("default", "FailJob", "x")
        wait_for(lambda: resque.status(bad).status == 3, what="failing job")
        worker.signal(signal.SIGUSR2)
        time.sleep(0.3)
        worker.signal(signal.SIGCONT)
        time.sleep(0.3)
        worker.signal(signal.SIGQUIT)
        worker.wait()
    files = sorted(worker.record_dir.glob("event.*.json"), key=lambda p: int(p.name.split(".")[2]))
    seen = [json.loads(p.read_text()) for p in files]
    names = [e["name"] for e in seen]
    assert names[0] == "beforeFirstFork" and names[-1] == "workerExit"
    first_job = names[names.index("beforeFork"):names.index("afterPerform") + 1]
    assert first_job == ["beforeFork", "afterFork", "beforePerform", "afterPerform"]
    assert "onFailure" in names and names.index("beforePause") < names.index("afterPause")
    by_name = {e["name"]: e["pid"] for e in seen}
    for parent_side in ("beforeFirstFork", "beforeFork", "beforePause", "afterPause", "workerExit"):
        assert by_name[parent_side] == worker.pid, parent_side
    for child_side in ("afterFork", "beforePerform", "afterPerform", "onFailure"):
        assert by_name[child_side] != worker.pid, child_side
