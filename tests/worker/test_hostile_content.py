"""Hostile or broken content in Redis, written by a neighbour: a real worker keeps serving.

Each case plants what another program could write, starts a real worker, and checks that the bad
item fails alone (failed list, with a reason that names what was wrong), that a good job queued
behind it completes, and that statuses end consistent.
"""

from __future__ import annotations

import json
import time

import pytest

from pyresque import Resque
from pyresque.wire import payload as wire
from support import WorkerProcess, wait_for

DEEP = "[" * 990 + "]" * 990


def failures(r) -> list[dict]:
    return [json.loads(raw) for raw in r.lrange("resque:failed", 0, -1)]


def _tracked(r, body: bytes, job_id: str) -> None:
    """Queue ``body`` (raw bytes) as a tracked php-resque job with a WAITING status."""
    r.set(f"resque:job:{job_id}:status", wire.encode_status(wire.WAITING, int(time.time()), int(time.time())))
    r.sadd("resque:queues", "default")
    r.rpush("resque:queue:default", body)


@pytest.mark.parametrize("body, reason", [
    (b'{"class":"\\ud800","args":[],"id":"%s","prefix":""}', "lone UTF-16 surrogate"),
    (b'{"class":"\xed\xa0\x80","args":[],"id":"%s","prefix":""}', "not UTF-8"),
    (b'{"class":"PHP_Job","args":[' + DEEP.encode() + b'],"id":"%s","prefix":""}', "nests deeper than 200"),
    (b'{"class":"Nope","args":[NaN],"id":"%s","prefix":""}', "NaN is not JSON"),
    (b'{"class":"PHP_Job","args":[{"x":Infinity}],"id":"%s","prefix":""}', "Infinity is not JSON"),
    (b'{"class":"PHP_Job","args":[1e999],"id":"%s","prefix":""}', "out of range"),
], ids=["surrogate-escape", "surrogate-bytes", "deep", "nan", "infinity", "overflow"])
def test_a_bad_queue_item_fails_alone_with_its_reason(redis_url, r, tmp_path, body, reason):
    job_id = "b" * 32
    _tracked(r, body.replace(b"%s", job_id.encode()), job_id)
    resque = Resque(redis_url)
    good = resque.enqueue("default", "PHP_Job", {"after": True})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what=f"the good job\n{worker.log()}")
        assert worker.process.poll() is None
    [record] = failures(r)
    assert record["exception"] == "pyresque.InvalidPayload" and reason in record["error"], record
    assert resque.status(job_id).status == wire.FAILED  # its status is final, not stuck WAITING
    assert r.llen("resque:queue:default") == 0


def _dead_worker(r, record: bytes, host: str = "elsewhere-host") -> str:
    """A registered worker of another host whose heartbeat expired, with ``record`` as its job."""
    wid = f"{host}:4242:default"
    r.sadd("resque:workers", wid)
    r.set(f"resque:worker:{wid}", record)
    r.hset("resque:workers:heartbeat", wid, "2020-01-01T00:00:00+00:00")
    return wid


@pytest.mark.parametrize("payload, reason", [
    (b'{"class":"\\ud800","args":[]}', "lone UTF-16 surrogate"),
    (b'{"class":"\xed\xa0\x80","args":[]}', "not UTF-8"),
    (DEEP.encode(), "nests deeper than 200"),
    (b'"just a string"', None),
], ids=["surrogate-escape", "surrogate-bytes", "deep", "not-a-job"])
def test_a_dead_workers_unreadable_record_is_failed_not_skipped(redis_url, r, tmp_path, payload, reason):
    wid = _dead_worker(r, b'{"queue":"default","run_at":"2020-01-01T00:00:00Z","payload":' + payload + b"}")
    resque = Resque(redis_url)
    good = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what=f"the good job\n{worker.log()}")
    assert not r.sismember("resque:workers", wid) and not r.exists(f"resque:worker:{wid}")
    [record] = failures(r)
    assert record["exception"] == "pyresque.DirtyExit" and record["worker"] == wid
    if reason:
        assert reason in json.dumps(record["payload"]), record


def test_a_whole_record_that_is_not_json_is_failed_with_its_raw_bytes(redis_url, r, tmp_path):
    wid = _dead_worker(r, b"\xff\xfe not json")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: failures(r), what=f"the pruned record\n{worker.log()}")
    [record] = failures(r)
    assert record["worker"] == wid and "raw_base64" in record["payload"]


@pytest.mark.parametrize("wid", ["localhost-x:\u00b2:default", "localhost-x:" + "9" * 5000 + ":default",
                                 "no-colons-at-all", ""])
def test_odd_worker_ids_do_not_stop_the_prune(redis_url, r, tmp_path, wid):
    r.sadd("resque:workers", wid)
    resque = Resque(redis_url)
    good = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what=f"the good job\n{worker.log()}")
        assert worker.process.poll() is None


@pytest.mark.parametrize("blocking", ["0", "1"])
def test_a_queue_key_of_the_wrong_type_is_skipped_and_logged_once(redis_url, r, tmp_path, blocking):
    r.hset("resque:queue:evil", "k", "v")  # QUEUE=* sees it in queues: every such worker died
    r.sadd("resque:queues", "evil")
    resque = Resque(redis_url)
    jobs = [resque.enqueue("default", "PHP_Job", {"n": n}) for n in range(3)]
    with WorkerProcess(redis_url, tmp_path, queue="evil,default", BLOCKING=blocking) as worker:
        worker.worker_id(r)
        wait_for(lambda: all(resque.status(j).status == wire.COMPLETE for j in jobs), what=f"the jobs\n{worker.log()}")
        assert worker.process.poll() is None
    assert worker.log().count("resque:queue:evil is not a list") == 1
    assert r.type("resque:queue:evil") == b"hash"  # another program's key: left as it was


def test_a_glob_worker_skips_a_queue_that_is_not_a_list(redis_url, r, tmp_path):
    r.hset("resque:queue:aaa", "k", "v")
    r.sadd("resque:queues", "aaa")
    resque = Resque(redis_url)
    job = resque.enqueue("zzz", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path, queue="*") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job).status == wire.COMPLETE, what=f"the job\n{worker.log()}")


@pytest.mark.parametrize("key, value", [("stat:processed", "abc"), ("stat:processed", ["list"]),
                                        ("stat:failed", "abc")])
def test_a_broken_counter_loses_no_outcome_and_writes_none_twice(redis_url, r, tmp_path, key, value):
    if isinstance(value, list):
        r.rpush(f"resque:{key}", *value)
    else:
        r.set(f"resque:{key}", value)
    resque = Resque(redis_url)
    good = resque.enqueue("default", "PHP_Job", {"name": "x"})
    bad = resque.enqueue("default", "FailJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(bad).status == wire.FAILED, what=f"the failing job\n{worker.log()}")
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what="the good job")
        assert worker.process.poll() is None
    assert resque.status(good).result is not None  # the result is kept, the status is final
    assert len(failures(r)) == 1  # pushed once, not once per retry of a half-done script
    assert not [k for k in r.keys("resque:worker:*") if not k.endswith((b":started",))]
    assert f"resque:{key} is not an integer" in worker.log()


def test_a_status_key_that_is_not_a_status_does_not_stop_the_job(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "PHP_Job", {})
    r.delete(f"resque:job:{job_id}:status")
    r.hset(f"resque:job:{job_id}:status", "status", "2")  # another program's hash
    good = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what=f"the next job\n{worker.log()}")
    assert int(r.get("resque:stat:processed")) == 2


@pytest.mark.parametrize("key, kind", [("pause-all-workers", "list"), ("workers", "string"),
                                       ("workers:heartbeat", "string"), ("queues", "string")])
def test_a_worker_key_of_the_wrong_type_does_not_stop_the_worker(redis_url, r, tmp_path, key, kind):
    if kind == "list":
        r.rpush(f"resque:{key}", "true")
    else:
        r.set(f"resque:{key}", "oops")
    resque = Resque(redis_url)
    r.rpush("resque:queue:default", wire.encode_payload(wire.build_payload("PHP_Job", [{}], "c" * 32)))
    r.set(f"resque:job:{'c' * 32}:status", wire.encode_status(wire.WAITING, 1, 1))
    with WorkerProcess(redis_url, tmp_path) as worker:
        wait_for(lambda: resque.status("c" * 32).status == wire.COMPLETE, what=f"the job\n{worker.log()}")
        assert worker.process.poll() is None


def test_an_unreadable_items_record_can_be_requeued_by_ruby_and_fails_again_clearly(redis_url, r, tmp_path):
    """Ruby's Failure.requeue pushes {class, args} of the record's payload: without a class it
    raised NoClassError (resque-web's Retry: a 500). Requeued, the item fails again, clearly."""
    r.sadd("resque:queues", "default")
    r.rpush("resque:queue:default", b"\xff not a job")
    resque = Resque(redis_url)
    good = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == wire.COMPLETE, what=f"the good job\n{worker.log()}")
        [record] = failures(r)
        payload = record["payload"]
        assert payload["class"] == wire.UNREADABLE_JOB and payload["args"] == [payload["raw"]]
        assert "not UTF-8" in payload["reason"]
        # what Ruby's requeue writes: Resque.push(queue, class: payload['class'], args: payload['args'])
        r.rpush("resque:queue:default", json.dumps({"class": payload["class"], "args": payload["args"]}))
        wait_for(lambda: len(failures(r)) == 2, what=f"the requeued item's failure\n{worker.log()}")
    again = failures(r)[1]
    assert again["exception"] == "pyresque.InvalidPayload" and "cannot run" in again["error"]
