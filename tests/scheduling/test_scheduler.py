"""The scheduler as real subprocesses: delayed jobs run on time, one master at a time, takeover
after a dead master's lock expires, nothing lost or duplicated, recurring ticks fire once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from pyresque import Resque
from pyresque.scheduling.delayed import enqueue_at
from support import LOCK, SchedulerProcess, WorkerProcess, cli, holder_pid, records, wait_for


def test_a_job_enqueued_in_2s_runs_after_2s_under_a_real_scheduler_and_worker(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with SchedulerProcess(redis_url, tmp_path) as scheduler, WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: holder_pid(r) == scheduler.pid, what=f"the master lock\n{scheduler.log()}")
        before = time.time()
        done = cli(redis_url, "enqueue", "SomeJob", "1", "--in", "2", "--quiet")
        assert done.returncode == 0, done.stderr
        job_id = done.stdout.strip()
        assert resque.status(job_id).status == 1
        ran = wait_for(lambda: records(worker, "ruby_job"), timeout=10, what=f"the job to run\n{scheduler.log()}")[0]
        assert ran["args"] == [1]
        assert 2.0 <= ran["t"] - before < 5.0, ran["t"] - before  # never early; late only by a pass and the CLI's start
        wait_for(lambda: resque.status(job_id).status == 4, what="status complete under the same id")
        assert re.match(r"resque-scheduler-[0-9.]+: (Processing Delayed Items|Schedules Loaded)$", scheduler.title())
    assert scheduler.process.returncode == 0 and r.get(LOCK) is None  # TERM released the lock


def test_two_schedulers_one_master_takeover_and_no_job_lost_or_duplicated(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    first = SchedulerProcess(redis_url, tmp_path, "--lock-timeout", "2").start()
    second = SchedulerProcess(redis_url, tmp_path, "--lock-timeout", "2").start()
    try:
        wait_for(lambda: holder_pid(r) in (first.pid, second.pid), what="a master")
        master, child = (first, second) if holder_pid(r) == first.pid else (second, first)
        wait_for(lambda: "Child scheduler" in child.title(), what=f"the other to stay child\n{child.log()}")
        ids = set()
        now = time.time()
        for i in range(300):  # three buckets, one second apart
            ids.add(enqueue_at(resque, now + 1 + i % 3, "default", "NoopJob", i))
        wait_for(lambda: r.llen("resque:queue:default") >= 100, timeout=10, what="the first bucket moved")
        os.kill(master.pid, signal.SIGKILL)  # dies holding the lock, mid-stream
        master.wait()
        assert r.llen("resque:queue:default") < 300
        assert holder_pid(r) == master.pid
        for i in range(300, 400):
            ids.add(enqueue_at(resque, time.time() + 0.3, "default", "NoopJob", i))
        killed_at = time.time()
        wait_for(lambda: holder_pid(r) == child.pid, timeout=10, what=f"the takeover\n{child.log()}")
        assert time.time() - killed_at < 3.5
        wait_for(lambda: r.llen("resque:queue:default") == 400, timeout=10, what=f"every job moved\n{child.log()}")
        time.sleep(0.5)  # anything moved twice would show now
        pushed = [json.loads(item)["id"] for item in r.lrange("resque:queue:default", 0, -1)]
        assert len(pushed) == 400 and set(pushed) == ids
        assert r.zcard("resque:delayed_queue_schedule") == 0 and not r.keys("resque:pyresque:*")
        assert "moved delayed jobs" not in child.log().split("became master")[0]  # the child moved nothing before
        assert "Master scheduler" in child.title() or "Processing Delayed Items" in child.title()
    finally:
        first.stop()
        second.stop()


def test_a_foreign_master_keeps_ours_idle_until_its_lock_expires(redis_url, r, tmp_path):
    r.set(LOCK, "rubyhost:4242", ex=2)  # resque-scheduler on another host holds the lock
    enqueue_at(Resque(redis_url), time.time() + 0.2, "default", "NoopJob", 1, shape="ruby")
    with SchedulerProcess(redis_url, tmp_path, "--lock-timeout", "3") as scheduler:
        time.sleep(1.0)
        assert r.llen("resque:queue:default") == 0 and r.get(LOCK) == b"rubyhost:4242"  # never refreshed by us
        wait_for(lambda: holder_pid(r) == scheduler.pid, timeout=5, what="the takeover")
        wait_for(lambda: r.llen("resque:queue:default") == 1, what="the job moved")
        assert 0 < r.ttl(LOCK) <= 3
        scheduler.process.send_signal(signal.SIGQUIT)
        assert scheduler.wait() == 0
    assert r.get(LOCK) is None


def test_a_forged_lock_without_a_ttl_gets_one_and_expires(redis_url, r, tmp_path):
    r.set(LOCK, "somehost:1")  # no EXPIRE: before, every scheduler waited for it forever
    enqueue_at(Resque(redis_url), time.time() + 0.2, "default", "NoopJob", 1, shape="ruby")
    started = time.monotonic()
    with SchedulerProcess(redis_url, tmp_path, "--lock-timeout", "2") as scheduler:
        wait_for(lambda: r.ttl(LOCK) > 0, what=f"a TTL on the forged lock\n{scheduler.log()}")
        assert r.get(LOCK) == b"somehost:1" and r.llen("resque:queue:default") == 0  # not stolen: it expires
        wait_for(lambda: holder_pid(r) == scheduler.pid, timeout=6, what=f"the takeover\n{scheduler.log()}")
        assert time.monotonic() - started < 4.5  # the lock timeout, plus the process start
        wait_for(lambda: r.llen("resque:queue:default") == 1, what="the job moved")
    assert scheduler.log().count("master lock had no TTL") == 1


def test_a_lock_nobody_refreshes_is_taken_over_after_one_lock_timeout(redis_url, r, tmp_path):
    r.set(LOCK, "somehost:1", ex=10 * 365 * 86400)  # ten years, and no holder refreshing it
    with SchedulerProcess(redis_url, tmp_path, "--lock-timeout", "2") as scheduler:
        wait_for(lambda: "Child scheduler" in scheduler.title(), what="the scheduler to see the lock")
        seen = time.monotonic()
        wait_for(lambda: holder_pid(r) == scheduler.pid, timeout=6, what=f"the takeover\n{scheduler.log()}")
        assert 1.5 < time.monotonic() - seen < 3.5 and 0 < r.ttl(LOCK) <= 2
    assert "took over the master lock" in scheduler.log()


def test_a_live_holder_that_refreshes_a_long_ttl_keeps_the_lock(redis_url, r, tmp_path):
    """A Ruby master with a longer LOCK_TIMEOUT than ours is alive as long as it refreshes."""
    r.set(LOCK, "rubyhost:4242", ex=600)
    with SchedulerProcess(redis_url, tmp_path, "--lock-timeout", "1") as scheduler:
        deadline = time.monotonic() + 3  # three of our lock timeouts
        while time.monotonic() < deadline:
            assert r.get(LOCK) == b"rubyhost:4242", scheduler.log()
            r.expire(LOCK, 600)  # its pass: refresh
            time.sleep(0.3)
        wait_for(lambda: holder_pid(r) == scheduler.pid, timeout=4, what=f"the takeover once it stops\n{scheduler.log()}")


def test_the_scheduler_survives_a_redis_restart(redis_server, redis_url, r, tmp_path):
    with SchedulerProcess(redis_url, tmp_path) as scheduler:
        wait_for(lambda: holder_pid(r) == scheduler.pid, what="the master lock")
        redis_server.stop()
        time.sleep(1.5)
        redis_server.start()
        enqueue_at(Resque(redis_url), time.time() + 0.5, "default", "NoopJob", 1, shape="ruby")
        wait_for(lambda: r.llen("resque:queue:default") == 1, timeout=15, what=f"the move after the restart\n{scheduler.log()}")
        assert holder_pid(r) == scheduler.pid and scheduler.process.poll() is None
    log = scheduler.log()
    assert log.count("redis unavailable") == 1 and "Traceback" not in log


def test_recurring_schedules_fire_and_a_missed_tick_fires_once(redis_url, r, tmp_path):
    # every 2s, last fired an hour ago: ~1800 missed ticks -> exactly one enqueue now
    r.hset("resque:delayed:last_enqueued_at", "missed", time.strftime("%Y-%m-%d %H:%M:%S +0000",
                                                                      time.gmtime(time.time() - 3600)))
    assert cli(redis_url, "schedule", "add", "missed", "--class", "NoopJob", "-q", "missed", "--every", "2s").returncode == 0
    assert cli(redis_url, "schedule", "add", "each_second", "--class", "NoopJob", "-q", "cron",
               "--cron", "* * * * * *", "--args", '{"k":1}').returncode == 0
    schedule_file = tmp_path / "schedule.json"
    schedule_file.write_text(json.dumps({"from_file": {"class": "NoopJob", "queue": "file", "every": "1s", "args": [1, 2]}}))
    with SchedulerProcess(redis_url, tmp_path, "--schedule", str(schedule_file)) as scheduler:
        wait_for(lambda: r.llen("resque:queue:missed") >= 1, what=f"the missed tick\n{scheduler.log()}")
        time.sleep(0.5)
        assert r.llen("resque:queue:missed") == 1
        wait_for(lambda: r.llen("resque:queue:cron") >= 2 and r.llen("resque:queue:file") >= 2, timeout=6,
                 what=f"cron and file ticks\n{scheduler.log()}")
        wait_for(lambda: r.llen("resque:queue:missed") == 2, timeout=4, what="the next 2s tick")
        # a schedule added while running is picked up through schedules_changed
        assert cli(redis_url, "schedule", "add", "late", "--class", "NoopJob", "-q", "late", "--every", "1").returncode == 0
        wait_for(lambda: r.llen("resque:queue:late") >= 1, timeout=5, what=f"the new schedule\n{scheduler.log()}")
    cron_job = json.loads(r.lindex("resque:queue:cron", 0))
    assert cron_job["class"] == "NoopJob" and cron_job["args"] == [{"k": 1}] and len(cron_job["id"]) == 32
    assert not r.exists(f"resque:job:{cron_job['id']}:status")  # recurring jobs are not tracked
    assert json.loads(r.lindex("resque:queue:file", 0))["args"] == [1, 2]
    last = {k.decode(): v.decode() for k, v in r.hgetall("resque:delayed:last_enqueued_at").items()}
    assert set(last) == {"missed", "each_second", "from_file", "late"}
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$", v) for v in last.values())
    assert r.hget("resque:persistent_schedules", "each_second") == \
        b'{"class":"NoopJob","cron":"* * * * * *","queue":"cron","args":{"k":1}}'


def test_usr2_reloads_the_schedule_file_and_usr1_logs_it(redis_url, r, tmp_path):
    schedule_file = tmp_path / "schedule.json"
    schedule_file.write_text(json.dumps({"old": {"class": "NoopJob", "queue": "old", "every": "1h"}}))
    with SchedulerProcess(redis_url, tmp_path, "--schedule", str(schedule_file)) as scheduler:
        wait_for(lambda: holder_pid(r) == scheduler.pid, what="the master lock")
        schedule_file.write_text("{broken")
        scheduler.process.send_signal(signal.SIGUSR2)
        wait_for(lambda: "schedule file not reloaded" in scheduler.log(), what="the refusal")
        schedule_file.write_text(json.dumps({"new": {"class": "NoopJob", "queue": "new", "every": "1s"}}))
        scheduler.process.send_signal(signal.SIGUSR2)
        wait_for(lambda: r.llen("resque:queue:new") >= 1, timeout=5, what=f"the reloaded schedule\n{scheduler.log()}")
        scheduler.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: re.search(r"schedule .*every: 1s", scheduler.log()), what="USR1's listing")
        assert scheduler.process.poll() is None and r.llen("resque:queue:old") == 0


def test_a_bad_schedule_file_stops_the_scheduler_with_a_clear_error(redis_url, r, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nightly": {"class": "Report", "queue": "low", "cron": "61 * * * *"}}))
    done = subprocess.run([sys.executable, "-m", "pyresque", "scheduler", "--schedule", str(bad)],
                          env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "schedule 'nightly'" in done.stderr and "61 * * * *" in done.stderr
    assert r.get(LOCK) is None


@pytest.mark.parametrize("args, message", [
    (["--in", "-2"], "--in '-2'"),
    (["--in", "soon"], "--in 'soon'"),
    (["--at", "tomorrow"], "--at 'tomorrow'"),
    (["--at", "1", "--in", "1"], "not both"),
])
def test_enqueue_rejects_bad_times(redis_url, r, args, message):
    done = cli(redis_url, "enqueue", "SomeJob", "1", *args)
    assert done.returncode == 2 and message in done.stderr
    assert r.keys("*") == []
