"""The default wait for work (pyresque.store.waiting): BLMOVEs that park an arriving job in a list
of the worker's, never in a reply only a process holds, and the prune that puts parked jobs back."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import redis

from pyresque import Resque
from pyresque.store.waiting import MAX_WAIT_QUEUES, QueueWaiter, WaitUnsupported
from pyresque.wire import payload as wire
from pyresque.worker.heartbeat import Pruner
from support import WorkerProcess, wait_for

WID = "vm:1:high,default"


def _push_later(resque: Resque, queue: str, delay: float = 0.2) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), resque.enqueue(queue, "PHP_Job", {"q": queue})))
    thread.start()
    return thread


def test_a_wait_ends_when_a_job_arrives_and_leaves_it_on_its_queue(resque, r):
    waiter = QueueWaiter(resque.store, WID)
    pusher = _push_later(resque, "default")
    assert waiter.wait(["high", "default"], 5, time.monotonic() + 5) is True
    pusher.join()
    assert r.llen("resque:queue:default") == 1  # back on its queue, for the atomic reserve
    assert not r.keys("resque:pyresque_reserved:*")
    assert not waiter.pending  # the other queue's BLMOVE was cancelled, not left to take a job
    assert json.loads(r.hget("resque:pyresque_reservations", WID)) == ["high", "default"]
    waiter.close()
    assert not r.hexists("resque:pyresque_reservations", WID)


def test_a_wait_that_times_out_keeps_its_blmoves_for_the_next_one(resque, r):
    waiter = QueueWaiter(resque.store, WID)
    assert waiter.wait(["default"], 5, time.monotonic() + 0.05) is False
    assert waiter.pending
    blocked = int(r.info("clients")["blocked_clients"])
    assert blocked == 1
    waiter.cancel()
    assert not waiter.pending and int(r.info("clients")["blocked_clients"]) == 0
    resque.enqueue("default", "PHP_Job")
    assert r.llen("resque:queue:default") == 1  # nobody took it after the cancel
    waiter.close()


def test_a_wake_descriptor_ends_the_wait_without_touching_the_queues(resque, r):
    waiter = QueueWaiter(resque.store, WID)
    read_end, write_end = os.pipe()
    os.write(write_end, b"x")
    started = time.monotonic()
    assert waiter.wait(["default"], 5, started + 5, (read_end,)) is False
    assert time.monotonic() - started < 4
    waiter.close()
    os.close(read_end)
    os.close(write_end)


def test_too_many_queues_to_wait_on_is_refused_so_the_worker_polls(resque):
    with pytest.raises(WaitUnsupported):
        QueueWaiter(resque.store, WID).wait([f"q{i}" for i in range(MAX_WAIT_QUEUES + 1)], 1, time.monotonic() + 1)


def test_a_queue_key_of_the_wrong_type_is_reported_and_the_others_still_wake_the_wait(resque, r):
    r.set("resque:queue:high", "not a list")
    waiter = QueueWaiter(resque.store, WID)
    pusher = _push_later(resque, "default")
    assert waiter.wait(["high", "default"], 5, time.monotonic() + 5) is True
    pusher.join()
    assert any("resque:queue:high" in p for p in resque.store.take_problems())
    waiter.close()


def test_the_prune_puts_back_what_a_dead_waiter_parked_at_its_queues_head(resque, r):
    dead = "vm:999999:default"  # this host, a pid that does not run
    resque.store.register_worker(dead, wire.ruby_time(), 60)
    r.rpush("resque:queue:default", "second")
    r.rpush(f"resque:pyresque_reserved:{dead}:default", "first")
    r.hset("resque:pyresque_reservations", dead, '["default"]')
    Pruner(resque.store, "vm:1:default", "vm").prune()
    assert r.lrange("resque:queue:default", 0, -1) == [b"first", b"second"]
    assert not r.exists(f"resque:pyresque_reserved:{dead}:default")
    assert not r.hexists("resque:pyresque_reservations", dead)


def test_the_prune_finds_a_waiter_that_another_program_pruned(resque, r):
    gone = "otherhost:42:default"  # not registered, no heartbeat: Ruby's prune removed it
    r.rpush(f"resque:pyresque_reserved:{gone}:default", "parked")
    r.hset("resque:pyresque_reservations", gone, '["default"]')
    Pruner(resque.store, "vm:1:default", "vm").prune()
    assert r.lrange("resque:queue:default", 0, -1) == [b"parked"]
    assert not r.hexists("resque:pyresque_reservations", gone)


def test_the_prune_leaves_a_live_waiters_lists_alone(resque, r):
    live = "otherhost:42:default"
    resque.store.register_worker(live, wire.ruby_time(), 60)
    r.rpush(f"resque:pyresque_reserved:{live}:default", "parked")
    r.hset("resque:pyresque_reservations", live, '["default"]')
    Pruner(resque.store, "vm:1:default", "vm").prune()
    assert r.lrange(f"resque:pyresque_reserved:{live}:default", 0, -1) == [b"parked"]


def test_a_job_parked_by_a_worker_killed_before_its_reserve_runs_after_the_next_prune(redis_url, r, tmp_path):
    """The window BLPOP left open: the job has left its queue but no record names it. Here the
    worker is stopped while it waits, so Redis' BLMOVE parks the job and nothing reserves it; then
    it is SIGKILLed. The job is in Redis all along, and the next worker's start-up prune frees it."""
    resque = Resque(redis_url)
    first = WorkerProcess(redis_url, tmp_path, INTERVAL="5").start()
    try:
        wid = first.worker_id(r)
        wait_for(lambda: int(r.info("clients")["blocked_clients"]) >= 1, what="the worker to wait in BLMOVE")
        first.signal(signal.SIGSTOP)
        job_id = resque.enqueue("default", "PHP_Job", {"n": 1})
        parked = f"resque:pyresque_reserved:{wid}:default"
        wait_for(lambda: r.llen(parked) == 1, what="Redis to park the job in the stopped worker's list")
        assert r.llen("resque:queue:default") == 0 and not r.exists(f"resque:worker:{wid}")
        first.signal(signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    with WorkerProcess(redis_url, tmp_path) as second:
        second.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == wire.COMPLETE, what="the parked job to run")
    assert not r.exists(parked) and r.get("resque:stat:failed") is None


@pytest.mark.parametrize("fork", ["1", "0"], ids=["fork", "inline"])
def test_polling_mode_still_runs_jobs_and_fails_bad_items(redis_url, r, tmp_path, fork):
    resque = Resque(redis_url)
    r.sadd("resque:queues", "default")
    r.rpush("resque:queue:default", b"not json")
    unknown = resque.enqueue("default", "No_Such_Job")
    good = resque.enqueue("default", "PHP_Job", {"after": True})
    env = {"BLOCKING": "0", "INTERVAL": "0.2"} | ({} if fork == "1" else {"PYRESQUE_INLINE": "1"})
    with WorkerProcess(redis_url, tmp_path, **env) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what="the good job after the bad ones")
        assert not r.hexists("resque:pyresque_reservations", worker.worker_id(r))  # it never waited
    failures = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert [f["exception"] for f in failures] == ["pyresque.InvalidPayload", "pyresque.JobClassNotFound"]
    assert resque.status(unknown).status == wire.FAILED
    assert r.get("resque:stat:processed") == b"3" and r.get("resque:stat:failed") == b"2"


def test_the_default_worker_waits_in_blmove_and_starts_an_arriving_job(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path, queue="high,default", INTERVAL="5") as worker:
        wid = worker.worker_id(r)
        wait_for(lambda: int(r.info("clients")["blocked_clients"]) >= 2 * worker.slots,
                 what="a BLMOVE per queue (and slot)")
        job_id = resque.enqueue("default", "PHP_Job", {"n": 2})
        wait_for(lambda: resque.status(job_id).status == wire.COMPLETE, what="the job to run")
        assert json.loads(r.hget("resque:pyresque_reservations", wid)) == ["high", "default"]
    assert not r.hexists("resque:pyresque_reservations", wid)  # unregistered with the worker
    assert not r.keys("resque:pyresque_reserved:*")


@pytest.mark.parametrize("renamed", ["BLMOVE", "CLIENT"], ids=["no-blmove", "no-client-unblock"])
def test_a_server_that_cannot_wait_gets_a_polling_worker_that_still_runs_jobs(tmp_path, renamed):
    """Redis < 6.2 has no BLMOVE; a managed Redis may deny CLIENT. The worker says so and polls."""
    from pyresque.store.embedded import RedisServer

    with RedisServer(extra_args=["--rename-command", renamed, ""]) as server:
        resque = Resque(server.url)
        with WorkerProcess(server.url, tmp_path, INTERVAL="0.2") as worker:
            wait_for(lambda: "polling every INTERVAL instead" in worker.log(), what=f"the fallback\n{worker.log()}")
            job_id = resque.enqueue("default", "PHP_Job", {"n": 3})
            wait_for(lambda: resque.status(job_id).status == wire.COMPLETE, what=f"the job\n{worker.log()}")
        assert not resque.redis.keys("resque:pyresque_reserved:*")


def test_a_job_parked_on_a_connection_that_died_is_put_back_when_the_worker_registers_again(resque, r):
    """Redis dropped the waiter's connection after its BLMOVE parked a job (a failover, a restart
    with persistence): the worker registers again, and the job goes back before anything else."""
    waiter = QueueWaiter(resque.store, WID)
    assert waiter.wait(["default"], 5, time.monotonic() + 0.05) is False
    r.rpush("resque:queue:default", "parked")  # the blocked BLMOVE moves it into our list at once
    wait_for(lambda: r.llen(f"resque:pyresque_reserved:{WID}:default") == 1, what="the job to be parked")
    waiter._drop_all()  # what a connection error does, the reply with the job unread
    waiter.forget_registration()  # what Worker.register() does once Redis answers again
    assert r.lrange("resque:queue:default", 0, -1) == [b"parked"]
    waiter.close()
    assert not r.hexists("resque:pyresque_reservations", WID)


def test_close_puts_back_what_a_dead_connection_parked_even_after_a_new_registration(resque, r):
    waiter = QueueWaiter(resque.store, WID)
    waiter.wait(["default"], 5, time.monotonic() + 0.05)
    r.rpush("resque:queue:default", "parked")
    wait_for(lambda: r.llen(f"resque:pyresque_reserved:{WID}:default") == 1, what="the job to be parked")
    waiter._drop_all()  # what a connection error does, the reply with the job unread
    waiter._registered = None  # as after a re-registration that could not restore (Redis away again)
    waiter.close()  # QUIT before the next wait
    assert r.lrange("resque:queue:default", 0, -1) == [b"parked"]


def test_a_blmove_reply_that_never_comes_is_a_dead_connection_not_a_wait_forever(resque, r, monkeypatch):
    """A NAT that drops silently: the server is told to pause (CLIENT PAUSE), so its reply comes
    late; past the BLMOVE's own timeout plus the grace the waiter gives up on the connection."""
    from pyresque.store import waiting

    monkeypatch.setattr(waiting, "REPLY_GRACE", 0.3)
    waiter = QueueWaiter(resque.store, WID)
    waiter.wait(["default"], 0.2, time.monotonic() + 0.05)
    r.execute_command("CLIENT", "PAUSE", 1200, "ALL")
    try:
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError, match="no reply to BLMOVE"):
            waiter.wait(["default"], 0.2, time.monotonic() + 10)
        assert time.monotonic() - started < 2.5
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
    assert not waiter.pending


def test_waiting_works_with_descriptors_past_1024(resque):
    pipes = [os.pipe() for _ in range(520)]  # select() would refuse a socket past FD_SETSIZE
    try:
        waiter = QueueWaiter(resque.store, WID)
        pusher = _push_later(resque, "default", 0.1)
        assert waiter.wait(["default"], 5, time.monotonic() + 5) is True
        pusher.join()
        waiter.close()
    finally:
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)


def test_a_user_whose_acl_forbids_blmove_gets_a_polling_worker(resque, r, redis_url):
    r.acl_setuser("limited", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", "-blmove"])
    try:
        limited = Resque(redis_url.replace("redis://", "redis://limited:secret@"))
        with pytest.raises(WaitUnsupported):
            QueueWaiter(limited.store, WID).wait(["default"], 1, time.monotonic() + 1)
    finally:
        r.acl_deluser("limited")
