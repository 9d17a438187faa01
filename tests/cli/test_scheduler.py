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


DEEP = "[" * 990 + "]" * 990


def test_delayed_list_count_and_remove_show_broken_rows_and_go_on(redis_url, r):
    from pyresque import Resque
    from pyresque.scheduling.delayed import enqueue_in

    resque = Resque(redis_url)
    first = enqueue_in(resque, 3600, "default", "Good", 1)
    second = enqueue_in(resque, 3600, "default", "Good", 2)
    r.zadd("resque:delayed_queue_schedule", {"1800000000": 1800000000, "1800000001": 1800000001, "1e20": 1e20})
    forged = b'{"class":"X\\n2026-01-01 00:00:00 UTC  default  Fake [] id=-","args":[],"queue":"default"}'
    deep = b'{"class":"X","args":[' + DEEP.encode() + b'],"queue":"d"}'
    r.rpush("resque:delayed:1800000000", b'{"class":"X","args":[NaN],"queue":"d"}', b'{"class":"\xed\xa0\x80","args":[]}',
            deep, forged)
    tracked = b'{"class":"Side","args":[],"queue":"d"}'
    r.rpush("resque:delayed:1800000000", tracked)
    r.hset("resque:pyresque_delayed:1800000000", tracked, json.dumps(['{"class":"Side","args":[' + DEEP + '],"id":"x"}']))
    r.set("resque:delayed:1800000001", "not a list")
    r.rpush("resque:delayed:1e20", b'{"class":"Far","args":[],"queue":"d"}')

    listed = run(redis_url, "delayed", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 9 and not [line for line in lines if line.startswith("2026-01-01")]  # nothing forged
    assert [line.split("  ")[2] for line in lines[:2]] == ["Good [1] id=" + first, "Good [2] id=" + second]
    assert lines[2:8] == [
        "2027-01-15 08:00:00 UTC  (broken: payload is not JSON: NaN is not JSON) "
        "b'{\"class\":\"X\",\"args\":[NaN],\"queue\":\"d\"}'",
        "2027-01-15 08:00:00 UTC  (broken: payload is not UTF-8 (invalid continuation byte at byte 10)) "
        "b'{\"class\":\"\\xed\\xa0\\x80\",\"args\":[]}'",
        f"2027-01-15 08:00:00 UTC  (broken: payload nests deeper than 200 levels) {deep[:200]!r}",
        "2027-01-15 08:00:00 UTC  default  X\\n2026-01-01 00:00:00 UTC  default  Fake [] id=- [] id=-",
        "2027-01-15 08:00:00 UTC  d  Side [] id=-  (broken: side payload nests deeper than 200 levels)",
        "2027-01-15 08:00:01 UTC  (broken: resque:delayed:1800000001 is a string: left as it is)",
    ]
    assert lines[8] == "@100000000000000000000  d  Far [] id=-"
    as_json = run(redis_url, "delayed", "list", "--json")
    assert as_json.returncode == 0 and len([json.loads(line) for line in as_json.stdout.splitlines()]) == 9

    counted = run(redis_url, "delayed", "count")
    assert counted.returncode == 0 and counted.stdout.splitlines() == [
        "8 delayed jobs at 4 timestamps", "(broken: resque:delayed:1800000001 is a string, not a list: not counted)"]

    removed = run(redis_url, "delayed", "remove", "--class", "Good", "--args", "[1]")
    assert removed.returncode == 0 and removed.stdout.strip() == "Removed 1 delayed job", removed.stderr
    assert run(redis_url, "delayed", "remove", "--id", second).returncode == 0
    assert r.llen("resque:delayed:1800000000") == 5 and r.get("resque:delayed:1800000001") == b"not a list"


def test_schedule_list_shows_broken_schedules_and_goes_on(redis_url, r):
    assert run(redis_url, "schedule", "add", "good", "--class", "Ping", "-q", "q", "--every", "30s").returncode == 0
    bad = {
        b"nan": b'{"class":"X","queue":"q","every":"1s","args":[NaN]}',
        b"deep": b'{"class":"X","queue":"q","every":"1s","args":[' + DEEP.encode() + b"]}",
        b"bytes": b'{"class":"\xed\xa0\x80","queue":"q","every":"1s"}',
        b"feb30": b'{"class":"X","queue":"q","cron":"0 0 30 2 *"}',
        b"name-\xff": b'{"class":"X","queue":"q","every":"1s"}',
        b"forged\ngood  every: 1s  Evil [] -> q": b'{"class":"X","queue":"q","every":"1s"}',
    }
    for name, raw in bad.items():
        r.hset("resque:persistent_schedules", name, raw)
    listed = run(redis_url, "schedule", "list")
    assert listed.returncode == 0, listed.stderr
    lines = sorted(line.split("  next run ")[0] for line in listed.stdout.splitlines())  # next runs: see below
    assert len(lines) == 7 and "good  every: 30s  Ping [] -> q" in lines
    assert "forged\\ngood  every: 1s  Evil [] -> q  every: 1s  X [] -> q" in lines  # one row, escaped
    assert not [line for line in lines if line.startswith("good  every: 1s")]  # no forged row
    broken = {line.split("  ")[0]: line for line in lines if "(broken: " in line}
    assert set(broken) == {"nan", "deep", "bytes", "feb30", "name-\\xff"}
    assert "NaN is not JSON" in broken["nan"] and "nests deeper than 200" in broken["deep"]
    assert "not UTF-8" in broken["bytes"] and "never fires" in broken["feb30"] and "not UTF-8" in broken["name-\\xff"]
    as_json = run(redis_url, "schedule", "list", "--json")
    assert as_json.returncode == 0 and len([json.loads(line) for line in as_json.stdout.splitlines()]) == 7
    r.delete("resque:persistent_schedules")
    r.set("resque:persistent_schedules", "oops")
    listed = run(redis_url, "schedule", "list")
    assert listed.returncode == 0 and listed.stdout.strip() == \
        "-  (broken: resque:persistent_schedules is a string: no persisted schedule can be read)"
