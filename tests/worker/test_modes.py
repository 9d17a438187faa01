"""Execution modes: fork-every=N (a child serves N jobs), its memory ceiling, and inline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from pyresque import Resque
from pyresque.worker.forking_helper import _parse_helper_args
from support import JOBS, TESTS, WorkerProcess, records, wait_for


def _pids(worker) -> dict[int, int]:
    return {rec["n"]: rec["pid"] for rec in records(worker, "pid_job")}


def test_fork_every_3_serves_three_jobs_per_child(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    for n in range(6):
        resque.enqueue("default", "PidJob", n)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_FORK_EVERY="3") as worker:
        worker.worker_id(r)
        wait_for(lambda: len(_pids(worker)) == 6, what="six jobs")
    pids = _pids(worker)
    assert len({pids[0], pids[1], pids[2]}) == 1 and len({pids[3], pids[4], pids[5]}) == 1
    assert pids[0] != pids[3] and worker.pid not in pids.values()


def test_fork_every_a_crash_fails_only_the_job_in_hand(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    before = resque.enqueue("default", "PidJob", 0)
    crash = resque.enqueue("default", "CrashJob")
    after = resque.enqueue("default", "PidJob", 1)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_FORK_EVERY="100") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(after).status == 4, what="the job after the crash")
    assert resque.status(before).status == 4 and resque.status(crash).status == 3
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert failure["payload"]["id"] == crash and failure["error"] == "Job exited abnormally"
    pids = _pids(worker)
    assert pids[0] != pids[1]  # the crashed child was replaced


def test_a_memory_ceiling_replaces_the_child_after_its_job(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    for n in range(3):
        resque.enqueue("default", "PidJob", n)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_FORK_EVERY="100", PYRESQUE_MAX_CHILD_MEMORY="1") as worker:
        worker.worker_id(r)
        wait_for(lambda: len(_pids(worker)) == 3, what="three jobs")
    assert len(set(_pids(worker).values())) == 3


def test_fork_every_usr1_kills_the_child_and_a_new_one_takes_over(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    sleeper = resque.enqueue("default", "SleepJob", 5)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_FORK_EVERY="100") as worker:
        worker.worker_id(r)
        wait_for(lambda: records(worker, "sleep_started"), what="job start")
        worker.signal(signal.SIGUSR1)
        wait_for(lambda: resque.status(sleeper).status == 3, what="killed job failed")
        nxt = resque.enqueue("default", "PidJob", 9)
        wait_for(lambda: resque.status(nxt).status == 4, what="next job")


def test_inline_mode_runs_jobs_in_the_worker_process(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    ok = resque.enqueue("default", "PidJob", 1)
    bad = resque.enqueue("default", "FailJob", "inline boom")
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_INLINE="1") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(bad).status == 3, what="both jobs")
    assert resque.status(ok).result == worker.pid
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert (failure["exception"], failure["error"]) == ("RuntimeError", "inline boom")


def test_the_cli_forking_helper_is_a_lean_interpreter(redis_url, r, tmp_path):
    """It loads the job code, not redis-py/structlog/click: children fork from half the memory."""
    import psutil

    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "PidJob", 1)
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 4, what="job")
        parent = psutil.Process(worker.pid)
        [helper] = [p for p in parent.children() if "Forker" in " ".join(p.cmdline())]
        assert helper.memory_info().rss < 0.75 * parent.memory_info().rss


def test_job_children_inherit_no_fork_handlers_from_the_helper(redis_url, r, tmp_path):
    """threading, logging and random run an at-fork handler in every child (~120 page faults
    and ~0.25 ms a job here); the helper must not load them for the job code's sake."""
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "ForkHandlersJob")
    with WorkerProcess(redis_url, tmp_path) as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(job_id).status == 4, what="job")
    assert resque.status(job_id).result == []


def test_the_helper_prepares_every_known_job_once_for_all_children():
    """Hook names and job shapes are looked up in the helper, so no child runs dir() per job."""
    probe = (
        "import sys; from pyresque.jobs import hooks, job; from pyresque.worker import forking_helper as zygote\n"
        "from pyresque.jobs.resolver import JobResolver, load_include\n"
        f"resolver = JobResolver([load_include({JOBS!r})], [])\n"
        "zygote._prepare_jobs(resolver)\n"
        "php, ruby = resolver.resolve('PHP_Job'), resolver.resolve('FailJob')\n"
        "print(all((id(t), 'before_perform') in hooks._hook_names for t in (php, ruby)),"
        " job._ruby_style.get(php), job._ruby_style.get(ruby))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=str(TESTS), check=True)
    assert out.stdout.split() == ["True", "False", "True"]


def test_the_helper_parses_its_own_arguments_strictly():
    assert _parse_helper_args(["--fd", "5", "--include", "a.py", "--include", "b", "--allow", "app",
                               "--max-jobs", "3", "--max-rss", "2.5", "--output", "json"]) == {
        "fd": 5, "include": ["a.py", "b"], "allow": ["app"], "max-jobs": 3, "max-rss": 2.5, "output": "json"}
    assert _parse_helper_args(["--fd", "5"])["output"] == ""  # job output left alone (console logging)
    for bad, message in ((["--fd"], "pairs"), (["--include", "x"], "--fd is required"),
                         (["--fd", "x"], "needs a number"), (["--fd", "3", "--bogus", "1"], "unknown option")):
        with pytest.raises(SystemExit, match=message):
            _parse_helper_args(bad)


def test_an_idle_worker_retires_its_forking_helper_and_the_next_job_starts_one(redis_url, r, tmp_path):
    import psutil

    def helpers(pid: int) -> list:
        found = []
        for child in psutil.Process(pid).children():
            try:
                if "Forker" in " ".join(child.cmdline()):
                    found.append(child)
            except (psutil.ZombieProcess, psutil.NoSuchProcess):  # exiting: no longer a helper
                pass
        return found

    resque = Resque(redis_url)
    first = resque.enqueue("default", "PidJob", 1)
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_HELPER_IDLE="0.5") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(first).status == 4, what="first job")
        wait_for(lambda: not helpers(worker.pid), what="the idle helper to retire")
        second = resque.enqueue("default", "PidJob", 2)
        wait_for(lambda: resque.status(second).status == 4, what="the job after the retirement")
        assert resque.status(second).result != worker.pid  # still a forked child
        assert "forking helper retired while idle" in worker.log()


def test_a_helper_started_after_a_deploy_still_runs_the_workers_release(redis_url, r, tmp_path):
    """A retired helper is restarted from the include's real path: after ``current`` is flipped to
    a new release, this worker's children still run the code the worker itself loaded."""
    import os

    for release in ("r1", "r2"):
        (tmp_path / release).mkdir()
        (tmp_path / release / "release_jobs.py").write_text(
            "import pyresque\n\n\n@pyresque.register\nclass ReleaseJob:\n"
            f"    @staticmethod\n    def perform():\n        return {release!r}\n")
    current = tmp_path / "current"
    os.symlink(tmp_path / "r1", current)
    resque = Resque(redis_url)
    first = resque.enqueue("default", "ReleaseJob")
    with WorkerProcess(redis_url, tmp_path, APP_INCLUDE=str(current / "release_jobs.py"),
                       PYRESQUE_HELPER_IDLE="0.3") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(first).status == 4, what="the first job")
        os.unlink(current)
        os.symlink(tmp_path / "r2", current)  # the deploy
        wait_for(lambda: "forking helper retired while idle" in worker.log(), what="the helper to retire")
        second = resque.enqueue("default", "ReleaseJob")
        wait_for(lambda: resque.status(second).status == 4, what="the job after the deploy")
    assert resque.status(first).result == "r1" and resque.status(second).result == "r1"
