"""Delayed jobs: resque-scheduler's layout byte for byte, ids kept across the delay, atomic moves."""

from __future__ import annotations

import json
import time

import pytest

import vectors
from pyresque import Resque
from pyresque.exceptions import InvalidPayload, InvalidQueueName
from pyresque.scheduling.delayed import (
    InvalidDelay,
    count_delayed,
    delay_payload,
    enqueue_at,
    enqueue_in,
    iter_delayed,
    move_due,
    remove_delayed,
    store_for,
)

RUBY = vectors.load("ruby-resque/g_resque_scheduler")
PHP = vectors.load("php-resque-v1.3.6/g_php_scheduler")


def normalised(snapshot: dict) -> dict:
    """normalise_state, with zset members and scores normalised too (our scores are floats)."""
    out = vectors.normalise_state(snapshot)
    for entry in out.values():
        if entry["type"] == "zset":
            entry["value"] = [[vectors.normalise(m), vectors.normalise(str(int(float(s))))] for m, s in entry["value"]]
    return out


def ruby_remove_delayed(r, item: str) -> int:
    """resque-scheduler's remove_delayed: SMEMBERS timestamps:<item>, LREM each bucket, SREM."""
    removed = 0
    for member in r.smembers(f"resque:timestamps:{item}"):
        removed += r.lrem(f"resque:{member.decode()}", 0, item)
    r.delete(f"resque:timestamps:{item}")
    return removed


def test_layout_matches_resque_scheduler_byte_for_byte(resque, r):
    now = time.time()
    enqueue_at(resque, now + 60, "default", "SomeJob", 1, "two", {"k": "v"}, shape="ruby")
    for name in ("at120", "at120-b", "at120"):
        enqueue_at(resque, now + 120, "default", "SomeJob", name, shape="ruby")
    enqueue_at(resque, now + 180, "other", "PHP_Job", {"name": "x", "n": 1}, shape="ruby")
    enqueue_at(resque, now - 10, "default", "SomeJob", "past", shape="ruby")  # past: straight to the queue
    enqueue_in(resque, 2, "default", "SomeJob", "soon", shape="ruby")
    ours = normalised(vectors.dump(r))
    theirs = normalised(vectors.state(RUBY, "after_schedule"))
    assert ours == theirs
    assert count_delayed(resque) == (4, 6)  # the vector's delayed_queue_schedule_size / count_all_scheduled_jobs


def test_tracked_job_keeps_a_ruby_exact_item_and_waits_with_its_id(resque, r):
    job_id = enqueue_in(resque, 60, "other", "PHP_Job", {"name": "x", "n": 1})
    assert resque.status(job_id).status == 1
    [member] = r.zrange("resque:delayed_queue_schedule", 0, -1)
    item = vectors.state(RUBY, "after_schedule")["resque:delayed:1795323698"]["value"][0]
    assert r.lrange(f"resque:delayed:{member.decode()}", 0, -1) == [item.encode()]
    assert r.smembers(f"resque:timestamps:{item}") == {b"delayed:" + member}
    [job] = list(iter_delayed(resque))
    assert job.job_id == job_id and job.queue == "other" and job.args == [{"name": "x", "n": 1}]
    assert list(job.payload) == ["class", "args", "id", "prefix", "queue_time"]
    # Ruby's remove_delayed finds the tracked job by its bytes.
    assert ruby_remove_delayed(r, item) == 1
    move_due(resque, now=time.time() + 120)
    assert not r.keys("resque:delayed*") and not r.keys("resque:pyresque:*") and not r.exists("resque:queue:other")


def test_move_pushes_the_same_id_and_prefix_and_leaves_the_status(resque, r):
    first = enqueue_in(resque, 30, "default", "PHP_Job", {"n": 1}, status_prefix="tenant")
    second = enqueue_in(resque, 30, "default", "PHP_Job", {"n": 1}, status_prefix="tenant")  # an identical item
    untracked = enqueue_in(resque, 30, "default", "PHP_Job", {"n": 1}, track=False)
    enqueue_in(resque, 30, "default", "PHP_Job", {"n": 1}, shape="ruby")
    r.set(f"resque:job:tenant_{first}:status", '{"status":1,"updated":1,"started":1,"result":null}')
    before = time.time()
    result = move_due(resque, now=time.time() + 31)
    assert (result.moved, result.failed) == (4, 0)
    pushed = [json.loads(item) for item in r.lrange("resque:queue:default", 0, -1)]
    assert [p.get("id") for p in pushed] == [first, second, untracked, None]
    assert [p.get("prefix") for p in pushed] == ["tenant", "tenant", "", None]
    assert all(p["queue_time"] >= before for p in pushed[:3])
    assert pushed[3] == {"class": "PHP_Job", "args": [{"n": 1}]}
    assert r.get(f"resque:job:tenant_{first}:status") == b'{"status":1,"updated":1,"started":1,"result":null}'
    assert resque.status(second, "tenant").status == 1 and resque.status(untracked) is None
    assert r.smembers("resque:queues") == {b"default"}
    assert not r.keys("resque:delayed*") and not r.keys("resque:timestamps:*") and not r.keys("resque:pyresque:*")


def test_nothing_moves_before_its_second(resque, r):
    now = time.time()
    enqueue_at(resque, now + 1.5, "default", "SomeJob", 1)
    assert move_due(resque, now=now + 1.4).moved == 0
    assert move_due(resque, now=now + 2.6).moved == 1


def test_items_written_by_ruby_and_php_schedulers_are_moved_as_ruby_does(resque, r):
    vectors.load_state(r, vectors.state(RUBY, "after_schedule"))
    vectors.load_state(r, {k: v for k, v in vectors.state(PHP, "after_schedule").items() if k != "resque:queue:default"})
    result = move_due(resque, now=1795323700)
    assert (result.moved, result.failed) == (10, 0)
    queue = [item.decode() for item in r.lrange("resque:queue:default", 0, -1)]
    ruby_past, ruby_soon = vectors.state(RUBY, "after_scheduler_daemon")["resque:queue:default"]["value"]
    # Oldest bucket first; each item byte for byte as resque-scheduler pushes it: {"class","args"}.
    assert queue == [ruby_past, '{"class":"PHP_Job","args":[{"name":"past"}]}', '{"class":"PHP_Job","args":[{"name":"in60"}]}',
                     '{"class":"PHP_Job","args":[{"name":"at120"}]}', '{"class":"PHP_Job","args":[{"name":"at120-b"}]}',
                     ruby_soon, '{"class":"SomeJob","args":[1,"two",{"k":"v"}]}', '{"class":"SomeJob","args":["at120"]}',
                     '{"class":"SomeJob","args":["at120-b"]}', '{"class":"SomeJob","args":["at120"]}']
    assert r.lrange("resque:queue:other", 0, -1) == [b'{"class":"PHP_Job","args":[{"name":"x","n":1}]}']
    assert r.smembers("resque:queues") == {b"default", b"other"}
    assert not r.keys("resque:delayed*") and not r.keys("resque:timestamps:*")


@pytest.mark.parametrize("item, reason", [
    (b"not json at all", "payload is not JSON"),
    (b'{"class":"SomeJob","args":[1]}', "no 'queue' string"),
    (b'{"args":[1],"queue":"default"}', "no 'class' string"),
    (b'\xff{"class":"X"}', "not UTF-8"),
])
def test_a_bad_delayed_item_goes_to_failed_with_its_raw_text(resque, r, item, reason):
    enqueue_at(resque, time.time() + 5, "default", "SomeJob", "before", shape="ruby")
    [member] = r.zrange("resque:delayed_queue_schedule", 0, -1)
    r.rpush(b"resque:delayed:" + member, item)
    enqueue_at(resque, time.time() + 5, "default", "SomeJob", "after", shape="ruby")
    result = move_due(resque, now=time.time() + 10, worker="vm:1:scheduler")
    assert (result.moved, result.failed) == (2, 1)
    assert r.llen("resque:queue:default") == 2 and r.get("resque:stat:failed") == b"1"
    record = json.loads(r.lindex("resque:failed", 0))
    assert list(record) == ["failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"]
    assert record["exception"] == "pyresque.InvalidPayload" and reason in record["error"]
    assert record["payload"]["raw"] == item.decode("utf-8", "backslashreplace") and record["worker"] == "vm:1:scheduler"
    assert not r.exists(b"resque:delayed:" + member)


def test_a_bucket_that_changed_after_reading_is_not_moved(resque, r):
    enqueue_at(resque, time.time() + 5, "default", "SomeJob", 1, shape="ruby")
    store = store_for(resque)
    [member] = store.timestamps()
    items = store.bucket_head(member, 100)
    r.lpop(b"resque:delayed:" + member)  # php's scheduler pops it meanwhile
    r.rpush(b"resque:delayed:" + member, b'{"class":"SomeJob","args":[2],"queue":"default"}')
    assert store.move_batch(member, items, [], [("q", "default", '{"class":"SomeJob","args":[1]}')]) == 0
    assert not r.exists("resque:queue:default") and r.llen(b"resque:delayed:" + member) == 1
    assert move_due(resque, now=time.time() + 10).moved == 1
    assert r.lrange("resque:queue:default", 0, -1) == [b'{"class":"SomeJob","args":[2]}']


def test_big_buckets_move_in_batches_without_loss(resque, r):
    when = time.time() + 5
    ids = {enqueue_at(resque, when, "default", "NoopJob", i % 7) for i in range(250)}
    result = move_due(resque, now=when + 1, batch=40)
    assert result.moved == 250 and r.llen("resque:queue:default") == 250
    assert {json.loads(item)["id"] for item in r.lrange("resque:queue:default", 0, -1)} == ids
    assert not r.keys("resque:delayed*") and not r.keys("resque:pyresque:*")


def test_delay_payload_keeps_the_payload_and_its_status(resque, r):
    php = {"class": "PHP_Job", "args": [{"a": "/x"}], "id": "a" * 32, "prefix": "", "queue_time": 1.5}
    r.set(f"resque:job:{'a' * 32}:status", "kept as the caller set it")
    delay_payload(resque, time.time() + 5, "retry", php)
    delay_payload(resque, time.time() + 5, "retry", {"class": "SomeJob", "args": [1]})
    [member] = r.zrange("resque:delayed_queue_schedule", 0, -1)
    assert r.lrange(b"resque:delayed:" + member, 0, -1) == [
        b'{"class":"PHP_Job","args":[{"a":"/x"}],"queue":"retry"}', b'{"class":"SomeJob","args":[1],"queue":"retry"}']
    move_due(resque, now=time.time() + 10)
    moved = [json.loads(item) for item in r.lrange("resque:queue:retry", 0, -1)]
    assert moved[0]["id"] == "a" * 32 and moved[0]["queue_time"] > 1.5 and moved[0]["args"] == [{"a": "/x"}]
    assert moved[1] == {"class": "SomeJob", "args": [1]}
    assert r.get(f"resque:job:{'a' * 32}:status") == b"kept as the caller set it"
    delay_payload(resque, time.time() - 1, "now", dict(php))  # due already: pushed at once, id kept
    assert json.loads(r.lindex("resque:queue:now", 0))["id"] == "a" * 32


def test_delay_payload_keeps_extra_keys_of_a_ruby_payload(resque, r):
    """A retried Ruby-shape job carries its attempt count, which the bare item cannot."""
    retried = {"class": "SomeJob", "args": [1], "attempt": 2, "retry_history": [{"attempt": 1, "error": "x"}]}
    delay_payload(resque, time.time() + 5, "default", retried)
    [member] = r.zrange("resque:delayed_queue_schedule", 0, -1)
    assert r.lrange(b"resque:delayed:" + member, 0, -1) == [b'{"class":"SomeJob","args":[1],"queue":"default"}']
    move_due(resque, now=time.time() + 10)
    assert json.loads(r.lindex("resque:queue:default", 0)) == retried


def test_bad_input_is_refused_with_a_clear_error(resque, r):
    with pytest.raises(InvalidDelay, match=">= 0"):
        enqueue_in(resque, -1, "default", "SomeJob")
    with pytest.raises(InvalidDelay, match="finite"):
        enqueue_at(resque, float("nan"), "default", "SomeJob")
    with pytest.raises(InvalidDelay, match="number"):
        enqueue_in(resque, "5", "default", "SomeJob")
    with pytest.raises(InvalidQueueName):
        enqueue_in(resque, 5, "a,b", "SomeJob")
    with pytest.raises(InvalidPayload):
        enqueue_in(resque, 5, "default", "SomeJob", object())
    with pytest.raises(InvalidPayload):
        delay_payload(resque, time.time() + 5, "default", {"args": []})
    assert r.keys("*") == []


def test_past_time_enqueues_now_with_the_id_tracked(resque, r):
    job_id = enqueue_at(resque, time.time() - 3600, "default", "PHP_Job", {"n": 1})
    assert json.loads(r.lindex("resque:queue:default", 0))["id"] == job_id
    assert resque.status(job_id).status == 1 and not r.exists("resque:delayed_queue_schedule")


def test_remove_by_class_args_and_id(resque, r):
    keep = enqueue_in(resque, 60, "default", "PHP_Job", {"n": 1})
    gone = enqueue_in(resque, 60, "default", "PHP_Job", {"n": 1})
    enqueue_in(resque, 90, "default", "SomeJob", 1, shape="ruby")
    enqueue_in(resque, 90, "default", "SomeJob", 2, shape="ruby")
    r.rpush("resque:delayed:1795323219", '{"class":"SomeJob","args":[1],"queue":"default"}')  # php-written: no timestamps set
    r.zadd("resque:delayed_queue_schedule", {"1795323219": 1795323219})
    assert remove_delayed(resque, job_id=gone) == 1
    assert resque.status(gone) is None and resque.status(keep).status == 1
    assert [job.job_id for job in iter_delayed(resque) if job.job_class == "PHP_Job"] == [keep]
    assert remove_delayed(resque, job_class="SomeJob", args=[1]) == 2
    assert [job.args for job in iter_delayed(resque) if job.job_class == "SomeJob"] == [[2]]
    assert not r.exists('resque:timestamps:{"class":"SomeJob","args":[1],"queue":"default"}')
    assert not r.exists("resque:delayed:1795323219") and count_delayed(resque) == (2, 2)
    assert remove_delayed(resque, job_class="PHP_Job") == 1 and resque.status(keep) is None
    assert count_delayed(resque) == (1, 1)


def test_prefix_is_applied_to_every_key(redis_url, r):
    resque = Resque(redis_url, prefix="app")
    job_id = enqueue_in(resque, 5, "q", "PHP_Job", {"n": 1})
    assert {k.decode().split(":")[0] for k in r.keys("*")} == {"app"}
    move_due(resque, now=time.time() + 10)
    assert json.loads(r.lindex("app:queue:q", 0))["id"] == job_id


def test_a_bucket_that_is_not_a_list_is_skipped_and_the_others_move(resque, r):
    r.set("resque:delayed:1795323000", "not a list")
    r.zadd("resque:delayed_queue_schedule", {"1795323000": 1795323000})
    enqueue_at(resque, time.time() + 1, "default", "SomeJob", 1, shape="ruby")
    result = move_due(resque, now=time.time() + 5)
    assert (result.moved, result.skipped) == (1, ["1795323000"]) and r.llen("resque:queue:default") == 1
    assert r.get("resque:delayed:1795323000") == b"not a list"  # left for a human, not lost


@pytest.mark.parametrize("side", [b"[" * 1010, b'{"a":' * 3000, b'["' + b"[" * 1010 + b'"]', b"\xed\xa0\x80",
                                  b'[NaN]', b'["{\\"class\\":\\"SomeJob\\",\\"args\\":[1e999]}"]'],
                         ids=["deep-list", "deep-object", "deep-entry", "surrogate-bytes", "nan", "overflow-entry"])
def test_a_hostile_side_payload_does_not_stop_the_move(resque, r, side):
    """Found by tests/test_fuzz_redis_content.py: a side hash value nested past Python's recursion
    limit raised RecursionError in every scheduler pass, so no delayed job moved again."""
    enqueue_at(resque, time.time() + 1, "default", "SomeJob", 1)  # tracked: has a side payload
    [member] = r.zrange("resque:delayed_queue_schedule", 0, -1)
    [item] = r.lrange(b"resque:delayed:" + member, 0, -1)
    r.hset(b"resque:pyresque:delayed:" + member, item, side)
    result = move_due(resque, now=time.time() + 5)
    assert result.moved == 1 and json.loads(r.lindex("resque:queue:default", 0)) == {"class": "SomeJob", "args": [1]}
    assert not r.exists(b"resque:delayed:" + member)
