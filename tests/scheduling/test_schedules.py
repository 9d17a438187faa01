"""Recurring schedules: resque-scheduler's config and storage, cron/every ticks, the master lock,
and firing each tick once (in-process; the real processes are in test_scheduler.py)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from pyresque.scheduling.scheduler import Scheduler, SchedulerOptions
from pyresque.scheduling.schedules import (
    Cron,
    InvalidSchedule,
    config_for,
    load_schedule_file,
    parse_duration,
    parse_schedule,
    remove_schedule,
    set_schedule,
    stored_schedules,
)
from pyresque.store.scheduler_store import SchedulerStore

LOCK = "resque:resque:resque_scheduler_master_lock"


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), ("1.5s", 1.5),
    ("500ms", 0.5), ("1M", 30 * 86400), (45, 45),
])
def test_rufus_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "-5", "1h 30m", None, True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_cron_five_fields_six_with_seconds_first_and_a_zone():
    assert Cron.parse("*/15 * * * *").next_after(utc(2026, 1, 1, 0, 7)) == utc(2026, 1, 1, 0, 15)
    assert Cron.parse("*/10 * * * * *").next_after(utc(2026, 1, 1, 0, 0, 3)) == utc(2026, 1, 1, 0, 0, 10)
    stockholm = Cron.parse("0 5 * * * Europe/Stockholm")
    assert stockholm.next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 4)  # 05:00 CET
    assert stockholm.next_after(utc(2026, 7, 1)) == utc(2026, 7, 1, 3)  # 05:00 CEST
    assert Cron.parse("0 5 * * * UTC").latest_at_or_before(utc(2026, 1, 3, 5)) == utc(2026, 1, 3, 5)
    assert Cron.parse("0 5 * * * UTC").latest_at_or_before(utc(2026, 1, 3, 4, 59)) == utc(2026, 1, 2, 5)
    assert Cron.parse("0 0 29 2 * UTC").next_after(utc(2026, 3, 1)) == utc(2028, 2, 29)  # rare, not never


@pytest.mark.parametrize("line, message", [
    ("61 * * * *", "not a valid cron expression"),
    ("* * *", "needs 5 fields"),
    ("0 5 * * * Mars/Olympus_Mons", "unknown time zone"),
    ("every day", "needs 5 fields"),
    ("0 0 30 2 *", "never fires: no time matches it within 5 years"),  # February 30th
    ("0 0 0 31 4 * UTC", "never fires"),  # April 31st, six fields and a zone
])
def test_bad_cron_lines_are_named_in_the_error(line, message):
    with pytest.raises(InvalidSchedule, match=message) as info:
        parse_schedule("nightly", {"class": "Report", "queue": "low", "cron": line})
    assert "schedule 'nightly'" in str(info.value)


@pytest.mark.parametrize("config, message", [
    ({"class": "X"}, "'queue' is required"),
    ({"class": "X", "queue": "a,b", "every": "1m"}, "invalid queue name"),
    ({"class": "X", "queue": "q", "every": "1m", "cron": "* * * * *"}, "not both"),
    ({"class": "X", "queue": "q", "every": "0.5s"}, "at least 1 second"),
    ({"class": "X", "queue": "q", "every": "often"}, "every: 'often' is not a duration"),
    ({"class": "", "queue": "q", "every": "1m"}, "'class' must be"),
    ({"class": "X", "queue": "q", "every": "1m", "args": [float("nan")]}, "args are not JSON a worker can read"),
    ({"class": "X", "queue": "q", "every": "1m", "args": ["\ud800"]}, "lone UTF-16 surrogate"),
    ({"class": "X", "queue": "q", "every": "1m", "args": [json.loads("[" * 300 + "]" * 300)]}, "nests deeper than 200"),
    ({"class": "\ud800", "queue": "q", "every": "1m"}, "lone UTF-16 surrogate"),
])
def test_bad_configs(config, message):
    with pytest.raises(InvalidSchedule, match=message):
        parse_schedule("s", config)


def test_config_follows_resque_scheduler_rules():
    assert parse_schedule("OkJob", {"queue": "q", "every": "1m"}).job_class == "OkJob"  # class defaults to the name
    assert parse_schedule("s", {"class": "X", "queue": "q", "every": "1m", "args": {"a": 1}}).args == [{"a": 1}]
    assert parse_schedule("s", {"class": "X", "queue": "q", "every": "1m", "args": 7}).args == [7]
    assert parse_schedule("s", {"class": "X", "queue": "q", "every": "1m", "args": [1, 2]}).args == [1, 2]
    s = parse_schedule("s", {"class": "X", "queue": "q", "every": ["1h", {"first_in": "10s"}]})
    assert (s.every, s.first_in, s.next_tick(None, 1000.0)) == (3600, 10, 1010.0)
    assert not parse_schedule("manual", {"class": "X", "queue": "q"}).recurring  # "Queue now" only, as Ruby


def test_missed_ticks_collapse_into_one():
    every = parse_schedule("s", {"class": "X", "queue": "q", "every": "2s"})
    now = 10_000.0
    due = every.next_tick(now - 3600, anchor=0)
    assert due == now - 3598 and every.latest_due(due, now) == now  # one fire; the interval restarts
    assert every.latest_due(now - 1, now) == now - 1  # on time: keep the phase
    cron = parse_schedule("s", {"class": "X", "queue": "q", "cron": "*/5 * * * * UTC"})
    now = utc(2026, 1, 1, 12, 7, 30)
    due = cron.next_tick(utc(2026, 1, 1, 10, 0), anchor=0)
    assert due == utc(2026, 1, 1, 10, 5) and cron.latest_due(due, now) == utc(2026, 1, 1, 12, 5)
    assert cron.next_tick(cron.latest_due(due, now), anchor=0) == utc(2026, 1, 1, 12, 10)


def test_persisted_schedules_are_stored_as_resque_scheduler_stores_them(resque, r):
    set_schedule(resque, "every_2s", {"class": "OkJob", "every": "2s", "queue": "sq", "args": [7], "persist": True})
    assert r.hget("resque:persistent_schedules", "every_2s") == b'{"class":"OkJob","every":"2s","queue":"sq","args":[7]}'
    assert r.smembers("resque:schedules_changed") == {b"every_2s"}
    set_schedule(resque, "nightly", config_for("Report", "low", cron="0 5 * * *", description="the report"))
    assert json.loads(r.hget("resque:persistent_schedules", "nightly")) == \
        {"class": "Report", "cron": "0 5 * * *", "queue": "low", "description": "the report"}
    r.hset("resque:persistent_schedules", "from_ruby", '{"class":"RubyOnly","every":"1m"}')  # no queue
    listed = {s.name: s for s in stored_schedules(resque)}
    assert listed["every_2s"].schedule.args == [7] and "'queue' is required" in listed["from_ruby"].error
    with pytest.raises(InvalidSchedule):
        set_schedule(resque, "bad", {"class": "X", "queue": "q", "cron": "nope"})
    with pytest.raises(InvalidSchedule, match="give 'cron' or 'every'"):
        set_schedule(resque, "manual", {"class": "X", "queue": "q"})
    assert remove_schedule(resque, "nightly") and not remove_schedule(resque, "nightly")
    assert not r.hexists("resque:persistent_schedules", "nightly") and r.sismember("resque:schedules_changed", "nightly")


def test_schedule_files(tmp_path):
    good = tmp_path / "schedule.json"
    good.write_text(json.dumps({"ping": {"class": "Ping", "queue": "q", "every": "30s"}}))
    assert load_schedule_file(good)["ping"].every == 30
    for name, text, message in [("bad.json", "{", "not valid JSON"), ("list.json", "[]", "mapping"),
                                ("missing.json", None, "cannot read")]:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(InvalidSchedule, match=message):
            load_schedule_file(path)
    yml = tmp_path / "schedule.yml"
    yml.write_text("ping:\n  class: Ping\n  queue: q\n  every: 30s\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(InvalidSchedule, match="PyYAML"):
            load_schedule_file(yml)
    else:
        assert load_schedule_file(yml)["ping"].every == 30


def test_master_lock_is_resque_schedulers(resque, r):
    store = SchedulerStore(resque.redis, resque.keys)
    assert store.acquire_lock("vm:1", 180) and r.get(LOCK) == b"vm:1" and r.ttl(LOCK) == 180
    assert not store.acquire_lock("vm:2", 180) and not store.refresh_lock("vm:2", 180)
    assert not store.release_lock("vm:2") and r.get(LOCK) == b"vm:1"  # release only when ours
    r.expire(LOCK, 5)
    assert store.refresh_lock("vm:1", 180) and r.ttl(LOCK) == 180
    assert store.release_lock("vm:1") and r.get(LOCK) is None


def test_two_masters_at_once_still_fire_a_tick_once(resque, r):
    """A stalled master whose lock expired may still run a pass: the tick's compare-and-set wins once."""
    set_schedule(resque, "ping", {"class": "Ping", "queue": "q", "every": "10s"})
    r.hset("resque:delayed:last_enqueued_at", "ping", "2026-01-01 00:00:00 +0000")
    a = Scheduler(resque, SchedulerOptions(lock_ttl=5), hostname="a")
    b = Scheduler(resque, SchedulerOptions(lock_ttl=5), hostname="b")
    a.reload_schedules()
    b.reload_schedules()
    now = time.time()
    assert a.fire_due(now) + b.fire_due(now) == 1 and r.llen("resque:queue:q") == 1
    assert a.fire_due(now + 1) + b.fire_due(now + 1) == 0  # the next tick is 10 s later
    assert a.fire_due(now + 11) + b.fire_due(now + 11) == 1 and r.llen("resque:queue:q") == 2


def test_only_the_master_moves_and_fires(resque, r):
    from pyresque.scheduling.delayed import enqueue_at

    r.set(LOCK, "rubyhost:1", ex=60)
    enqueue_at(resque, time.time() + 1, "default", "NoopJob", 1)
    set_schedule(resque, "ping", {"class": "Ping", "queue": "q", "every": "1s"})
    ours = Scheduler(resque, SchedulerOptions(lock_ttl=5), hostname="vm")
    ours.tick(now=time.time() + 5)
    assert not ours.master and r.llen("resque:queue:default") == 0 and r.llen("resque:queue:q") == 0
    r.delete(LOCK)
    ours.tick(now=time.time() + 5)
    assert ours.master and r.get(LOCK) == f"vm:{ours.pid}".encode()
    assert r.llen("resque:queue:default") == 1 and r.llen("resque:queue:q") == 1
    ours.tick(now=time.time() + 10)
    assert r.llen("resque:queue:q") == 2


def test_a_schedule_that_cannot_fire_is_logged_once_and_the_others_fire(resque, r):
    from structlog.testing import capture_logs

    from pyresque.scheduling.schedules import Schedule

    set_schedule(resque, "good", {"class": "Ping", "queue": "q", "every": "1s"})
    set_schedule(resque, "to_a_hash", {"class": "Ping", "queue": "evil", "every": "1s"})
    r.hset("resque:queue:evil", "k", "v")
    ours = Scheduler(resque, SchedulerOptions(lock_ttl=5), hostname="vm")
    with capture_logs() as logs:
        ours.tick()
        # Loaded before a check existed, or a croniter that gives up later: its errors stay its own.
        ours.schedules = {"never": Schedule("never", "Ping", "q", [], Cron("0 0 30 2 *", False, None)), **ours.schedules}
        for step in range(1, 4):
            ours.tick(now=time.time() + 2 * step)
    assert r.llen("resque:queue:q") == 3 and r.type("resque:queue:evil") == b"hash"
    errors = [(log["event"], log.get("schedule"), log.get("problem")) for log in logs if log["log_level"] == "error"]
    assert errors == [("schedule cannot fire", "never", None),
                      ("a key in Redis holds the wrong type, skipped", None,
                       "resque:queue:evil is a hash, not a list: schedule 'to_a_hash' cannot fire")]
