"""Hostile or broken content in Redis, written by a neighbour: a real scheduler keeps scheduling.

Each case plants what another program could write (an overdue delayed item or side payload that
is not a job, a key of the wrong type), starts a real ``pyresque scheduler``, and checks that the
bad item fails alone (failed list, with a reason that names what was wrong, and its status FAILED
when it was tracked), that the items and buckets after it move, that a recurring schedule still
fires, and that a broken key is logged once, not once per pass.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from pyresque import Resque
from pyresque.scheduling.delayed import enqueue_at
from pyresque.wire import payload as wire
from support import SchedulerProcess, wait_for

DEEP = "[" * 990 + "]" * 990
GOOD = b'{"class":"NoopJob","args":["same bucket"],"queue":"default"}'
JOB_ID = "d" * 32


def failures(r) -> list[dict]:
    return [json.loads(raw) for raw in r.lrange("resque:failed", 0, -1)]


def plant_overdue(r, *items: bytes, side: dict[bytes, list[str]] | None = None, ts: int | None = None) -> int:
    """An overdue bucket as resque-scheduler lays it out, plus pyresque's side hash if given."""
    ts = ts or int(time.time()) - 60
    r.zadd("resque:delayed_queue_schedule", {str(ts): ts})
    for item in items:
        r.rpush(f"resque:delayed:{ts}", item)
        r.sadd(b"resque:timestamps:" + item, f"delayed:{ts}")
    for item, entries in (side or {}).items():
        r.hset(f"resque:pyresque_delayed:{ts}", item, json.dumps(entries))
    return ts


def plant_recurring(r) -> None:
    r.hset("resque:persistent_schedules", "tick", '{"class":"NoopJob","queue":"recurring","every":"1s"}')


def track(r, job_id: str = JOB_ID) -> None:
    r.set(f"resque:job:{job_id}:status", wire.encode_status(wire.WAITING, int(time.time()), int(time.time())))


def side_entry(args: str) -> str:
    return '{"class":"NoopJob","args":' + args + ',"id":"' + JOB_ID + '","prefix":"","queue_time":1}'


ITEM_CASES = {  # id: (item, side entry or None, reason)
    "nan": (b'{"class":"X","args":[NaN],"queue":"default"}', None, "NaN is not JSON"),
    "surrogate-escape": (b'{"class":"X","args":["\\ud800"],"queue":"default"}', None, "lone UTF-16 surrogate"),
    "surrogate-bytes": (b'{"class":"X","args":["\xed\xa0\x80"],"queue":"default"}', None, "not UTF-8"),
    "deep": (b'{"class":"X","args":[' + DEEP.encode() + b'],"queue":"default"}', None, "nests deeper than 200"),
    "tracked-nan": (b'{"class":"NoopJob","args":[NaN],"queue":"default"}', side_entry("[NaN]"), "NaN is not JSON"),
    "side-nan": (b'{"class":"NoopJob","args":[1],"queue":"default"}', side_entry("[NaN]"), "NaN is not JSON"),
    "side-surrogate": (b'{"class":"NoopJob","args":[1],"queue":"default"}', side_entry('["\\ud800"]'),
                       "lone UTF-16 surrogate"),
    "side-deep": (b'{"class":"NoopJob","args":[1],"queue":"default"}', side_entry(f"[{DEEP}]"), "nests deeper than 200"),
}


@pytest.mark.parametrize("item, entry, reason", ITEM_CASES.values(), ids=ITEM_CASES.keys())
def test_a_bad_overdue_item_fails_alone_and_everything_after_it_moves(redis_url, r, tmp_path, item, entry, reason):
    ts = plant_overdue(r, item, GOOD, side={item: [entry]} if entry else None)
    if entry:
        track(r)
    later = enqueue_at(Resque(redis_url), time.time() + 0.5, "default", "NoopJob", "later bucket")
    plant_recurring(r)
    with SchedulerProcess(redis_url, tmp_path) as scheduler:
        wait_for(lambda: r.llen("resque:queue:default") == 2 and r.llen("resque:queue:recurring") >= 1, timeout=10,
                 what=f"the good items and the recurring tick\n{scheduler.log()}")
        assert scheduler.process.poll() is None
    pushed = [json.loads(raw) for raw in r.lrange("resque:queue:default", 0, -1)]
    assert pushed[0] == {"class": "NoopJob", "args": ["same bucket"]} and pushed[1]["id"] == later
    [record] = failures(r)
    assert record["exception"] == "pyresque.InvalidPayload" and reason in record["error"], record
    assert f"delayed:{ts}" in record["error"] and record["queue"] == "default"
    if entry:  # a tracked job: its id is in the record and its status is final, not WAITING forever
        assert record["payload"]["id"] == JOB_ID and Resque(redis_url).status(JOB_ID).status == wire.FAILED
    # The bucket, its side hash and every timestamps: entry went with the move (the raw bytes' one too).
    assert not r.exists(f"resque:delayed:{ts}", f"resque:pyresque_delayed:{ts}") and not r.keys("resque:timestamps:*")
    assert r.zcard("resque:delayed_queue_schedule") == 0
    assert "scheduler pass failed" not in scheduler.log()


def test_a_bucket_named_by_bytes_that_are_not_utf8_moves_and_the_pass_ends(redis_url, r, tmp_path):
    # Before: the bucket key was built from the member's text (U+FFFD for the bad bytes), so its
    # ZREM never matched and the pass looped on it forever: no job moved, no tick fired again.
    member = b"\xed\xa0\x80"
    r.zadd("resque:delayed_queue_schedule", {member: 1})
    r.rpush(b"resque:delayed:" + member, GOOD)
    plant_recurring(r)
    with SchedulerProcess(redis_url, tmp_path) as scheduler:
        wait_for(lambda: r.llen("resque:queue:default") == 1 and r.llen("resque:queue:recurring") >= 2, timeout=10,
                 what=f"the move and two ticks\n{scheduler.log()}")
    assert r.zcard("resque:delayed_queue_schedule") == 0 and not r.exists(b"resque:delayed:" + member)


WRONG_TYPES = {  # id: (plant, what the log says once)
    "bucket-string": (lambda r, ts: r.set(f"resque:delayed:{ts}", "oops"), "delayed:{ts} is a string"),
    "bucket-hash": (lambda r, ts: r.hset(f"resque:delayed:{ts}", "k", "v"), "delayed:{ts} is a hash"),
    "side-hash-string": (lambda r, ts: (plant_overdue(r, GOOD, ts=ts), r.set(f"resque:pyresque_delayed:{ts}", "oops")),
                         "pyresque_delayed:{ts} is a string"),
    "schedule-zset-hash": (lambda r, ts: r.hset("resque:delayed_queue_schedule", "k", "v"),
                           "resque:delayed_queue_schedule is a hash"),
    "schedule-zset-string": (lambda r, ts: r.set("resque:delayed_queue_schedule", "oops"),
                             "resque:delayed_queue_schedule is a string"),
}


@pytest.mark.parametrize("plant, logged", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_key_of_the_wrong_type_is_logged_once_and_the_pass_goes_on(redis_url, r, tmp_path, plant, logged):
    ts = int(time.time()) - 60
    plant(r, ts)
    zset_ok = r.type("resque:delayed_queue_schedule") in (b"zset", b"none")
    if zset_ok:
        r.zadd("resque:delayed_queue_schedule", {str(ts): ts})
        later = enqueue_at(Resque(redis_url), time.time() + 0.3, "default", "NoopJob", "later bucket")
    plant_recurring(r)
    with SchedulerProcess(redis_url, tmp_path) as scheduler:
        wait_for(lambda: r.llen("resque:queue:recurring") >= 2, timeout=10, what=f"two ticks\n{scheduler.log()}")
        if zset_ok:
            wait_for(lambda: any(json.loads(raw).get("id") == later for raw in r.lrange("resque:queue:default", 0, -1)),
                     what=f"the later bucket moved\n{scheduler.log()}")
        assert scheduler.process.poll() is None
    log = scheduler.log()
    assert log.count(logged.format(ts=ts)) == 1, log  # about 20 passes ran: one line, not one per pass
    assert "scheduler pass failed" not in log and "Traceback" not in log


def test_a_job_bound_for_a_queue_that_is_not_a_list_fails_alone(redis_url, r, tmp_path):
    # Before: the move script stopped at the RPUSH after earlier pushes had been made, and never
    # trimmed the bucket: every pass pushed the jobs before it again.
    r.hset("resque:queue:evil", "k", "v")
    resque = Resque(redis_url)
    when = time.time() + 0.3
    first = enqueue_at(resque, when, "default", "NoopJob", "first")
    bad = enqueue_at(resque, when, "evil", "NoopJob", "to a hash")
    last = enqueue_at(resque, when, "default", "NoopJob", "last")
    plant_recurring(r)
    with SchedulerProcess(redis_url, tmp_path) as scheduler:
        wait_for(lambda: r.llen("resque:queue:default") >= 2 and r.llen("resque:queue:recurring") >= 2, timeout=10,
                 what=f"the good jobs and two ticks\n{scheduler.log()}")
    assert [json.loads(raw)["id"] for raw in r.lrange("resque:queue:default", 0, -1)] == [first, last]  # once each
    [record] = failures(r)
    assert record["exception"] == "pyresque.QueueNotAList" and "resque:queue:evil is a hash" in record["error"]
    assert record["payload"]["id"] == bad and resque.status(bad).status == wire.FAILED
    assert r.type("resque:queue:evil") == b"hash" and r.zcard("resque:delayed_queue_schedule") == 0
    assert scheduler.log().count("resque:queue:evil is a hash") == 1


BAD_SCHEDULES = {  # name: (stored config, what the logged error says)
    "nan-args": (b'{"class":"NoopJob","queue":"q","every":"1s","args":[NaN]}', "NaN is not JSON"),
    "not-an-object": (b'[{"class":"NoopJob","queue":"q","every":"1s"}]', "config must be a mapping"),
    "surrogate": (b'{"class":"\\ud800","queue":"q","every":"1s"}', "lone UTF-16 surrogate"),
    "surrogate-bytes": (b'{"class":"NoopJob","queue":"q","every":"1s","args":["\xed\xa0\x80"]}', "not UTF-8"),
    "deep": (b'{"class":"NoopJob","queue":"q","every":"1s","args":[' + DEEP.encode() + b"]}", "nests deeper than 200"),
    "february-30th": (b'{"class":"NoopJob","queue":"q","cron":"0 0 30 2 *"}', "never fires"),
    "not-json": (b"{oops", "is not JSON"),
}


def test_bad_persisted_schedules_are_skipped_once_and_the_others_fire(redis_url, r, tmp_path):
    for name, (raw, _) in BAD_SCHEDULES.items():
        r.hset("resque:persistent_schedules", name, raw)
    r.hset("resque:persistent_schedules", b"name-\xff", b'{"class":"NoopJob","queue":"q","every":"1s"}')
    for name in ("a-first", "m-middle", "z-last"):  # wherever HGETALL puts the bad ones, these fire
        r.hset("resque:persistent_schedules", name, json.dumps({"class": "NoopJob", "queue": name, "every": "1s"}))
    with SchedulerProcess(redis_url, tmp_path) as scheduler:
        wait_for(lambda: all(r.llen(f"resque:queue:{q}") >= 2 for q in ("a-first", "m-middle", "z-last")), timeout=10,
                 what=f"every good schedule firing\n{scheduler.log()}")
        scheduler.process.send_signal(signal.SIGUSR2)  # a reload meets the same bad schedules again
        wait_for(lambda: scheduler.log().count("schedules loaded") == 2, what="the reload")
        assert scheduler.process.poll() is None
    log = scheduler.log()
    for name, (_, error) in BAD_SCHEDULES.items():
        [line] = [line for line in log.splitlines() if f"schedule={name} " in line + " "]  # one error, not one per load
        assert "persisted schedule skipped" in line and error in line, line
    assert log.count("name-\\xff") == 1 and not r.exists("resque:queue:q")
    assert "scheduler pass failed" not in log and "Traceback" not in log
