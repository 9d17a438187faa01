"""``async def perform`` runs to completion in every execution mode, with the usual outcomes."""

from __future__ import annotations

import json

import pytest

from pyresque import Resque
from pyresque.wire import payload as wire
from support import JOBS, TESTS, WorkerProcess, wait_for

MODES = {"fork": {}, "inline": {"PYRESQUE_INLINE": "1"}, "threads": {"PYRESQUE_THREADS": "2"},
         "async": {"PYRESQUE_ASYNC": "2"}}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_async_perform_is_awaited_and_its_result_recorded(redis_url, r, tmp_path, mode):
    resque = Resque(redis_url)
    ruby = resque.enqueue("default", "AsyncRubyJob", 21)
    php = resque.enqueue("default", "AsyncPhpJob", {"a": 1})
    failing = resque.enqueue("default", "AsyncFailJob")
    include = f"{JOBS},{TESTS / 'async_jobs.py'}"
    with WorkerProcess(redis_url, tmp_path, APP_INCLUDE=include, **MODES[mode]) as worker:
        worker.worker_id(r)
        wait_for(lambda: all(resque.status(j) and resque.status(j).status in wire.FINAL_STATUSES
                             for j in (ruby, php, failing)), what="three async jobs")
    result = resque.status(ruby).result
    assert result["doubled"] == 42 and (result["pid"] == worker.pid) == (mode != "fork")
    assert resque.status(php).result == {"got": {"a": 1}}
    assert resque.status(failing).status == wire.FAILED
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert (failure["exception"], failure["error"]) == ("ValueError", "async boom")
