"""``pyresque workers / info / pause / resume`` against php-resque's and Ruby's keys from the vectors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import vectors
from pyresque import Resque
from pyresque.store.embedded import free_port
from pyresque.wire import payload as wire
from support import WorkerProcess, records, wait_for

PHP_DURING_JOB = vectors.state(vectors.load("php-resque-v1.3.6/b2_worker_during_job"), "during_job")
RUBY_VECTOR = vectors.load("ruby-resque/f2_ruby_worker")
RUBY_DURING_JOB = vectors.state(RUBY_VECTOR, "during_job")
RUBY_INFO = vectors.note(RUBY_VECTOR, "resque_info_during_job")


def run(redis_url, *args, timeout=30):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
    env["REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "pyresque", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_workers_lists_php_ruby_and_pyresque_workers_together(redis_url, r, tmp_path):
    job_id = Resque(redis_url).enqueue("default", "SleepJob", 1.5)
    # a huge prune interval: the vectors' heartbeats are old, and this test is about listing them
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_PRUNE_INTERVAL="100000000") as worker:
        ours = worker.worker_id(r)
        wait_for(lambda: records(worker, "sleep_started"), what="our job running")
        vectors.load_state(r, PHP_DURING_JOB)
        vectors.load_state(r, RUBY_DURING_JOB)
        listed = run(redis_url, "workers", "--json")
        text = run(redis_url, "workers")
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"vm:1409:default", "vm:2861:default", ours}

    php = rows["vm:1409:default"]
    assert (php["host"], php["pid"], php["queues"], php["state"], php["flavour"]) == ("vm", 1409, ["default"], "working", "php")
    assert php["job"] == {"queue": "default", "class": "PHP_SleepJob", "args": [{"seconds": 3}],
                          "id": "a8f603684b073fd115af4c2b7a3a48bd", "run_at": "2026-11-22T04:52:22+00:00"}
    assert php["started"] == "2026-11-22T04:52:19+00:00" and php["heartbeat"] is None and php["heartbeat_age"] is None
    assert php["job_age"] - php["started_age"] == -3  # run_at 3 s after the start, both in php's date('c')

    ruby = rows["vm:2861:default"]
    [expected] = RUBY_INFO["workers"]
    assert (ruby["state"], ruby["flavour"], ruby["processed"], ruby["failed"]) == (
        expected["state"], "ruby", expected["processed"], expected["failed"])
    assert {k: ruby["job"][k] for k in ("queue", "run_at")} == {k: expected["job"][k] for k in ("queue", "run_at")}
    assert (ruby["job"]["class"], ruby["job"]["args"], ruby["job"]["id"]) == ("SleepJob", [3], None)
    assert ruby["started"] == expected["started"] and ruby["heartbeat"] == RUBY_INFO["heartbeats"][ruby["id"]]

    mine = rows[ours]
    assert (mine["state"], mine["flavour"], mine["job"]["class"], mine["job"]["id"]) == ("working", "ruby", "SleepJob", job_id)
    assert 0 <= mine["heartbeat_age"] < 30 and 0 <= mine["job_age"] < 30

    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["HOST", "PID", "QUEUES", "STATE", "JOB", "STARTED", "HEARTBEAT", "DONE/FAILED", "FLAVOUR"]
    php_line = next(line for line in lines if " 1409 " in line)
    assert "PHP_SleepJob on default for" in php_line and "never" in php_line and php_line.endswith("php")


def test_info_matches_rubys_resque_info_for_the_same_state(redis_url, r):
    vectors.load_state(r, RUBY_DURING_JOB)
    done = run(redis_url, "info", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    ruby = RUBY_INFO["info"]
    assert (doc["pending"], doc["processed"], len(doc["queues"]), doc["workers"], doc["working"], doc["failed_list"]) == (
        ruby["pending"], ruby["processed"], ruby["queues"], ruby["workers"], ruby["working"], ruby["failed"])
    assert doc["failed"] == 1 and doc["idle"] == 0 and doc["hosts"] == ["vm"] and doc["paused_all"] is False
    assert doc["queues"] == [{"name": "default", "size": 0, "oldest_age": None}]
    assert run(redis_url, "stats", "--json").stdout == done.stdout  # the alias


def test_info_oldest_job_age_per_queue_with_and_without_queue_time(redis_url, r):
    resque = Resque(redis_url)
    now = resque.store.server_time()
    resque.store.push("php", wire.encode_payload(wire.build_payload("PHP_Job", [{}], wire.new_job_id(), "", now - 125)))
    resque.enqueue("php", "PHP_Job", {})
    resque.enqueue("ruby", "SomeJob", 1, shape="ruby")  # Ruby's payloads carry no time at all
    active_job = {"class": "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper",
                  "args": [{"job_class": "Mail", "enqueued_at": wire.iso_z(now - 3700)}]}
    resque.store.push("rails", wire.encode_ruby(active_job))
    doc = json.loads(run(redis_url, "info", "--json").stdout)
    ages = {q["name"]: (q["size"], q["oldest_age"]) for q in doc["queues"]}
    assert ages["php"][0] == 2 and 124 <= ages["php"][1] < 135
    assert ages["ruby"] == (1, None)
    assert ages["rails"][0] == 1 and 3699 <= ages["rails"][1] < 3710
    assert doc["pending"] == 4 and doc["workers"] == 0
    text = run(redis_url, "info").stdout
    assert "php    2     2m05s" in text and "rails  1     1h01m" in text and "ruby   1     -" in text
    assert "pending 4  processed 0  failed 0 (failed list 0)" in text


def test_pause_and_resume_use_rubys_key_and_name_the_php_workers_that_ignore_it(redis_url, r, tmp_path):
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_PRUNE_INTERVAL="100000000") as worker:
        ours = worker.worker_id(r)
        vectors.load_state(r, PHP_DURING_JOB)  # after our worker's start-up prune: the vector's host is "vm" too
        r.delete("resque:worker:vm:1409:default")  # idle now
        paused = run(redis_url, "pause", "--json")
        assert paused.returncode == 0 and json.loads(paused.stdout) == {"paused": True, "ignored_by": ["vm:1409:default"]}
        assert r.get("resque:pause-all-workers") == b"true"
        states = {row["id"]: row["state"] for row in json.loads(run(redis_url, "workers", "--json").stdout)}
        assert states == {ours: "paused", "vm:1409:default": "idle"}  # php-resque would keep working
        assert "send them USR2: vm:1409:default" in run(redis_url, "pause").stdout
        assert run(redis_url, "resume").returncode == 0 and not r.exists("resque:pause-all-workers")
        worker.signal(signal.SIGUSR2)  # paused by signal: only its title says so
        wait_for(lambda: {row["id"]: row["state"] for row in json.loads(run(redis_url, "workers", "--json").stdout)}
                 [ours] == "paused", what="the worker's title to say Paused")


def test_watch_refreshes_until_interrupted(redis_url, r):
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = subprocess.Popen([sys.executable, "-m", "pyresque", "info", "--json", "--watch", "--interval", "0.1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        Resque(redis_url).enqueue("default", "PHP_Job", {})
        deadline = time.monotonic() + 10
        while json.loads(proc.stdout.readline())["pending"] != 1:
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 130 and first["pending"] == 0  # Ctrl-C: interrupted, as status --watch
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_empty_redis_and_unreachable_redis(redis_url):
    assert run(redis_url, "workers").stdout.strip() == "(no workers registered)"
    assert "(no queues)" in run(redis_url, "info").stdout
    down = run(f"redis://127.0.0.1:{free_port()}/0", "workers")
    assert down.returncode == 1 and "cannot reach Redis" in down.stderr and "Traceback" not in down.stderr
