"""Producer API and queue maintenance against a real redis-server, compared with the vectors."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

import vectors
from pyresque import COMPLETE, FAILED, RUNNING, WAITING, Resque
from pyresque.exceptions import InvalidPayload, InvalidQueueName, InvalidStatus


def test_php_shape_enqueue_matches_php_resque_vector(r, resque):
    job_id = resque.enqueue("default", "PHP_Job", {"name": "x", "n": 1})
    ours = vectors.normalise_state(vectors.dump(r))
    theirs = vectors.normalise_state(vectors.state(vectors.load("php-resque-v1.3.6/a_enqueue_tracked"), "after_enqueue"))
    assert ours == theirs
    assert len(job_id) == 32 and int(job_id, 16) >= 0


def test_untracked_and_null_args_match_php_resque_vector(r, resque):
    resque.enqueue("default", "PHP_Job", {"name": "x", "n": 1})
    resque.enqueue("default", "PHP_Job", {"name": "x", "n": 1}, track=False)
    resque.enqueue("default", "PHP_Job", None, track=False)
    ours = vectors.normalise_state(vectors.dump(r))
    theirs = vectors.normalise_state(
        vectors.state(vectors.load("php-resque-v1.3.6/a_enqueue_tracked"), "after_untracked_enqueues"))
    assert ours == theirs


def test_ruby_shape_enqueue_matches_ruby_vector(r, resque):
    assert resque.enqueue("default", "SomeJob", 1, "two", {"k": "v"}, shape="ruby") is None
    ours = vectors.dump(r)
    theirs = vectors.state(vectors.load("ruby-resque/f1_ruby_enqueue"), "after_enqueue")
    assert {k: (v["type"], v["ttl"], v["value"]) for k, v in ours.items()} == {
        k: (v["type"], v["ttl"], v["value"]) for k, v in theirs.items()}


def test_positional_args_keep_ruby_order_with_php_fields(r, resque):
    job_id = resque.enqueue("default", "SomeJob", 1, "two", {"k": "v"})
    payload = json.loads(r.lindex("resque:queue:default", 0))
    assert list(payload) == ["class", "args", "id", "prefix", "queue_time"]
    assert payload["args"] == [1, "two", {"k": "v"}] and payload["id"] == job_id


def test_prefix_is_applied_to_every_key(redis_url, r):
    Resque(redis_url, prefix="myapp").enqueue("q1", "PHP_Job", {"a": 1})
    assert sorted(k.decode().split(":")[0] for k in r.keys("*")) == ["myapp"] * 3


def test_status_prefix_names_the_key_as_php_resque(r, resque):
    job_id = resque.enqueue("default", "PHP_Job", {"a": 1}, status_prefix="tenant1")
    assert r.exists(f"resque:job:tenant1_{job_id}:status")
    assert json.loads(r.lindex("resque:queue:default", 0))["prefix"] == "tenant1"
    assert resque.status(job_id, "tenant1").status == WAITING


def test_status_transitions_and_ttls(r, resque):
    job_id = resque.enqueue("default", "PHP_Job", {})
    key = f"resque:job:{job_id}:status"
    first = resque.status(job_id)
    assert first.status == WAITING and r.ttl(key) == -1
    assert resque.update_status(job_id, RUNNING)
    assert resque.status(job_id).status == RUNNING and r.ttl(key) == -1
    assert resque.update_status(job_id, COMPLETE, {"answer": 42})
    done = resque.status(job_id)
    assert done.status == COMPLETE and done.result == {"answer": 42} and done.started == first.started
    assert 86390 < r.ttl(key) <= 86400
    resque.status_ttl = 60
    assert resque.update_status(job_id, FAILED)
    assert 0 < r.ttl(key) <= 60


def test_untracked_jobs_are_never_given_a_status(r, resque):
    job_id = resque.enqueue("default", "PHP_Job", {}, track=False)
    assert resque.status(job_id) is None
    assert resque.update_status(job_id, COMPLETE) is False
    assert not r.exists(f"resque:job:{job_id}:status")


def test_chrisboulton_packet_without_started_reads_and_updates(r, resque):
    r.set("resque:job:abc:status", '{"status":2,"updated":1795322066}')
    packet = resque.status("abc")
    assert packet.status == RUNNING and packet.started is None and packet.result is None
    assert resque.update_status("abc", COMPLETE)
    assert resque.status("abc").started is not None


def test_malformed_status_packet_is_reported(r, resque):
    r.set("resque:job:bad:status", "garbage")
    with pytest.raises(InvalidStatus):
        resque.status("bad")


def test_status_key_exists_before_a_blocked_worker_can_pop(redis_url, resque):
    """php-resque pushes first, so a blocking worker can pop before the status exists (b4)."""
    popper = redis.Redis.from_url(redis_url, protocol=2)
    seen = {}

    def pop():
        found = popper.blpop(["resque:queue:race"], timeout=5)
        job = json.loads(found[1])
        seen["status"] = popper.get(f"resque:job:{job['id']}:status")

    for _ in range(20):
        thread = threading.Thread(target=pop)
        thread.start()
        time.sleep(0.02)
        resque.enqueue("race", "PHP_Job", {})
        thread.join(5)
        assert seen.pop("status") is not None


def test_bulk_enqueue_writes_the_same_payloads(r, resque):
    ids = resque.enqueue_many("bulk", "PHP_Job", [[{"n": i}] for i in range(2500)])
    assert len(set(ids)) == 2500 and r.llen("resque:queue:bulk") == 2500
    last = json.loads(r.lindex("resque:queue:bulk", -1))
    assert last["args"] == [{"n": 2499}] and last["id"] == ids[-1]
    assert resque.status(ids[1234]).status == WAITING
    resque.enqueue_many("bulk", "SomeJob", [[1, 2]], shape="ruby")
    assert r.lindex("resque:queue:bulk", -1) == b'{"class":"SomeJob","args":[1,2]}'


def test_queues_sizes_peek_remove_delete(r, resque):
    resque.enqueue("a", "PHP_Job", {"n": 1})
    keep = resque.enqueue("a", "PHP_Job", {"n": 2})
    gone = resque.enqueue("a", "Other", 5)
    r.rpush("resque:queue:a", '{"class":"PHP_Job","args":[{"n":1,"u":"\\u00e9\\/"}]}')  # php bytes
    r.rpush("resque:queue:a", "not json")
    resque.enqueue("b", "X")
    assert resque.queues() == {"a": 5, "b": 1}
    peeked = resque.peek("a", 0, 10)
    assert [j.job_class for j in peeked] == ["PHP_Job", "PHP_Job", "Other", "PHP_Job", None]
    assert "not JSON" in peeked[-1].error
    assert resque.remove("a", job_id=gone) == 1
    assert resque.remove("a", "PHP_Job", [{"n": 1, "u": "é/"}]) == 1  # decoded comparison
    assert resque.remove("a", "PHP_Job", [{"n": 1}]) == 1
    assert [j.job_id for j in resque.peek("a")][:1] == [keep]
    assert resque.remove("a", "PHP_Job") == 1
    assert resque.size("a") == 1  # the unreadable item is left alone
    assert resque.delete_queue("a") == 1
    assert resque.queues() == {"b": 1}


def test_api_rejects_bad_input(resque):
    with pytest.raises(InvalidQueueName):
        resque.enqueue("", "PHP_Job")
    with pytest.raises(InvalidPayload):
        resque.enqueue("q", "")
    with pytest.raises(InvalidPayload, match="not JSON-serialisable"):
        resque.enqueue("q", "PHP_Job", object())
    with pytest.raises(ValueError):
        resque.remove("q")


def test_before_enqueue_false_cancels(r, resque):
    calls = []
    resque.before_enqueue.append(lambda q, c, a, i: c != "Blocked")
    resque.after_enqueue.append(lambda q, c, a, i: calls.append((q, c, a, i)))
    assert resque.enqueue("q", "Blocked", 1) is None
    job_id = resque.enqueue("q", "Fine", 2)
    assert calls == [("q", "Fine", [2], job_id)] and r.llen("resque:queue:q") == 1


def test_enqueue_refuses_a_lone_surrogate_that_no_worker_could_read(resque, r):
    """It wrote the escape, which every worker then had to fail; an emoji (a pair) is fine."""
    import pytest

    from pyresque import InvalidPayload

    with pytest.raises(InvalidPayload, match="lone UTF-16 surrogate"):
        resque.enqueue("default", "SomeJob", "bad \ud800 text")
    with pytest.raises(InvalidPayload, match="lone UTF-16 surrogate"):
        resque.enqueue("default", "Some\udc00Job")
    assert r.llen("resque:queue:default") == 0
    assert resque.enqueue("default", "SomeJob", "fine \U0001f600") is not None


def test_enqueue_at_refuses_a_lone_surrogate_too(resque, r):
    import pytest

    from pyresque import InvalidPayload, enqueue_at

    with pytest.raises(InvalidPayload, match="lone UTF-16 surrogate"):
        enqueue_at(resque, 1_900_000_000, "default", "SomeJob", "bad \udcff", shape="ruby")
    assert r.keys("*") == []


def test_a_result_with_a_lone_surrogate_is_stored_readable():
    import json

    from pyresque.wire import payload as wire

    assert json.loads(wire.encode_result({"r": "x\ud800"})) == {"r": "x\\ud800"}


# -- answers: a failed job's error, and waiting for a result -----------------------------------
PACKET = r'^\{"status":3,"updated":\d+,"started":\d+,"result":null\}$'  # php-resque's bytes, nothing added


@pytest.mark.parametrize("blocking", ["0", "1"], ids=["polling", "blocking"])
def test_a_failed_jobs_status_and_wait_give_its_error(redis_url, r, tmp_path, blocking):
    import re

    from pyresque import JobError, JobFailed
    from support import WorkerProcess

    resque = Resque(redis_url)
    ok = resque.enqueue("default", "PHP_Job", {"n": 1})
    resque.enqueue("default", "FailJob", "untracked", track=False)  # runs first: no status, so no summary
    bad = resque.enqueue("default", "FailJob", "boom: the disk is full")
    with WorkerProcess(redis_url, tmp_path, BLOCKING=blocking) as worker:
        assert resque.wait(ok, timeout=30)["args"] == {"n": 1}
        with pytest.raises(JobFailed) as failed:
            resque.wait(bad, timeout=30)
    # registering (SET's status reply) and the summary's SET are not taken for wrong-type keys
    assert "wrong type" not in worker.log()
    assert (failed.value.job_id, failed.value.exception, failed.value.message) == \
        (bad, "RuntimeError", "boom: the disk is full")
    assert str(failed.value) == f"job {bad} failed: RuntimeError: boom: the disk is full"
    assert re.match(PACKET, r.get(f"resque:job:{bad}:status").decode())
    side = f"resque:pyresque_failure:{bad}"
    assert r.keys("resque:pyresque_failure:*") == [side.encode()] and r.llen("resque:failed") == 2
    assert 86390 < r.ttl(side) <= 86400 and 86390 < r.ttl(f"resque:job:{bad}:status") <= 86400
    r.delete("resque:failed")  # the summary alone answers: no search of the failed list
    error = resque.status(bad).error
    assert isinstance(error, JobError) and str(error) == "RuntimeError: boom: the disk is full"
    assert error.queue == "default" and error.worker.endswith(":default") and error.failed_at.endswith(" UTC")
    assert resque.status(ok).error is None and not r.exists(f"resque:pyresque_failure:{ok}")


def test_a_php_or_ruby_workers_failure_is_found_in_the_failed_list(r, resque):
    """php-resque and Ruby write no summary: the newest records are searched, by payload id."""
    vectors.load_state(r, vectors.state(vectors.load("php-resque-v1.3.6/c_job_exception"), "after_error_failure"))
    first, second = "d903e9e69d194b33880afd3d39a2ff61", "030f2e426e77a331dca75a08e0785787"
    from pyresque.wire import payload as wire

    filler = wire.encode_failure(wire.build_failure({"class": "X", "args": [first]}, "E", "not it", [], "w", "q"))
    r.rpush("resque:failed", *[filler] * 250)  # the id in the bytes but not as the payload's id: pages cross
    assert str(resque.status(first).error) == "RuntimeException: boom from PHP_FailJob"
    assert resque.status(second).error.exception == "DivisionByZeroError"
    assert resque.status(second).error.worker == "vm:2508:default"
    prefixed = f"resque:job:tenant_{first}:status"
    r.set(prefixed, r.get(f"resque:job:{first}:status"))
    assert resque.status(first, "tenant").error is None  # another job: same id, other prefix

    r.rpush("resque:failed", *[filler] * 1000)  # now past the bounded search
    assert resque.status(first).status == FAILED and resque.status(first).error is None


def test_a_summary_of_another_failure_of_the_same_id_is_not_believed(r, resque):
    r.set("resque:job:abc:status", '{"status":3,"updated":1795323200,"started":1795323100,"result":null}')
    r.set("resque:pyresque_failure:abc", '{"exception":"Old","error":"from before","updated":1795320000}')
    r.rpush("resque:failed", json.dumps({"failed_at": "2026/11/22 04:53:20 UTC", "exception": "New",
                                         "error": "this time", "payload": {"class": "A", "args": [], "id": "abc"}}))
    assert str(resque.status("abc").error) == "New: this time"
    r.set("resque:pyresque_failure:abc", '{"exception":"Now","error":"right","updated":1795323200}')
    assert str(resque.status("abc").error) == "Now: right"
    r.delete("resque:pyresque_failure:abc")
    r.hset("resque:pyresque_failure:abc", "a", "b")  # another program's value: ignored, never an error
    assert str(resque.status("abc").error) == "New: this time"


def test_wait_times_out_and_refuses_unknown_ids(r, resque):
    from pyresque import JobFailed, UnknownJob, WaitTimeout

    job_id = resque.enqueue("default", "PHP_Job", {})
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=f"job {job_id} is still waiting after 0.3 s") as timed_out:
        resque.wait(job_id, timeout=0.3)
    assert isinstance(timed_out.value, TimeoutError) and time.monotonic() - started >= 0.3
    with pytest.raises(UnknownJob, match="not tracked"):
        resque.wait("0123456789abcdef0123456789abcdef", timeout=5)
    untracked = resque.enqueue("default", "PHP_Job", {}, track=False)
    with pytest.raises(UnknownJob):
        resque.wait(untracked)

    def finish_soon():
        time.sleep(0.2)
        resque.update_status(job_id, COMPLETE, [1, "two"])

    thread = threading.Thread(target=finish_soon)
    thread.start()
    assert resque.wait(job_id, timeout=10) == [1, "two"]
    thread.join()
    resque.update_status(job_id, FAILED)  # by hand: no failure record anywhere
    with pytest.raises(JobFailed, match="no failure record found") as failed:
        resque.wait(job_id)
    assert failed.value.exception is None


def test_wait_polls_with_a_backoff_not_a_busy_loop(r, resque, monkeypatch):
    from pyresque import WaitTimeout

    job_id = resque.enqueue("default", "PHP_Job", {})
    now, pauses = [0.0], []

    def sleep(seconds):
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    with pytest.raises(WaitTimeout):
        resque.wait(job_id, timeout=2)
    assert pauses[:4] == [0.005, 0.01, 0.02, 0.04] and max(pauses) == 0.25 and len(pauses) < 20
    assert sum(pauses) == pytest.approx(2.0)
