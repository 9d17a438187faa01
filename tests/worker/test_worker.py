"""The worker, as a real subprocess with real signals, compared with the vectors; in every execution
mode (conftest.WORKER_MODES): where a mode differs by design (no child process, slot ids, a crash
that takes the worker down), the test asserts that mode's documented counterpart."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time

import psutil
import pytest

import support
import vectors
from pyresque import Resque
from pyresque.wire import payload as wire
from support import WorkerProcess, records, wait_for

pytestmark = pytest.mark.usefixtures("worker_mode")

HOST = socket.gethostname()
JOB_TITLE = r"resque-[0-9.]+: Processing default since \d+ \[{}\]$"


def title_of(pid: int) -> str:
    return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()


def assert_ran_where_the_mode_runs_jobs(ran: dict, worker: WorkerProcess) -> None:
    if support.mode_forks():  # forked by the worker, or by its forking helper (a child of the worker)
        assert ran["pid"] != worker.pid
        assert ran["ppid"] == worker.pid or psutil.Process(ran["ppid"]).ppid() == worker.pid
    else:  # inline and threads: in the worker process itself
        assert ran["pid"] == worker.pid


def shape(snapshot: dict, host: str, pid: int, ignore: tuple[str, ...] = ()) -> dict:
    """Keys (normalised) with their types and whether they expire."""
    out = {}
    snapshot = {re.sub(r"@\d+(?=:\d)", "", k): v for k, v in snapshot.items()}  # slots: one worker's keys each
    for key, entry in vectors.normalise_state(snapshot, host, pid).items():
        if any(part in key for part in ignore):
            continue
        out[key] = (entry["type"], entry["ttl"] if entry["ttl"] == -1 else "expiring")
    return out


def vector_host_pid(snapshot: dict) -> tuple[str, int]:
    for key in snapshot:
        match = re.match(r"resque:worker:([^:]+):(\d+):", key)
        if match:
            return match.group(1), int(match.group(2))
    raise AssertionError("no worker key in snapshot")


def failures(r) -> list[dict]:
    return [json.loads(item) for item in r.lrange("resque:failed", 0, -1)]


def test_php_job_runs_and_state_matches_php_vector(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "PHP_Job", {"name": "x", "n": 1})
    with WorkerProcess(redis_url, tmp_path) as worker:
        wid = worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 4, what="job complete")
        assert resque.status(job_id).result == {"args": {"name": "x", "n": 1}, "queue": "default", "id": job_id}
        assert 86390 < r.ttl(f"resque:job:{job_id}:status") <= 86400
        ran = records(worker, "php_job")[0]
        assert ran["calls"] == ["setUp", "perform", "tearDown"]
        assert_ran_where_the_mode_runs_jobs(ran, worker)
        if not support.mode_is_threaded():  # threads: one summary title, see the titles test below
            assert re.match(JOB_TITLE.format("PHP_Job"), ran["title"])
        ours = shape(vectors.dump(r), HOST, worker.pid, ignore=("pruning_dead_workers", "workers:heartbeat",
                                                                  "pyresque_prune_horizons", "pyresque_reservations",
                                                                  "pyresque_metrics"))
        theirs_state = vectors.state(vectors.load("php-resque-v1.3.6/b_worker_success"), "after_complete_worker_idle")
        theirs = shape(theirs_state, *vector_host_pid(theirs_state))
        assert ours == theirs
        assert wid in worker.worker_ids(r)
        for each in worker.worker_ids(r):  # every slot of a threaded worker is a worker of its own
            started = r.get(f"resque:worker:{each}:started").decode()
            assert started == time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(
                time.mktime(time.strptime(started[:19], "%Y-%m-%d %H:%M:%S"))))
            beat = r.hget("resque:workers:heartbeat", each).decode()
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", beat)
        worker.signal(signal.SIGQUIT)
        assert worker.wait() == 0
    after_quit = shape(vectors.dump(r), HOST, worker.pid, ignore=("pruning_dead_workers", "pyresque_metrics"))
    theirs_state = vectors.state(vectors.load("php-resque-v1.3.6/b_worker_success"), "after_quit")
    assert after_quit == shape(theirs_state, "vm", 0)


def test_ruby_job_gets_positional_args_and_hooks_run_in_order(redis_url, r, tmp_path):
    Resque(redis_url).enqueue("default", "SomeJob", 1, "two", {"k": "v"}, shape="ruby")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: r.get("resque:stat:processed") == b"1", what="job processed")
        assert records(worker, "ruby_job")[0]["args"] == [1, "two", {"k": "v"}]
        times = {name: os.stat(next(worker.record_dir.glob(f"{name}.*.json"))).st_mtime_ns
                 for name in ("ruby_hook_before", "ruby_hook_around_in", "ruby_job", "ruby_hook_around_out",
                              "ruby_hook_after")}
        assert list(times) == sorted(times, key=times.get)
        assert r.llen("resque:failed") == 0


def test_working_on_record_and_titles_during_a_job_match_the_vectors(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "GateJob", "job")
    with WorkerProcess(redis_url, tmp_path) as worker:
        started = wait_for(lambda: records(worker, "gate_started"), what="job to start")[0]
        wid = worker.working_on(r, job_id)
        record = json.loads(r.get(f"resque:worker:{wid}"))
        assert list(record) == ["queue", "run_at", "payload"]
        assert record["queue"] == "default" and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", record["run_at"])
        assert record["payload"]["id"] == job_id
        assert resque.status(job_id).status == 2
        ruby = vectors.state(vectors.load("ruby-resque/f2_ruby_worker"), "during_job")
        ruby_record = json.loads(ruby[f"resque:worker:{':'.join(map(str, vector_host_pid(ruby)))}:default"]["value"])
        assert list(ruby_record) == list(record)
        assert [each for each in worker.worker_ids(r) if r.exists(f"resque:worker:{each}")] == [wid]  # idle slot: none
        assert_ran_where_the_mode_runs_jobs(started, worker)
        if support.mode_forks():  # Ruby's titles: the parent says whom it forked, the child what it runs
            assert re.match(rf"resque-[0-9.]+: Forked {started['pid']} at \d+$", title_of(worker.pid))
            assert re.match(JOB_TITLE.format("GateJob"), started["title"])
        elif support.mode_is_inline():  # Ruby without a fork: the worker itself says what it runs
            assert re.match(JOB_TITLE.format("GateJob"), started["title"])
            assert re.match(JOB_TITLE.format("GateJob"), title_of(worker.pid))
        else:  # threads: one summary title for the process (its slots' jobs are their worker:<id> records)
            slots = "async slots" if support.mode_is_async() else "threads"
            wait_for(lambda: re.match(rf"resque-[0-9.]+: Processing default with 1 of {worker.slots} {slots} busy$",
                                      title_of(worker.pid)), what="the threaded worker's title")
        worker.open_gate("job")
        wait_for(lambda: resque.status(job_id).status == 4, what="job complete")
        assert resque.status(job_id).result == "passed"
        assert not r.exists(f"resque:worker:{wid}")  # removed in the same step as the status


def test_neighbours_pruning_rules_see_a_live_pyresque_worker(redis_url, r, tmp_path):
    """Ruby's and php-resque's own pid scans must list our worker, idle and busy."""
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)

        def scans() -> tuple[bool, bool]:
            ruby = subprocess.run(
                "ps -A -o pid,command | grep -E '[r]esque:work|[r]esque:\\sStarting|[r]esque-[0-9]' | grep -v resque-web",
                shell=True, capture_output=True, text=True).stdout
            php = subprocess.run("ps -A -o pid,args | grep [r]esque", shell=True, capture_output=True, text=True).stdout
            pids = lambda text: {int(line.split()[0]) for line in text.splitlines() if line.strip()}  # noqa: E731
            return worker.pid in pids(ruby), worker.pid in pids(php)

        assert scans() == (True, True)
        Resque(redis_url).enqueue("default", "SleepJob", 1)
        wait_for(lambda: records(worker, "sleep_started"), what="job to start")
        assert scans() == (True, True)


def test_failure_records_match_the_vectors_shape(redis_url, r, tmp_path):
    """Fork modes record the four failures in one worker. Inline and threaded workers run jobs in
    their own process, so the two jobs that end their process end the worker ("a crash takes the
    worker down"): the next worker's start-up prune fails each, with Ruby's unregister record."""
    resque = Resque(redis_url)
    workers: list[WorkerProcess] = []

    def serve_until(count: int) -> None:
        while r.llen("resque:failed") < count:
            if not workers or workers[-1].process.poll() is not None:
                assert len(workers) < 3, "\n".join(w.log() for w in workers)
                workers.append(WorkerProcess(redis_url, tmp_path).start())
            last = workers[-1]
            wait_for(lambda last=last: r.llen("resque:failed") >= count or last.process.poll() is not None,
                     what=f"{count} failures\n{last.log()}")

    try:
        failing = resque.enqueue("default", "FailJob", "boom")
        missing = resque.enqueue("default", "No_Such_Job", {"a": 1})
        serve_until(2)
        exited = resque.enqueue("default", "ExitJob", 3)  # one at a time: whose process it ends is certain
        serve_until(3)
        killed = resque.enqueue("default", "SelfKillJob")
        serve_until(4)
        survivor = workers[-1]
        live = set(survivor.worker_ids(r))
        ours = failures(r)
        by_worker = {wid: sum(1 for rec in ours if rec["worker"] == wid) for wid in {rec["worker"] for rec in ours}}
        assert r.get("resque:stat:failed") == b"4"
        for wid in live:  # per-worker stats count what that worker recorded itself
            assert int(r.get(f"resque:stat:failed:{wid}") or 0) == by_worker.get(wid, 0)
        for wid in set(by_worker) - live:  # a pruned worker's stats went with it (Ruby's unregister)
            assert not r.exists(f"resque:stat:failed:{wid}") and not r.exists(f"resque:stat:processed:{wid}")
        pruned = sum(1 for rec in ours if rec["error"] == "Job still being processed")
        assert r.get("resque:stat:processed") == str(4 - pruned).encode()  # a prune counts failed only (Ruby, php)
    finally:
        for worker in workers:
            worker.stop()
    php = failures_from_vector("php-resque-v1.3.6/c_job_exception", "after_exception_failure")[0]
    ruby = failures_from_vector("ruby-resque/f2_ruby_worker", "after_failure")[0]
    for record in ours:
        assert list(record) == list(php) == list(ruby)
        assert record["queue"] == "default"
        assert re.match(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d UTC$", record["failed_at"])
        assert isinstance(record["backtrace"], list)
    by_id = {rec["payload"]["id"]: rec for rec in ours}
    assert (by_id[failing]["exception"], by_id[failing]["error"]) == ("RuntimeError", "boom")
    assert any("fixtures.py" in line and "perform" in line for line in by_id[failing]["backtrace"])
    assert by_id[missing]["exception"] == "pyresque.JobClassNotFound"
    assert by_id[missing]["error"].startswith("Could not find job class No_Such_Job.")
    ran_by = {job_id: wire.parse_worker_id(by_id[job_id]["worker"]) for job_id in by_id}
    assert {(w.host, w.pid) for w in ran_by.values()} <= {(HOST, w.pid) for w in workers}
    if support.mode_forks():
        assert len(workers) == 1 and set(by_worker) == live
        assert (by_id[exited]["exception"], by_id[exited]["error"]) == ("pyresque.DirtyExit", "Job exited with exit code 3")
        assert (by_id[killed]["exception"], by_id[killed]["error"]) == ("pyresque.DirtyExit", "Job exited abnormally")
    else:
        assert [w.process.returncode for w in workers[:-1]] == [3, -signal.SIGKILL]
        assert ran_by[exited].pid == workers[0].pid and ran_by[killed].pid == workers[1].pid
        for job_id in (exited, killed):
            assert (by_id[job_id]["exception"], by_id[job_id]["error"]) == ("pyresque.DirtyExit", "Job still being processed")
    assert ran_by[failing].pid == ran_by[missing].pid == workers[0].pid
    php_dirty = failures_from_vector("php-resque-v1.3.6/e_dirty_exit", "after_exit1")[0]
    assert php_dirty["error"] == "Job exited with exit code 1"
    for job_id in (failing, missing, exited, killed):
        assert resque.status(job_id).status == 3


def failures_from_vector(name: str, state: str) -> list[dict]:
    return [json.loads(v) for v in vectors.state(vectors.load(name), state)["resque:failed"]["value"]]


@pytest.mark.parametrize(
    "item, reason",
    [
        (b"this is not json", "payload is not JSON"),
        (b'{"args":[1]}', "payload has no 'class' string"),
        (b'{"class":"PHP_Job","args":{"a":1}}', "payload 'args' is a JSON dict, not a list"),
        (b'\xff\xfe{"class":"X"}', "payload is not UTF-8"),
        (b'[1,2,3]', "payload is a JSON list, not an object"),
    ],
)
def test_bad_queue_items_go_to_failed_and_the_worker_keeps_going(redis_url, r, tmp_path, item, reason):
    r.sadd("resque:queues", "default")
    r.rpush("resque:queue:default", item)
    resque = Resque(redis_url)
    good = resque.enqueue("default", "PHP_Job", {"after": True})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good).status == 4, what="the good job after the bad one")
    [record] = failures(r)
    assert record["exception"] == "pyresque.InvalidPayload" and record["error"].startswith(reason)
    raw = record["payload"]
    assert raw["raw"] == item.decode("utf-8", "backslashreplace")
    if "raw_base64" in raw:
        import base64

        assert base64.b64decode(raw["raw_base64"]) == item


def test_unknown_class_with_id_sets_status_failed(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "os.system", "echo pwned")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 3, what="failed status")
    assert "Could not find job class os.system" in failures(r)[0]["error"]


def test_dont_perform_skips_without_failing(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "SkipJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 4, what="skipped job complete")
        assert resque.status(job_id).result is False  # php-resque's DontPerform result
        assert not records(worker, "skip_job_ran") and r.llen("resque:failed") == 0


def test_blocking_mode_takes_queues_in_priority_order(redis_url, r, tmp_path):
    """While a high job is queued, no worker (no slot) takes a default one; jobs held open so that
    every slot of a threaded worker has reserved before the test looks."""
    resque = Resque(redis_url)
    worker = WorkerProcess(redis_url, tmp_path, queue="high,default", BLOCKING="1", INTERVAL="1")
    low = resque.enqueue("default", "SomeJob", "low")
    highs = [resque.enqueue("high", "GateJob", "high") for _ in range(worker.slots)]  # one per slot
    with worker:
        wait_for(lambda: len(records(worker, "gate_started")) == worker.slots, what=f"high jobs\n{worker.log()}")
        assert r.llen("resque:queue:default") == 1 and not records(worker, "ruby_job")
        worker.open_gate("high")
        wait_for(lambda: resque.status(low).status == 4, what="the low job")
        assert [rec["args"] for rec in records(worker, "ruby_job")] == [["low"]]
        assert all(resque.status(high).status == 4 for high in highs)


def test_blocking_job_never_skips_running(redis_url, r, tmp_path):
    """php-resque with BLOCKING can go 1 -> 4 (vector b4); ours always records RUNNING first."""
    resque = Resque(redis_url)
    with WorkerProcess(redis_url, tmp_path, BLOCKING="1", INTERVAL="1") as worker:
        worker.worker_id(r)
        time.sleep(0.2)
        job_id = resque.enqueue("default", "SleepJob", 0.5)
        wait_for(lambda: resque.status(job_id).status == 2, what="RUNNING")
        wait_for(lambda: resque.status(job_id).status == 4, what="COMPLETE")


def test_count_below_one_is_a_clear_error(redis_url, tmp_path):
    worker = WorkerProcess(redis_url, tmp_path, COUNT="0").start()  # COUNT>1: see test_master.py
    assert worker.wait() == 2
    assert "--count" in worker.log() and "Traceback" not in worker.log()


def test_missing_queue_and_bad_include_are_clear_errors(redis_url, tmp_path):
    bad = WorkerProcess(redis_url, tmp_path, QUEUE="", APP_INCLUDE=str(tmp_path / "nope.py")).start()
    assert bad.wait() == 2 and "Traceback" not in bad.log()
    include = WorkerProcess(redis_url, tmp_path, APP_INCLUDE=str(tmp_path / "nope.py")).start()
    assert include.wait() == 2 and "does not exist" in include.log()


def test_json_logging_has_one_line_per_job_start_and_end(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path, LOGGING="json") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 4, what="job")
        worker.signal(signal.SIGQUIT)
        worker.wait()
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    events = [line for line in lines if line.get("job_id") == job_id]
    assert [e["event"] for e in events] == ["job started", "job done"]
    assert events[1]["outcome"] == "complete" and events[1]["job_class"] == "PHP_Job" and events[1]["duration"] >= 0


def test_misbehaving_jobs_fail_precisely_and_the_worker_keeps_going(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ids = {name: resque.enqueue("default", name) for name in (
        "SysExitJob", "InterruptJob", "BadConstructorJob", "UnserialisableResultJob", "HookRaisesJob", "SetUpRaisesJob")}
    last = resque.enqueue("default", "PHP_Job", {"last": True})
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(last).status == 4, what=f"the last job\n{worker.log()}")
        assert not records(worker, "hook_raises_ran") and not records(worker, "setup_raises_ran")
    by_class = {f["payload"]["class"]: f for f in failures(r)}
    assert (by_class["SysExitJob"]["exception"], by_class["SysExitJob"]["error"]) == ("SystemExit", "3")
    assert by_class["InterruptJob"]["exception"] == "KeyboardInterrupt"
    assert (by_class["BadConstructorJob"]["exception"], by_class["BadConstructorJob"]["error"]) == ("TypeError", "cannot build")
    assert (by_class["HookRaisesJob"]["exception"], by_class["HookRaisesJob"]["error"]) == ("ValueError", "hook says no")
    assert by_class["SetUpRaisesJob"]["exception"] == "LookupError"
    assert "UnserialisableResultJob" not in by_class
    result = resque.status(ids["UnserialisableResultJob"]).result
    assert result["unserialisable"] == "set" and result["repr"] == "{1, 2, 3}"
    for name, job_id in ids.items():
        assert resque.status(job_id).status == (4 if name == "UnserialisableResultJob" else 3), name


def test_a_worker_whose_master_is_gone_finishes_its_job_and_exits(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "SleepJob", 1)
    # our parent is the test process, not pid 1: the worker believes its master has died
    worker = WorkerProcess(redis_url, tmp_path, PYRESQUE_SUPERVISOR_PID="1").start()
    try:
        assert worker.wait(10) == 0
        assert "supervising master is gone" in worker.log()
        assert resque.status(job_id).status in (1, 4)  # never killed half-way
        assert r.scard("resque:workers") == 0
    finally:
        worker.stop()


def test_a_job_longer_than_the_prune_interval_keeps_its_worker_alive(redis_url, r, tmp_path):
    """The heartbeat goes on while a job runs, so no prune (a neighbour's, or a threaded worker's
    own) takes a busy worker for dead, fails its job and unregisters it. (The prune interval is 2 s,
    not 1: a heartbeat has a resolution of one second.)"""
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "GateJob", "job")
    fast = {"PYRESQUE_HEARTBEAT_INTERVAL": "0.2", "PYRESQUE_PRUNE_INTERVAL": "2"}
    with WorkerProcess(redis_url, tmp_path, **fast) as worker, \
            WorkerProcess(redis_url, tmp_path, queue="elsewhere", **fast) as neighbour:
        wait_for(lambda: records(worker, "gate_started"), what=f"job to start\n{worker.log()}")
        wid = worker.working_on(r, job_id)
        neighbour.worker_ids(r)  # pruning at every beat from now on, as is the worker itself

        def beat() -> float:
            raw = r.hget("resque:workers:heartbeat", wid)
            return wire.parse_time(raw.decode()) if raw is not None else 0.0

        first = beat()
        wait_for(lambda: beat() >= first + 3, timeout=8, what=f"the busy worker's heartbeat to go on\n{worker.log()}")
        assert r.sismember("resque:workers", wid) and resque.status(job_id).status == 2
        assert r.llen("resque:failed") == 0, neighbour.log()
        worker.open_gate("job")
        wait_for(lambda: resque.status(job_id).status == 4, what="job complete")
        assert r.llen("resque:failed") == 0 and r.sismember("resque:workers", wid)
