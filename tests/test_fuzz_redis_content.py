"""Property-based fuzzing (Hypothesis) of what other programs may write into Redis (#13, item 8).

Each property runs against one long-lived real process (a worker, a scheduler) for the whole
test: every example plants a batch of hostile values, then a good job as a sentinel, and checks
that the process kept serving and that every hostile value is accounted for, none lost. The
CLI property runs the commands in-process (click's runner) per example, and once more as real
subprocesses over a fixed hostile corpus.

The default budget is a few hundred examples in all (~1 min on CI). ``PYRESQUE_FUZZ_EXAMPLES=2000``
sets every property's example count for a longer local run. No example database: a CI run is
reproducible from the seed Hypothesis prints on failure (``--hypothesis-seed=...``), and each
failure also prints its ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyresque import Resque
from pyresque.cli.main import main as pyresque_cli
from pyresque.wire import payload as wire
from support import SchedulerProcess, WorkerProcess, wait_for

_EXAMPLES = int(os.environ.get("PYRESQUE_FUZZ_EXAMPLES") or 0)


def fuzz(examples: int) -> Any:
    """Settings for one property: ``examples`` by default, the env var's count when it is set."""
    return settings(max_examples=_EXAMPLES or examples, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example, HealthCheck.filter_too_much])


def strict_json(raw: bytes | str) -> Any:
    """What a strict reader (php's json_decode, Ruby's JSON.parse) accepts: no NaN/Infinity."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(raw, parse_constant=refuse)


# == strategies: hostile values ================================================================
#: Tokens that break naive readers: not JSON, out of range, not UTF-8, lone surrogates.
ODD_TOKENS = [
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"-0", b"-0.0", b"0e0", b"1E+2",
    b"9" * 400, b"-" + b"9" * 5000, b"1" * 4301, b"0.000000000000000000000000000001e-400", b"null", b"true",
    b"false", b"[]", b"{}", b'""', b'"\\ud800"', b'"\\udfff\\ud800x"', b'"\\u0000"', b'"\xed\xa0\x80"',
    b'"\xff\xfe"', b'"\xc0\x80"', b'"\xf4\x90\x80\x80"', b'"\\/"', b'"\x1b[31m\r\n"', b'"\\"', b"[", b"]",
    b"{", b"}", b"", b" ", b"\x00", b"'single'", b"01", b"0x10", b"+1", b".5", b"1.", b"tru",
]

_text = st.text(st.characters(codec="utf-8"), max_size=30)  # valid UTF-8 text (no lone surrogates)
_json_string = _text.map(lambda s: json.dumps(s, ensure_ascii=bool(len(s) % 2)).encode("utf-8"))
_leaf = st.one_of(st.sampled_from(ODD_TOKENS), _json_string,
                  st.integers(-(2 ** 70), 2 ** 70).map(lambda n: str(n).encode()),
                  st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()))


def _nest(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: b"[" + b",".join(xs) + b"]"),
        st.lists(st.tuples(_json_string, inner), max_size=4).map(
            lambda kvs: b"{" + b",".join(k + b":" + v for k, v in kvs) + b"}"),
    )


#: Arbitrary JSON-ish text: valid documents with odd leaves, and broken ones.
json_text = st.recursive(_leaf, _nest, max_leaves=12)

#: Nesting around the depth bounds: pyresque's 200, cjson's 1000, Python's recursion limit.
deep = st.builds(lambda depth, leaf, kind, close: (b"[" if kind else b'{"a":') * depth + leaf
                 + ((b"]" if kind else b"}") * depth if close else b""),
                 st.one_of(st.integers(190, 210), st.integers(990, 1010), st.sampled_from([3000, 20000])),
                 _leaf, st.booleans(), st.booleans())

#: Huge strings (over the 64 KiB of a typical Redis client buffer; kept small for speed: the
#: size bound itself, 64 MiB, is tested by example in tests/wire/test_untrusted.py).
huge = st.builds(lambda n, ch: b'"' + ch * n + b'"', st.sampled_from([70_000, 300_000]),
                 st.sampled_from([b"x", b"\\u00e9", b"\xc3\xa9", b"\\ud800"]))

hostile_value = st.one_of(json_text, json_text, deep, st.binary(max_size=64), huge)

#: Class names: runnable ones, ones that are not loaded or not allowed, hostile text.
_CLASSES = ["PHP_Job", "NoopJob", "FailJob", "SomeJob", "Nope", "", "Pyresque::UnreadableItem", "os.system",
            "__main__.X", "fixtures._private", "App\\Jobs\\PhpJob", "PHP_Job\x00", "NoopJob "]
_class = st.one_of(st.sampled_from(_CLASSES).map(lambda c: json.dumps(c).encode()), hostile_value)
_args = st.one_of(st.sampled_from([b"[]", b"[{}]", b"[null]", b"null", b'[1,"two"]']), hostile_value,
                  st.lists(hostile_value, max_size=3).map(lambda xs: b"[" + b",".join(xs) + b"]"))
_id = st.one_of(st.just(b'"' + b"a" * 32 + b'"'), _json_string, hostile_value)
_queue_field = st.one_of(st.just(b'"fuzz"'), st.sampled_from([b'"a,b"', b'" q"', b'""', b'"q\\n"']), hostile_value)


def _job_like(queue: bool) -> st.SearchStrategy[bytes]:
    """A job-shaped object whose fields may each be hostile, missing or repeated."""
    fields = [("class", _class), ("args", _args), ("id", _id), ("prefix", _id)]
    if queue:
        fields.append(("queue", _queue_field))

    @st.composite
    def build(draw: Any) -> bytes:
        parts = []
        for name, values in fields:
            for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):  # mostly present; missing; twice
                parts.append(b'"' + name.encode() + b'":' + draw(values))
        if draw(st.booleans()):
            parts = draw(st.permutations(parts))
        return b"{" + b",".join(parts) + b"}"
    return build()


#: What a queue item may be: a hostile job, or any hostile value (a list, a string, a number ...).
queue_item = st.one_of(_job_like(queue=False), _job_like(queue=False), hostile_value)
delayed_item = st.one_of(_job_like(queue=True), _job_like(queue=True), hostile_value)


def _failures(r: Any) -> list[Any]:
    return [strict_json(raw) for raw in r.lrange("resque:failed", 0, -1)]


# == 1. queue items ============================================================================
def test_hostile_queue_items_fail_alone_and_none_is_lost(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path, queue="fuzz") as worker:
        wid = worker.worker_id(r)

        @fuzz(50)
        @given(items=st.lists(queue_item, min_size=1, max_size=6))
        def every_item_completes_or_fails_and_the_worker_keeps_serving(items: list[bytes]) -> None:
            r.delete("resque:failed")
            before = wire.parse_counter(r.get("resque:stat:processed"))
            r.sadd("resque:queues", "fuzz")
            r.rpush("resque:queue:fuzz", *items)
            good = resque.enqueue("fuzz", "NoopJob", "sentinel")
            wait_for(lambda: resque.status(good).status == wire.COMPLETE or worker.process.poll() is not None,
                     timeout=10, what=f"the sentinel job\n{worker.log()[-3000:]}")
            assert worker.process.poll() is None, f"the worker died\n{worker.log()[-3000:]}"
            finished = wire.parse_counter(r.get("resque:stat:processed")) - before  # completed or failed
            failed = _failures(r)
            queued = r.llen("resque:queue:fuzz")
            assert finished + queued == len(items) + 1, (finished, queued, len(items))
            assert 0 <= len(failed) <= finished - 1
            for record in failed:
                assert isinstance(record["error"], str) and record["error"].strip(), record
                assert record["worker"] == wid and record["queue"] == "fuzz", record
            assert r.get(f"resque:worker:{wid}") is None  # no working-on record left behind

        every_item_completes_or_fails_and_the_worker_keeps_serving()


# == 2. working-on records of dead workers =====================================================
_record = st.one_of(
    hostile_value,
    st.builds(lambda q, run_at, payload: b'{"queue":' + q + b',"run_at":' + run_at + b',"payload":' + payload + b"}",
              _queue_field, st.one_of(st.just(b'"2020-01-01T00:00:00Z"'), hostile_value), queue_item),
)
_dead_id = st.tuples(st.text(st.characters(codec="utf-8", exclude_characters=":"), max_size=8),
                     st.one_of(st.just("4242"), _text), _text)


def test_dead_workers_with_hostile_records_are_pruned_with_one_failure_each(redis_url, r, tmp_path):
    with WorkerProcess(redis_url, tmp_path, queue="fuzz", PYRESQUE_HEARTBEAT_INTERVAL="0.1") as worker:
        wid = worker.worker_id(r)

        @fuzz(40)
        @given(dead=st.lists(st.tuples(_dead_id, _record), min_size=1, max_size=5))
        def each_dead_worker_is_gone_and_failed_once(dead: list[tuple[tuple[str, str, str], bytes]]) -> None:
            for other in {*r.smembers("resque:workers"), *r.hkeys("resque:workers:heartbeat")} - {wid.encode()}:
                r.srem("resque:workers", other)  # what an earlier (failing) example left
                r.hdel("resque:workers:heartbeat", other)
                r.delete(b"resque:worker:" + other, b"resque:worker:" + other + b":started")
            r.delete("resque:failed")
            ids = []
            for n, ((host, pid, queues), record) in enumerate(dead):
                dead_id = f"elsewhere-{n}-{host}:{pid}:{queues}"
                ids.append(dead_id)
                r.sadd("resque:workers", dead_id)
                r.set(f"resque:worker:{dead_id}", record)
                r.set(f"resque:worker:{dead_id}:started", "2020-01-01 00:00:00 +0000")
                r.hset("resque:workers:heartbeat", dead_id, "2020-01-01T00:00:00+00:00")
            gone = wait_for(lambda: not any(r.sismember("resque:workers", i) for i in ids)
                            or worker.process.poll() is not None, timeout=10,
                            what=f"the prune of {ids!r}\n{worker.log()[-3000:]}")
            assert gone and worker.process.poll() is None, f"the worker died\n{worker.log()[-3000:]}"
            for dead_id in ids:
                assert not r.exists(f"resque:worker:{dead_id}", f"resque:worker:{dead_id}:started")
                assert not r.hexists("resque:workers:heartbeat", dead_id)
            by_worker: dict[str, int] = {}
            for failure in _failures(r):
                assert failure["exception"] == "pyresque.DirtyExit" and failure["error"], failure
                by_worker[failure["worker"]] = by_worker.get(failure["worker"], 0) + 1
            assert by_worker == {i: 1 for i in ids}
            assert r.sismember("resque:workers", wid)

        each_dead_worker_is_gone_and_failed_once()


# == 3. delayed items ==========================================================================
_member = st.one_of(st.just(None), st.just(None), st.sampled_from(
    ["abc", "1e999", "inf", "-inf", "nan", "-0", "", "0x10", "1.5", " 12", "9" * 400, "\x1b[2J"]))
_side_value = st.one_of(hostile_value, st.lists(hostile_value, max_size=3).map(
    lambda xs: json.dumps([x.decode("utf-8", "replace") for x in xs]).encode()))


def _queued_items(r: Any) -> int:
    return sum(r.llen(key) for key in r.scan_iter(match="resque:queue:*", count=1000) if r.type(key) == b"list")


LOCK = "resque:resque:resque_scheduler_master_lock"


def test_hostile_delayed_items_are_moved_or_failed_and_the_scheduler_keeps_running(redis_url, r, tmp_path):
    with SchedulerProcess(redis_url, tmp_path) as scheduler:
        wait_for(lambda: r.get(LOCK), what=f"the master lock\n{scheduler.log()}")
        counter = iter(range(10 ** 9))

        @fuzz(40)
        @given(buckets=st.lists(st.tuples(_member, st.lists(delayed_item, min_size=1, max_size=4),
                                          st.one_of(st.none(), _side_value)), min_size=1, max_size=3))
        def every_overdue_item_is_moved_or_failed(buckets: list[tuple[str | None, list[bytes], bytes | None]]) -> None:
            for key in r.scan_iter(count=1000):  # what an earlier (failing) example left
                if key != LOCK:
                    r.delete(key)
            now = int(time.time())
            pushed = 0
            plant = r.pipeline(transaction=True)  # the scheduler sees all of it or none
            for n, (member, items, side) in enumerate(buckets):
                ts = now - 100 - n  # overdue, older than the good job's bucket
                name = str(ts) if member is None else member
                plant.rpush(f"resque:delayed:{name}", *items)
                if side is not None:
                    plant.hset(f"resque:pyresque:delayed:{name}", items[0], side)
                plant.zadd("resque:delayed_queue_schedule", {name: ts})
                pushed += len(items)
            tag = next(counter)
            good = json.dumps({"class": "NoopJob", "args": [tag], "queue": "fuzz-good"})
            plant.rpush(f"resque:delayed:{now - 1}", good)
            plant.zadd("resque:delayed_queue_schedule", {str(now - 1): now - 1})
            plant.execute()
            reached = wait_for(lambda: r.llen("resque:queue:fuzz-good") or scheduler.process.poll() is not None,
                               timeout=10, what=f"the good delayed job\n{scheduler.log()[-3000:]}")
            assert reached and scheduler.process.poll() is None, f"the scheduler died\n{scheduler.log()[-3000:]}"
            assert strict_json(r.lindex("resque:queue:fuzz-good", 0)) == {"class": "NoopJob", "args": [tag]}
            left = sum(r.llen(b"resque:delayed:" + m) for m in r.zrange("resque:delayed_queue_schedule", 0, -1))
            failed = _failures(r)
            moved = _queued_items(r) - 1
            assert moved + len(failed) + left == pushed, (moved, len(failed), left, pushed)
            assert left == 0, f"{left} overdue item(s) not moved\n{scheduler.log()[-3000:]}"
            for record in failed:
                assert record["exception"] == "pyresque.InvalidPayload" and record["error"], record

        every_overdue_item_is_moved_or_failed()
        assert scheduler.process.poll() is None


# == 4. the CLI over hostile records ===========================================================
COMMANDS = [
    ["failed", "list"], ["failed", "list", "--json"], ["failed", "show", "0"], ["failed", "show", "0", "--json"],
    ["failed", "count"], ["info"], ["info", "--json"], ["workers"], ["workers", "--json"], ["queues"],
    ["queues", "--json"], ["peek", "fuzz"], ["peek", "fuzz", "--json"], ["delayed", "list"],
    ["delayed", "list", "--json"],
]


def _plant(r: Any, failures: list[bytes], others: list[bytes]) -> None:
    """Hostile failure records, and hostile values wherever the other commands read."""
    r.flushdb()
    r.rpush("resque:failed", *failures)
    other = others[0] if others else b"{}"
    r.sadd("resque:queues", "fuzz", other)
    r.rpush("resque:queue:fuzz", *others or [b"{}"])
    r.sadd("resque:workers", "elsewhere:1:fuzz", b"elsewhere:2:" + other[:200])
    r.set("resque:worker:elsewhere:1:fuzz", other)
    r.hset("resque:workers:heartbeat", "elsewhere:1:fuzz", other[:200])
    r.set("resque:worker:elsewhere:1:fuzz:started", other[:200])
    r.set("resque:stat:processed", other[:200])
    r.zadd("resque:delayed_queue_schedule", {"100": 100, other[:50]: 101})
    r.rpush("resque:delayed:100", *others or [b"{}"])


def _check_output(args: list[str], code: int, output: str) -> None:
    assert code in (0, 1), (args, code, output[-2000:])
    assert "Traceback" not in output, (args, output[-2000:])
    if code == 1:
        assert output.startswith("Error: ") and output.count("\n") == 1, (args, output[-2000:])
    elif "--json" in args:
        for line in output.splitlines():
            strict_json(line)


def test_every_cli_command_survives_hostile_records(redis_url, r):
    runner = CliRunner()

    def run(args: list[str]) -> None:
        result = runner.invoke(pyresque_cli, [*args, "--redis-url", redis_url], catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{args} crashed") from result.exception
        _check_output(args, result.exit_code, result.output)

    @fuzz(50)
    @given(failures=st.lists(st.one_of(hostile_value, _record, _job_like(queue=True)), min_size=1, max_size=4),
           others=st.lists(st.one_of(queue_item, _record), max_size=3))
    def every_command_exits_0_or_1_with_strict_json(failures: list[bytes], others: list[bytes]) -> None:
        _plant(r, failures, others)
        for args in COMMANDS:
            run(args)

    every_command_exits_0_or_1_with_strict_json()


#: A fixed hostile corpus for the real-subprocess pass (the fuzz above runs in-process).
CORPUS = [b'{"class":"\\ud800","args":[1e999],"payload":NaN}', b"\xed\xa0\x80", b"[" * 1100, b'"just text"',
          b'{"payload":{"class":["x"],"args":"y","id":7},"failed_at":{},"error":null,"worker":[],"queue":1}',
          b'{"failed_at":"2020/01/01 00:00:00 UTC","payload":{"class":"PHP_Job","args":[-0.0]},"error":"\x1b[2J"}']


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_every_cli_command_as_a_process_survives_the_corpus(redis_url, r, args):
    _plant(r, CORPUS, CORPUS[:3])
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
    env["REDIS_URL"] = redis_url
    done = subprocess.run([sys.executable, "-m", "pyresque", *args], env=env, capture_output=True, text=True,
                          timeout=60)
    _check_output(args, done.returncode, done.stdout + done.stderr)


def test_a_dead_worker_id_that_is_not_utf8_is_pruned(redis_url, r, tmp_path):
    """Ids were decoded with errors='replace': the prune never matched the stored bytes and logged
    'pruned dead worker' for it at every beat, forever, its record never failed."""
    dead_id = b"elsewhere:42:\xff\xfe"
    r.sadd("resque:workers", dead_id)
    r.set(b"resque:worker:" + dead_id, b"{}")
    r.hset("resque:workers:heartbeat", dead_id, "2020-01-01T00:00:00+00:00")
    with WorkerProcess(redis_url, tmp_path, queue="fuzz", PYRESQUE_HEARTBEAT_INTERVAL="0.1") as worker:
        wait_for(lambda: not r.sismember("resque:workers", dead_id), timeout=5, what=f"the prune\n{worker.log()[-2000:]}")
    assert not r.exists(b"resque:worker:" + dead_id) and len(_failures(r)) == 1
