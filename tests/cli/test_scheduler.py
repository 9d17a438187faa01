"""``pyresque enqueue --at/--in``, ``pyresque delayed …`` and ``pyresque schedule …`` as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def run(redis_url, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
    env["REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "pyresque", *args], env=env, capture_output=True, text=True, timeout=30)


def test_enqueue_at_and_in_then_list_count_and_remove(redis_url, r):
    at = time.time() + 3600
    first = run(redis_url, "enqueue", "PHP_Job", '{"n":1}', "--at", str(at), "--quiet").stdout.strip()
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at + 60))
    done = run(redis_url, "enqueue", "SomeJob", "1", "--ruby", "-q", "low", "--at", iso)
    assert done.returncode == 0 and "Scheduled SomeJob for low at" in done.stdout and "no id" in done.stdout
    third = run(redis_url, "enqueue", "SomeJob", "2", "--in", "1h30m", "--no-track", "--quiet").stdout.strip()
    past = run(redis_url, "enqueue", "SomeJob", "3", "--at", "1000000000")  # the past: enqueued now, as Ruby
    assert past.returncode == 0 and "Enqueued SomeJob on default" in past.stdout and r.llen("resque:queue:default") == 1
    assert run(redis_url, "delayed", "count").stdout.strip() == "3 delayed jobs at 3 timestamps"
    listed = [json.loads(line) for line in run(redis_url, "delayed", "list", "--json").stdout.splitlines()]
    assert [(j["class"], j["queue"], j["id"]) for j in listed] == [("PHP_Job", "default", first), ("SomeJob", "low", None),
                                                                   ("SomeJob", "default", third)]
    assert listed[0]["timestamp"] == int(at) + 1 and listed[1]["args"] == [1]
    text = run(redis_url, "delayed", "list", "--class", "PHP_Job").stdout
    assert f'PHP_Job [{{"n": 1}}] id={first}' in text and "SomeJob" not in text
    assert run(redis_url, "delayed", "remove", "--id", first).stdout.strip() == "Removed 1 delayed job"
    assert r.get(f"resque:job:{first}:status") is None
    assert run(redis_url, "delayed", "remove", "--id", first).returncode == 1
    assert run(redis_url, "delayed", "remove", "--class", "SomeJob", "--args", "[1]").stdout.strip() == "Removed 1 delayed job"
    assert run(redis_url, "delayed", "remove").returncode == 2
    assert run(redis_url, "delayed", "count", "--json").stdout.strip() == '{"jobs": 1, "timestamps": 1}'


def test_schedule_add_list_remove(redis_url, r, tmp_path):
    assert run(redis_url, "schedule", "list").stdout.strip() == "(no schedules)"
    done = run(redis_url, "schedule", "add", "nightly", "--class", "Report", "-q", "low", "--cron", "0 5 * * * UTC",
               "--args", '{"full":true}', "--description", "the report")
    assert done.returncode == 0, done.stderr
    assert run(redis_url, "schedule", "add", "ping", "--class", "Ping", "-q", "q", "--every", "30s").returncode == 0
    r.hset("resque:delayed:last_enqueued_at", "ping", "2026-11-22 04:33:48 +0000")
    text = run(redis_url, "schedule", "list").stdout
    assert 'nightly  cron: 0 5 * * * UTC  Report {"full": true} -> low' in text
    assert "ping  every: 30s  Ping [] -> q  last enqueued 2026-11-22 04:33:48 +0000" in text
    bad = run(redis_url, "schedule", "add", "broken", "--class", "X", "-q", "q", "--cron", "99 * * * *")
    assert bad.returncode == 2 and "schedule 'broken'" in bad.stderr and not r.hexists("resque:persistent_schedules", "broken")
    assert run(redis_url, "schedule", "add", "both", "--class", "X", "-q", "q", "--cron", "* * * * *",
               "--every", "1m").returncode == 2
    schedule_file = tmp_path / "s.json"
    schedule_file.write_text(json.dumps({"from_file": {"class": "F", "queue": "f", "every": "1h"}}))
    assert "from_file  every: 1h  F [] -> f  (file)" in run(redis_url, "schedule", "list", "--file", str(schedule_file)).stdout
    assert run(redis_url, "schedule", "remove", "nightly").returncode == 0
    assert run(redis_url, "schedule", "remove", "nightly").returncode == 1
    assert [json.loads(line)["name"] for line in run(redis_url, "schedule", "list", "--json").stdout.splitlines()] == ["ping"]


def test_schedule_add_refuses_a_cron_that_never_fires(redis_url, r):
    done = run(redis_url, "schedule", "add", "feb30", "--class", "X", "-q", "q", "--cron", "0 0 30 2 *")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("Error: schedule 'feb30': cron '0 0 30 2 *' never fires: "
                                   "no time matches it within 5 years")
    assert not r.exists("resque:persistent_schedules", "resque:schedules_changed")
