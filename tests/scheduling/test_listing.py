"""``schedule list`` shows what the running scheduler loaded (its ``--schedule`` file too), with
each schedule's source and next run; a dead scheduler's copy expires with its lock."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timezone

from pyresque import Resque
from pyresque.scheduling.listing import list_schedules
from pyresque.scheduling.schedules import next_run, parse_schedule, set_schedule
from support import LOCK, SchedulerProcess, cli, holder_pid, wait_for

LOADED = "resque:pyresque_scheduler:loaded"
NOW = datetime(2026, 12, 6, 12, 0, 30, tzinfo=timezone.utc).timestamp()


def test_next_run_follows_the_scheduler_rules():
    cron = parse_schedule("c", {"class": "X", "queue": "q", "cron": "0 5 * * * UTC"})
    assert next_run(cron, None, None, NOW) == datetime(2026, 12, 7, 5, tzinfo=timezone.utc).timestamp()
    every = parse_schedule("e", {"class": "X", "queue": "q", "every": "10m"})
    assert next_run(every, None, NOW - 60, NOW) == NOW + 540  # counted from when the scheduler first saw it
    assert next_run(every, "2026-12-06 11:55:00 +0000", NOW - 3600, NOW) == NOW - 330 + 600
    assert next_run(every, None, None, NOW) == NOW + 600  # no scheduler runs it: as if one started now
    manual = parse_schedule("m", {"class": "X", "queue": "q"})
    assert next_run(manual, None, None, NOW) is None


def test_the_running_schedulers_schedules_are_listed_with_source_and_next_run(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    schedule_file = tmp_path / "schedule.json"
    schedule_file.write_text(json.dumps({"hourly": {"class": "Hourly", "queue": "low", "every": "1h"},
                                         "early": {"class": "Early", "queue": "low", "cron": "0 5 * * * UTC"}}))
    set_schedule(resque, "ping", {"class": "Ping", "queue": "q", "every": "30s"})
    assert [row.name for row in list_schedules(resque)] == ["ping"]  # no scheduler: the persisted one only
    with SchedulerProcess(redis_url, tmp_path, "--schedule", str(schedule_file), "--lock-timeout", "5") as scheduler:
        wait_for(lambda: r.hlen(LOADED) == 3, what=f"the loaded schedules\n{scheduler.log()}")
        assert 0 < r.ttl(LOADED) <= 5
        done = cli(redis_url, "schedule", "list", "--json")
        assert done.returncode == 0, done.stderr
        rows = {row["name"]: row for row in map(json.loads, done.stdout.splitlines())}
        holder = r.get(LOCK).decode()
        assert set(rows) == {"ping", "hourly", "early"}
        assert rows["ping"]["source"] == "redis" and rows["ping"]["loaded_by"] == holder
        assert rows["hourly"]["source"] == "file" and rows["hourly"]["file"] == str(schedule_file)
        assert rows["hourly"]["loaded_by"] == holder and rows["hourly"]["config"]["class"] == "Hourly"
        anchor = json.loads(r.hget(LOADED, "hourly"))["anchor"]
        assert rows["hourly"]["next_run"] == anchor + 3600
        early = datetime.fromtimestamp(rows["early"]["next_run"], timezone.utc)
        assert (early.hour, early.minute, early.second) == (5, 0, 0)
        text = cli(redis_url, "schedule", "list").stdout
        line = next(line for line in text.splitlines() if line.startswith("hourly"))
        assert f"(file {schedule_file})" in line and "next run " in line and f"[running: scheduler {holder}]" in line
        log = scheduler.log()
        for name in ("hourly", "early", "ping"):
            assert any(f"schedule={name}" in entry and "next_run=" in entry for entry in log.splitlines()), log
    assert not r.exists(LOADED)  # stopped cleanly: nobody runs them now
    assert [row.name for row in list_schedules(resque)] == ["ping"]


def test_a_dead_schedulers_copy_expires_with_its_lock(redis_url, r, tmp_path):
    schedule_file = tmp_path / "schedule.json"
    schedule_file.write_text(json.dumps({"hourly": {"class": "Hourly", "queue": "low", "every": "1h"}}))
    scheduler = SchedulerProcess(redis_url, tmp_path, "--schedule", str(schedule_file), "--lock-timeout", "2").start()
    try:
        wait_for(lambda: r.exists(LOADED) and holder_pid(r) == scheduler.pid, what=f"loaded\n{scheduler.log()}")
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait()
        assert r.exists(LOADED)
        wait_for(lambda: not r.exists(LOADED), timeout=10, what="the dead scheduler's schedules to expire")
    finally:
        scheduler.stop()


def test_an_unreadable_published_entry_is_a_broken_row_not_a_crash(redis_url, r):
    r.hset(LOADED, "odd", b"\xff not json")
    done = cli(redis_url, "schedule", "list")
    assert done.returncode == 0 and done.stdout.startswith("odd  (broken: loaded schedule is not UTF-8")
    r.delete(LOADED)
    r.set(LOADED, "a string")
    done = cli(redis_url, "schedule", "list")
    assert done.returncode == 0 and "is a string: the running scheduler's schedules cannot be read" in done.stdout
