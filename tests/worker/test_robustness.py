"""Failure paths found in review: lost replies, internal errors, helper deaths, stop signals."""

from __future__ import annotations

import json
import signal
import time

import psutil

from pyresque import Resque
from pyresque.store.datastore import Bookkeeping
from pyresque.wire import payload as wire
from support import WorkerProcess, records, wait_for


def test_a_retried_finish_never_touches_the_next_jobs_record(resque, r):
    """A lost reply to finish+reserve: the retry must not delete job B's record nor count A twice."""
    wid = "vm:1:default"
    record_a = wire.encode_working_on("default", "2026-11-22T00:00:00Z", '{"class":"A","args":[]}')
    record_b = wire.encode_working_on("default", "2026-11-22T00:00:01Z", '{"class":"B","args":[]}')
    r.set(f"resque:worker:{wid}", record_b)  # A was booked and B reserved; the reply was lost
    assert resque.store.finish_job(wid, Bookkeeping(retry=True, record=record_a)) is False
    assert r.get(f"resque:worker:{wid}").decode() == record_b and r.get("resque:stat:processed") is None
    r.set(f"resque:worker:{wid}", record_a)  # the call had not been applied: the retry does it
    assert resque.store.finish_job(wid, Bookkeeping(retry=True, record=record_a)) is True
    assert not r.exists(f"resque:worker:{wid}") and r.get("resque:stat:processed") == b"1"


def test_an_internal_error_fails_the_job_instead_of_losing_it(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "BadPolicyJob")
    after = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(after).status == 4, what="the next job")
        assert not records(worker, "bad_policy_ran")
    assert resque.status(job_id).status == 3
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert "retry attempts must be an integer >= 1" in failure["error"]


def test_a_payload_with_an_id_but_a_bad_shape_ends_failed_not_running(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    r.set("resque:job:abc:status", wire.encode_status(1, 1, 1))
    r.sadd("resque:queues", "default")
    r.rpush("resque:queue:default", '{"class":"PHP_Job","args":{"a":1},"id":"abc","prefix":""}')
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: r.llen("resque:failed") == 1, what="failure")
    assert resque.status("abc").status == 3 and 0 < r.ttl("resque:job:abc:status")


def test_the_forking_helper_dying_mid_job_loses_nothing(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "SleepJob", 1)
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: records(worker, "sleep_started"), what="job start")
        forkers = [p for p in psutil.Process(worker.pid).children() if "Forker" in " ".join(p.cmdline())]
        assert forkers, "fork mode runs a forking helper"
        forkers[0].kill()
        wait_for(lambda: resque.status(job_id).status == 4, what=f"the running job completes\n{worker.log()}")
        nxt = resque.enqueue("default", "PHP_Job", {})
        wait_for(lambda: resque.status(nxt).status == 4, what="the next job, with a new helper")
    assert r.llen("resque:failed") == 0


def test_blocking_on_a_glob_that_matches_nothing_does_not_spin(redis_url, r, tmp_path):
    with WorkerProcess(redis_url, tmp_path, QUEUE="nothing-yet-*", BLOCKING="1", INTERVAL="5") as worker:
        worker.worker_id(r)
        proc = psutil.Process(worker.pid)
        before = sum(proc.cpu_times()[:2])
        time.sleep(2)
        assert sum(proc.cpu_times()[:2]) - before < 0.5  # a spinning loop burns ~2 s of CPU here


def test_a_job_popped_after_term_is_put_back_not_killed(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path, BLOCKING="1", INTERVAL="5") as worker:
        wid = worker.worker_id(r)
        time.sleep(0.2)  # it is blocked in BLPOP now
        worker.signal(signal.SIGTERM)
        job_id = resque.enqueue("default", "PHP_Job", {})
        assert worker.wait(10) == 0
    assert r.llen("resque:failed") == 0
    assert resque.status(job_id).status in (1, 4)  # put back unstarted, or it had finished
    if resque.status(job_id).status == 1:
        assert json.loads(r.lindex("resque:queue:default", 0))["id"] == job_id
    assert not r.exists(f"resque:worker:{wid}")


def test_job_children_get_default_signal_dispositions(redis_url, r, tmp_path):
    Resque(redis_url).enqueue("default", "SignalMaskJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        mask = wait_for(lambda: records(worker, "signal_mask"), what="job")[0]
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGCHLD):
        assert not mask["ignored"] & (1 << (signum - 1)), signal.Signals(signum).name
    assert not mask["caught"] & (1 << (signal.SIGCHLD - 1))


def test_a_sigkilled_worker_leaves_no_helper_behind(redis_url, r, tmp_path):
    worker = WorkerProcess(redis_url, tmp_path).start()
    try:
        worker.worker_id(r)
        helpers = [p for p in psutil.Process(worker.pid).children(recursive=True)]
        assert helpers
        worker.signal(signal.SIGKILL)
        worker.wait()

        def gone() -> bool:
            for proc in helpers:
                try:
                    if proc.status() != psutil.STATUS_ZOMBIE:
                        return False
                except psutil.NoSuchProcess:
                    continue
            return True

        wait_for(gone, timeout=5, what="the forking helper and its idle child to exit")
    finally:
        worker.stop()


def test_quit_stops_a_worker_still_waiting_for_redis_at_start(tmp_path):
    from pyresque.store.embedded import free_port

    worker = WorkerProcess(f"redis://127.0.0.1:{free_port()}/0", tmp_path).start()
    try:
        wait_for(lambda: "redis unavailable" in worker.log(), what="the outage warning")
        worker.signal(signal.SIGQUIT)
        assert worker.wait(8) == 0
        assert worker.log().count("redis unavailable") == 1 and "Traceback" not in worker.log()
    finally:
        worker.stop()


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x00\x9b31m"  # retitle the terminal, clear it, a NUL, a C1 CSI


def test_control_characters_from_redis_reach_neither_the_title_nor_the_console_log(redis_url, r, tmp_path):
    """A queue and a class named with escape sequences and a NUL: a ``QUEUE=*`` worker keeps
    working (setproctitle raised on the NUL), its title and console log show them escaped."""
    queue = f"evil{HOSTILE}"
    r.sadd("resque:queues", queue)
    r.rpush(f"resque:queue:{queue}", json.dumps({"class": f"Evil{HOSTILE}", "args": [], "id": "e1"}))
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path, queue="*", LOGGING="console") as worker:
        worker.worker_id(r)
        wait_for(lambda: r.llen("resque:failed") == 1, what=f"the hostile job to fail\n{worker.log()}")
        after = resque.enqueue("default", "PHP_Job", {})
        wait_for(lambda: resque.status(after).status == 4, what=f"the next job\n{worker.log()}")
        title = " ".join(psutil.Process(worker.pid).cmdline())
    log = worker.log()
    assert "JobClassNotFound" in r.lindex("resque:failed", 0).decode()
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\x00\\x9b31m" in log  # the queue name, escaped
    assert "Evil\\x1b]0;owned" in log  # the class name
    assert not any(c in log for c in "\x1b\x07\x00\x9b"), log
    assert title.startswith("resque-") and not any(c in title for c in "\x1b\x07\x9b"), title
