"""What every command prints goes through the two printers of cli/common.py: text with the
control characters from Redis escaped, JSON that is strict (no NaN, no Infinity)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Retitle the terminal, clear it, a NUL, a C1 CSI: what a hostile Redis writer would plant.
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x00\x9b31m"
SHOWN = "\\x1b]0;owned\\x07\\x1b[2J\\x00\\x9b31m"
RAW = ("\x1b", "\x07", "\x00", "\x9b")
WID = f"host{HOSTILE}:123:evil{HOSTILE}"


def run(redis_url, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
    env["REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "pyresque", *args], env=env, capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def hostile(r):
    """A queue, a job, a failure, a worker and a delayed job, all named with escape sequences."""
    job = {"class": f"Evil{HOSTILE}", "args": [f"arg{HOSTILE}"], "id": f"id{HOSTILE}", "queue_time": 1795323140}
    r.sadd("resque:queues", f"evil{HOSTILE}")
    r.rpush(f"resque:queue:evil{HOSTILE}", json.dumps(job))
    r.rpush("resque:queue:plain", json.dumps(job))  # for peek: an argument cannot hold a NUL
    r.rpush("resque:failed", json.dumps({
        "failed_at": "2026/11/22 04:58:06 UTC", "payload": job, "exception": f"Boom{HOSTILE}",
        "error": f"error{HOSTILE}", "backtrace": [f"frame{HOSTILE}"], "worker": WID, "queue": f"evil{HOSTILE}"}))
    r.sadd("resque:workers", WID)
    r.set(f"resque:worker:{WID}", json.dumps({"queue": f"evil{HOSTILE}", "run_at": "2026-11-22T04:58:06Z",
                                              "payload": job}))
    r.zadd("resque:delayed_queue_schedule", {"1795323145": 1795323145})
    r.rpush("resque:delayed:1795323145", json.dumps({"class": f"Evil{HOSTILE}", "args": [],
                                                     "queue": f"evil{HOSTILE}"}))
    r.set("resque:job:abc:status", json.dumps({"status": 4, "updated": 1795323145, "result": f"done{HOSTILE}"}))


@pytest.mark.parametrize("command", [
    ("queues",), ("peek", "plain"), ("failed", "list"), ("failed", "show", "0"),
    ("workers",), ("info",), ("delayed", "list"), ("status", "abc"),
], ids=lambda c: " ".join(c)[:12])
def test_text_output_shows_control_characters_from_redis_escaped(redis_url, hostile, command):
    done = run(redis_url, *command)
    out = done.stdout + done.stderr
    assert done.returncode == 0, done.stderr
    assert not any(c in out for c in RAW), repr(out)
    assert SHOWN in out or "done\\u001b]0;owned" in out, out  # (status shows its result as JSON)


def test_failed_show_escapes_every_field(redis_url, hostile):
    out = run(redis_url, "failed", "show", "0").stdout
    for field in ("class:      Evil", "exception:  Boom", "error:      error", "worker:     host", "  frame"):
        assert f"{field}{SHOWN}" in out, out


def test_an_error_line_is_escaped_too(redis_url):
    """``Error:`` lines quote values (here a host name in the URL, which redis-py's message repeats)."""
    done = run("redis://ev\x1bc\x07il.invalid:1/0", "queues")  # ESC c resets the terminal
    assert done.returncode == 1 and done.stderr.startswith("Error: cannot reach Redis at redis://ev\\x1bc\\x07il")
    assert not any(c in done.stderr for c in RAW), repr(done.stderr)


@pytest.mark.parametrize("command", [("queues",), ("peek", "nan"), ("failed", "list"), ("workers",), ("info",),
                                     ("delayed", "list"), ("status", "abc")], ids=lambda c: " ".join(c))
def test_json_output_is_strict_json_even_when_redis_holds_nan(redis_url, r, command):
    job = '{"class":"NanJob","args":[NaN,Infinity,-Infinity,{"x":NaN}],"id":"n1","queue_time":Infinity}'
    r.sadd("resque:queues", "nan")
    r.rpush("resque:queue:nan", job)
    r.rpush("resque:failed", '{"failed_at":"2026/11/22 04:58:06 UTC","payload":' + job + ',"exception":"E",'
            '"error":"e","backtrace":[],"worker":"h:1:nan","queue":"nan","x":NaN}')
    r.sadd("resque:workers", "h:1:nan")
    r.set("resque:worker:h:1:nan", '{"queue":"nan","run_at":"2026-11-22T04:58:06Z","payload":' + job + '}')
    r.zadd("resque:delayed_queue_schedule", {"1795323145": 1795323145})
    r.rpush("resque:delayed:1795323145", '{"class":"NanJob","args":[NaN],"queue":"nan"}')
    r.set("resque:job:abc:status", '{"status":4,"updated":1795323145,"result":NaN}')
    r.set("resque:stat:processed", "1.5e3")  # INCRBYFLOAT leaves such strings
    r.set("resque:stat:failed", "nan")
    r.set("resque:stat:processed:h:1:nan", " 7 jobs")
    done = run(redis_url, *command, "--json")
    if command[0] == "status":  # a packet that is not JSON is not a status: one line, exit 1
        assert done.returncode == 1 and done.stderr == "Error: job abc: status packet is not JSON: NaN is not JSON\n"
        return
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line, parse_constant=_refuse) for line in done.stdout.splitlines()]
    assert docs
    if command == ("info",):
        assert (docs[0]["processed"], docs[0]["failed"]) == (1, 0)  # read as Ruby's String#to_i reads them
        assert docs[0]["queues"] == [{"name": "nan", "size": 1, "oldest_age": None}]
    if command == ("workers",):
        assert (docs[0][0]["processed"], docs[0][0]["failed"]) == (7, 0)


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")
