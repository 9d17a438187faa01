"""The pyresque command: real subprocesses for exit codes and output, against a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import vectors
from pyresque.store.embedded import free_port


def run(redis_url, *args, env_extra=None, timeout=30):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pyresque", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_enqueue_php_job_matches_php_resque_vector(redis_url, r):
    done = run(redis_url, "enqueue", "PHP_Job", '{"name":"x","n":1}', "--quiet")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert len(job_id) == 32
    ours = vectors.normalise_state(vectors.dump(r))
    theirs = vectors.normalise_state(vectors.state(vectors.load("php-resque-v1.3.6/a_enqueue_tracked"), "after_enqueue"))
    assert ours == theirs


def test_enqueue_positional_json_args_and_no_args(redis_url, r):
    assert run(redis_url, "enqueue", "SomeJob", "1", '"two"', '{"k":"v"}', "-q", "low").returncode == 0
    assert run(redis_url, "enqueue", "PHP_Job").returncode == 0
    assert json.loads(r.lindex("resque:queue:low", 0))["args"] == [1, "two", {"k": "v"}]
    assert json.loads(r.lindex("resque:queue:default", 0))["args"] == []


def test_enqueue_ruby_shape_matches_ruby_vector(redis_url, r):
    done = run(redis_url, "enqueue", "SomeJob", "1", '"two"', '{"k":"v"}', "--ruby")
    assert done.returncode == 0 and "no id" in done.stdout
    theirs = vectors.state(vectors.load("ruby-resque/f1_ruby_enqueue"), "after_enqueue")
    assert r.lrange("resque:queue:default", 0, -1) == [v.encode() for v in theirs["resque:queue:default"]["value"]]


def test_status_of_a_waiting_and_a_finished_job(redis_url, r):
    job_id = run(redis_url, "enqueue", "PHP_Job", "--quiet").stdout.strip()
    shown = run(redis_url, "status", job_id)
    assert shown.returncode == 0 and f"{job_id}: waiting (code 1)" in shown.stdout
    key = f"resque:job:{job_id}:status"
    r.set(key, '{"status":4,"updated":1795323145,"started":1795323141,"result":{"answer":42}}', ex=100)
    doc = json.loads(run(redis_url, "status", job_id, "--json").stdout)
    assert doc["status"] == "complete" and doc["code"] == 4 and doc["result"] == {"answer": 42} and 0 < doc["ttl"] <= 100


def test_status_watch_follows_until_final(redis_url, r):
    job_id = run(redis_url, "enqueue", "PHP_Job", "--quiet").stdout.strip()
    env = dict(os.environ, REDIS_URL=redis_url)
    watcher = subprocess.Popen([sys.executable, "-m", "pyresque", "status", job_id, "--watch", "--interval", "0.05"],
                               env=env, stdout=subprocess.PIPE, text=True)
    import time

    time.sleep(0.6)
    r.set(f"resque:job:{job_id}:status", '{"status":2,"updated":2,"started":1,"result":null}')
    time.sleep(0.6)
    r.set(f"resque:job:{job_id}:status", '{"status":3,"updated":3,"started":1,"result":null}')
    out, _ = watcher.communicate(timeout=10)
    assert [line.split(": ")[1].split(" ")[0] for line in out.splitlines()] == ["waiting", "running", "failed"]
    assert watcher.returncode == 1


def test_status_of_a_failed_job_says_why(redis_url, r, tmp_path):
    from support import WorkerProcess

    job_id = run(redis_url, "enqueue", "FailJob", '"no space left on device"', "--quiet").stdout.strip()
    with WorkerProcess(redis_url, tmp_path):
        watched = run(redis_url, "status", job_id, "--watch", "--interval", "0.05")
    assert watched.returncode == 1 and watched.stdout.splitlines()[-1].startswith(f"{job_id}: failed (code 3), updated ")
    assert watched.stdout.splitlines()[-1].endswith(", error RuntimeError: no space left on device")
    doc = json.loads(run(redis_url, "status", job_id, "--json").stdout)
    assert doc["status"] == "failed" and doc["error"]["exception"] == "RuntimeError"
    assert doc["error"]["message"] == "no space left on device" and doc["error"]["queue"] == "default"
    r.set(f"resque:job:{job_id}:status", '{"status":3,"updated":3,"started":1,"result":null}')  # no record matches
    r.delete("resque:failed")
    assert run(redis_url, "status", job_id).stdout.strip().endswith(", error unknown (no failure record found)")


def test_status_watch_ctrl_c_exits_130_not_1(redis_url, r):
    import signal

    job_id = run(redis_url, "enqueue", "PHP_Job", "--quiet").stdout.strip()
    env = dict(os.environ, REDIS_URL=redis_url)
    watcher = subprocess.Popen([sys.executable, "-m", "pyresque", "status", job_id, "--watch", "--interval", "0.05"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"{job_id}: waiting" in watcher.stdout.readline()
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=10)
        assert watcher.returncode == 130 and "Traceback" not in err and "Aborted" not in err, err
    finally:
        watcher.kill()
        watcher.wait()


def test_status_of_unknown_job_exits_1(redis_url):
    done = run(redis_url, "status", "0123456789abcdef0123456789abcdef")
    assert done.returncode == 1
    assert "not tracked" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_malformed_status_packet_is_reported_not_a_crash(redis_url, r):
    r.set("resque:job:bad:status", "{{{")
    done = run(redis_url, "status", "bad")
    assert done.returncode == 1 and "not JSON" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["enqueue", "PHP_Job", '{"a":1}', "{oops"], "argument 2 ('{oops') is not JSON"),
        (["enqueue", "PHP_Job", "-q", ""], "invalid queue name ''"),
        (["enqueue", "PHP_Job", "-q", "a,b"], "invalid queue name 'a,b'"),
        (["peek", " "], "invalid queue name"),
        (["dequeue", "q", "--args", "[1]"], "--args needs --class"),
        (["dequeue", "q"], "give --class, --id, or --all"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(redis_url, args, message):
    done = run(redis_url, *args)
    assert done.returncode == 2, done
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_unreachable_redis_names_the_url():
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run(url, "queues")
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: cannot reach Redis at {url}")
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_redis_url_is_a_usage_error():
    done = run("http://nowhere", "queues")
    assert done.returncode == 2 and "invalid Redis URL" in done.stderr


def test_php_redis_backend_and_prefix_env(redis_server, redis_url, r):
    env = {"REDIS_BACKEND": f"127.0.0.1:{redis_server.port}", "REDIS_BACKEND_DB": "3", "PREFIX": "myapp"}
    assert run(None, "enqueue", "PHP_Job", env_extra=env).returncode == 0
    r.execute_command("SELECT", 3)
    assert sorted(k.decode() for k in r.keys("*"))[0].startswith("myapp:")
    listing = run(None, "queues", "--json", env_extra=env)
    assert json.loads(listing.stdout) == {"default": 1}


def test_queues_peek_dequeue(redis_url, r):
    run(redis_url, "enqueue", "PHP_Job", '{"n":1}')
    job_id = run(redis_url, "enqueue", "Other", "--quiet", "-q", "default").stdout.strip()
    r.rpush("resque:queue:default", b"\xff not json")
    assert run(redis_url, "queues").stdout.split() == ["default", "3"]
    peeked = run(redis_url, "peek", "default").stdout.splitlines()
    assert peeked[0].startswith("0: PHP_Job [{\"n\": 1}]") and "unreadable" in peeked[2]
    assert run(redis_url, "dequeue", "default", "--id", job_id).stdout.strip() == "Removed 1 job from default"
    assert run(redis_url, "dequeue", "default", "--class", "PHP_Job", "--args", '[{"n":1}]').stdout.startswith("Removed 1")
    assert run(redis_url, "dequeue", "default", "--all").stdout.startswith("Removed 1")
    assert run(redis_url, "queues", "--json").stdout.strip() == "{}"


def test_every_command_has_help():
    for command in ([], ["enqueue"], ["status"], ["queues"], ["peek"], ["dequeue"]):
        done = run(None, *command, "--help")
        assert done.returncode == 0 and "Usage:" in done.stdout


def test_a_prune_interval_that_would_prune_live_workers_is_refused(redis_url):
    """Heartbeats are whole seconds on the wire: a prune interval under twice the heartbeat
    interval plus 1 s would take a beating worker for dead."""
    env = {"QUEUE": "default", "REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "pyresque", "worker", "--heartbeat-interval", "1",
                             "--prune-interval", "2"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--prune-interval 2 would prune live workers" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
