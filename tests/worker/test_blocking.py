"""BLOCKING mode's reserve: BLPOP, then the working-on record sent without waiting for its reply."""

from __future__ import annotations

import json

import pytest
import redis

import pyresque
from pyresque import Resque
from pyresque.jobs.resolver import JobResolver
from pyresque.store.datastore import _PendingReply
from pyresque.wire import payload as wire
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker
from support import WorkerProcess, wait_for

WID = "vm:1:default"


def _in_use(resque: Resque) -> int:
    return len(resque.redis.connection_pool._in_use_connections)


def test_the_record_is_in_redis_before_its_reply_is_read(resque, r):
    job_id = resque.enqueue("default", "PHP_Job", {"a": 1})
    reservation = resque.store.blocking_reserve(["default"], 1, WID)
    assert reservation is not None and reservation.queue == "default"
    # Another client sees the record and RUNNING while this worker has not read the reply yet.
    expected = wire.expected_working_on("default", reservation.run_at, reservation.item)
    wait_for(lambda: r.get(f"resque:worker:{WID}") == expected.encode(), what="the working-on record")
    status = resque.status(job_id)
    assert status.status == wire.RUNNING and _in_use(resque) == 1
    assert reservation.started() == status.started and reservation.started() == status.started
    assert _in_use(resque) == 0  # the reply is read once and the connection goes back to the pool


def test_an_empty_wait_returns_none_and_frees_its_connection(resque):
    assert resque.store.blocking_reserve(["default", "other"], 0.05, WID) is None
    assert _in_use(resque) == 0


def test_an_abandoned_reservation_frees_its_connection(resque):
    resque.enqueue("default", "PHP_Job", {})
    reservation = resque.store.blocking_reserve(["default"], 1, WID)
    assert reservation is not None and _in_use(resque) == 1
    reservation.abandon()
    assert _in_use(resque) == 0


ran: list[object] = []


@pyresque.register("CountingJob")
class CountingJob:
    @staticmethod
    def perform(n):
        ran.append(n)


def test_a_lost_record_reply_after_the_job_ran_neither_reruns_nor_loses_it(resque, r, monkeypatch):
    """The reply comes after the job started; losing it must not run the job again (the outage
    recovery runs a recorded job it believes unstarted) nor drop its outcome."""
    ran.clear()
    job_id = resque.enqueue("default", "CountingJob", 7)

    def lost(self):  # the connection drops with the record applied and its reply unread
        self.abandon()
        raise redis.ConnectionError("reply lost")

    monkeypatch.setattr(_PendingReply, "read", lost)
    worker = Worker(resque, ["default"], WorkerOptions(blocking=True, interval=1, fork=False),
                    JobResolver(), hostname="vm")
    worker.register()
    reserved = worker._reserve()
    assert reserved is not None
    worker._process_safely(*reserved)
    worker._flush_bookkeeping()
    assert ran == [7]
    assert not r.exists(f"resque:worker:{worker.id}")  # the retried bookkeeping found its record
    assert r.get("resque:stat:processed") == b"1" and resque.status(job_id).status == wire.COMPLETE
    assert _in_use(resque) == 0
    worker.unregister()


@pytest.mark.parametrize("fork", ["1", "0"], ids=["fork", "inline"])
def test_blocking_mode_fails_bad_items_with_their_status_and_keeps_going(redis_url, r, tmp_path, fork):
    resque = Resque(redis_url)
    r.sadd("resque:queues", "default")
    r.rpush("resque:queue:default", b"not json")
    unknown = resque.enqueue("default", "No_Such_Job")
    good = resque.enqueue("default", "PHP_Job", {"after": True})
    env = {"BLOCKING": "1", "INTERVAL": "1"} | ({} if fork == "1" else {"PYRESQUE_INLINE": "1"})
    with WorkerProcess(redis_url, tmp_path, **env) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what="the good job after the bad ones")
    failures = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert [f["exception"] for f in failures] == ["pyresque.InvalidPayload", "pyresque.JobClassNotFound"]
    assert resque.status(unknown).status == wire.FAILED
    assert r.get("resque:stat:processed") == b"3" and r.get("resque:stat:failed") == b"2"
