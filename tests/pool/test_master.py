"""The supervising master: a real master subprocess, real workers, real signals, real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pyresque import Resque
from pyresque.pool.master import RestartPolicy
from pyresque.wire import procline
from support import WorkerProcess, records, wait_for


class MasterProcess(WorkerProcess):
    """``python -m pyresque <args>`` running a master (COUNT=n, or ``pool``), with its workers."""

    def __init__(self, redis_url: str, tmp_path: Path, *args: str, **env: str) -> None:
        super().__init__(redis_url, tmp_path, **env)
        self.args = args or ("worker",)
        self.seen: set[int] = set()

    def start(self) -> MasterProcess:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "pyresque", *self.args], env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def registered(self, r) -> dict[int, str]:
        """Registered workers by pid (each test has a Redis of its own)."""
        found = {int(m.decode().split(":")[1]): m.decode() for m in r.smembers("resque:workers")}
        self.seen.update(found)
        return found

    def wait_workers(self, r, count: int, timeout: float = 15, exclude=()) -> dict[int, str]:
        def ready():
            found = self.registered(r)
            return found if len(found) == count and not set(found) & set(exclude) and \
                set(found) <= self.children() else None

        return wait_for(ready, timeout, what=f"{count} workers\n{self.log()}")

    def children(self) -> set[int]:
        try:
            kids = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return set()
        self.seen.update(k.pid for k in kids)
        return {k.pid for k in kids if _alive(k.pid)}

    def title(self) -> str:
        return _title(self.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.children()
        super().stop()
        for pid in self.seen:  # workers left behind by a failed test (their master was killed)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _title(pid: int) -> str:
    return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()


def test_count_pool_replaces_a_killed_worker_and_quit_lets_every_job_finish(redis_url, r, tmp_path):
    pidfile = tmp_path / "master.pid"
    with MasterProcess(redis_url, tmp_path, COUNT="3", PIDFILE=str(pidfile)) as master:
        first = master.wait_workers(r, 3)
        assert int(pidfile.read_text()) == master.pid
        assert master.title() == f"resque-pool-master: managing {sorted(first)}"
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # replaced; the replacement's start-up prune unregisters the dead one
        second = master.wait_workers(r, 3, exclude=[victim])
        assert len(set(second) - set(first)) == 1 and "worker died unexpectedly" in master.log()
        assert "CRASH LOOP" not in master.log()
        resque = Resque(redis_url)
        jobs = [resque.enqueue("default", "SleepJob", 1) for _ in range(3)]
        wait_for(lambda: len(records(master, "sleep_started")) == 3, what=f"three jobs running\n{master.log()}")
        master.signal(signal.SIGQUIT)
        assert master.wait() == 0
        assert [resque.status(job).status for job in jobs] == [4, 4, 4]
        assert len(records(master, "sleep_finished")) == 3
        assert r.scard("resque:workers") == 0 and r.llen("resque:failed") == 0 and r.hlen("resque:workers:heartbeat") == 0
        assert not pidfile.exists() and not any(_alive(pid) for pid in second)


def test_master_title_is_seen_by_phps_scan_but_not_as_a_worker_by_rubys():
    procline_title = "resque-pool-master: managing [101, 102]"
    assert procline.PHP_WORKER_PATTERN.search(procline_title)
    assert not procline.RUBY_WORKER_PATTERN.search(procline_title) and not procline.looks_like_resque(procline_title)


def test_quit_right_after_start_waits_for_the_workers_handlers(redis_url, r, tmp_path):
    """Workers start with their signals blocked, so a QUIT while they import is not fatal."""
    with MasterProcess(redis_url, tmp_path, "worker", "-c", "2") as master:
        wait_for(lambda: len(master.children()) == 2, what="two workers spawned")
        master.signal(signal.SIGQUIT)
        assert master.wait() == 0
        assert master.log().count("worker exited") == 2 and "exit='exit code 0'" in master.log()
        assert "killed by" not in master.log() and r.scard("resque:workers") == 0


STREAM_JOBS = '''
import json, os, time
import pyresque

VERSION = {version}
{extra}

@pyresque.register
class StreamJob:
    def perform(self):
        seq, enqueued = self.args
        line = json.dumps({{"seq": seq, "version": VERSION, "start": time.time(), "enqueued": enqueued,
                           "worker": int(self.job.worker_id.split(":")[1])}})
        with open(os.path.join(os.environ["JOB_RECORD_DIR"], "stream.log"), "a") as out:
            out.write(line + "\\n")
'''


def _write_jobs(path: Path, version: int, extra: str = "") -> None:
    path.write_text(STREAM_JOBS.format(version=version, extra=extra))


def _stream(master: MasterProcess) -> list[dict]:
    path = master.record_dir / "stream.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_hup_rolls_to_new_job_code_without_a_gap_in_service(redis_url, r, tmp_path):
    jobs_py = tmp_path / "stream_jobs.py"
    _write_jobs(jobs_py, 1)
    resque = Resque(redis_url)
    with MasterProcess(redis_url, tmp_path, COUNT="2", APP_INCLUDE=str(jobs_py), INTERVAL="0.05") as master:
        old = master.wait_workers(r, 2)
        seq = 0
        hup_at = done_at = None
        began = time.monotonic()
        while done_at is None or time.monotonic() < done_at + 0.5:  # a steady stream, every 20 ms
            resque.enqueue("default", "StreamJob", seq, time.time())
            seq += 1
            if hup_at is None and time.monotonic() - began > 0.6:
                _write_jobs(jobs_py, 2)
                master.signal(signal.SIGHUP)
                hup_at = time.monotonic()
            if hup_at and done_at is None and "the old ones finish their jobs" in master.log() and \
                    not set(master.registered(r)) & set(old):
                done_at = time.monotonic()
            assert time.monotonic() - began < 20, master.log()
            time.sleep(0.02)
        ran = wait_for(lambda: (s := _stream(master)) and len(s) == seq and s, what=f"every job\n{master.log()}")
        new = master.wait_workers(r, 2)
        assert not set(new) & set(old) and master.process.poll() is None
    ran.sort(key=lambda job: job["start"])
    waits = [job["start"] - job["enqueued"] for job in ran]
    gaps = [b["start"] - a["start"] for a, b in zip(ran, ran[1:])]
    versions = [job["version"] for job in ran]
    print(f"\nHUP handover: {seq} jobs, longest wait {max(waits) * 1000:.0f} ms, longest gap between job starts "
          f"{max(gaps) * 1000:.0f} ms, rollover took {(done_at - hup_at) * 1000:.0f} ms")
    assert sorted(job["seq"] for job in ran) == list(range(seq))  # each job ran exactly once
    assert versions[0] == 1 and versions[-1] == 2 and versions[-10:] == [2] * 10
    assert {job["worker"] for job in ran if job["version"] == 2} <= set(new)
    assert max(waits) < 0.6 and max(gaps) < 0.6  # normally ~0.1 s: the polling interval plus a fork
    assert r.llen("resque:failed") == 0


def test_hup_follows_the_deploy_symlink_and_keeps_the_old_workers_when_new_code_is_broken(redis_url, r, tmp_path):
    for release, version, extra in (("r1", 1, ""), ("r2", 2, "raise ImportError('half-deployed')"), ("r3", 3, "")):
        (tmp_path / release).mkdir()
        _write_jobs(tmp_path / release / "stream_jobs.py", version, extra)

    def deploy(release: str) -> None:
        (tmp_path / "next").symlink_to(tmp_path / release)
        os.replace(tmp_path / "next", tmp_path / "current")

    def run_one(seq: int) -> int:
        resque.enqueue("default", "StreamJob", seq, time.time())
        return wait_for(lambda: [j for j in _stream(master) if j["seq"] == seq], what=f"job {seq}\n{master.log()}")[0]["version"]

    deploy("r1")
    resque = Resque(redis_url)
    # the include is a module name, found in the worker's working directory: the symlink's target
    with MasterProcess(redis_url, tmp_path, COUNT="2", APP_INCLUDE="stream_jobs",
                       PYRESQUE_WORKDIR=str(tmp_path / "current")) as master:
        old = master.wait_workers(r, 2)
        assert run_one(0) == 1
        deploy("r2")
        master.signal(signal.SIGHUP)
        wait_for(lambda: "ROLLING RESTART ABORTED" in master.log(), what=f"the abort\n{master.log()}")
        assert run_one(1) == 1 and set(master.registered(r)) == set(old)
        wait_for(lambda: master.children() == set(old), what="the new generation to be gone")
        deploy("r3")
        master.signal(signal.SIGHUP)
        new = master.wait_workers(r, 2, exclude=old)
        assert run_one(2) == 3
        wait_for(lambda: master.children() == set(new), what="the old generation to be gone")


def test_ttin_ttou_resize_and_usr2_pauses_workers_started_later_too(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with MasterProcess(redis_url, tmp_path, COUNT="2") as master:
        first = master.wait_workers(r, 2)
        master.signal(signal.SIGUSR2)
        master.signal(signal.SIGTTIN)
        third = master.wait_workers(r, 3)
        wait_for(lambda: all(_title(pid).endswith(": Paused") for pid in third), what=f"all paused\n{master.log()}")
        job = resque.enqueue("default", "PHP_Job", {})
        time.sleep(0.5)
        assert resque.status(job).status == 1 and "(paused)" in master.title()
        master.signal(signal.SIGCONT)
        wait_for(lambda: resque.status(job).status == 4, what="the job after CONT")
        master.signal(signal.SIGTTOU)
        time.sleep(0.05)
        master.signal(signal.SIGTTOU)
        last = master.wait_workers(r, 1)
        assert set(last) <= set(first) | set(third) and master.process.poll() is None


def test_a_sigkilled_master_leaves_workers_that_finish_their_jobs_and_exit(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    with MasterProcess(redis_url, tmp_path, COUNT="2") as master:
        workers = master.wait_workers(r, 2)
        running = [resque.enqueue("default", "SleepJob", 1.5) for _ in range(2)]
        wait_for(lambda: len(records(master, "sleep_started")) == 2, what="two jobs running")
        master.signal(signal.SIGKILL)
        master.wait()
        waiting = resque.enqueue("default", "PHP_Job", {})
        killed = time.monotonic()
        wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=8, what=f"workers to exit\n{master.log()}")
        assert time.monotonic() - killed < 5
        assert [resque.status(job).status for job in running] == [4, 4]
        assert resque.status(waiting).status == 1 and r.llen("resque:queue:default") == 1  # left for the next worker
        assert r.scard("resque:workers") == 0 and r.llen("resque:failed") == 0
        assert master.log().count("supervising master is gone") == 2


@pytest.mark.parametrize("graceful", ["", "1"])
def test_term_is_forwarded_with_the_workers_term_semantics(redis_url, r, tmp_path, graceful):
    resque = Resque(redis_url)
    with MasterProcess(redis_url, tmp_path, COUNT="2", GRACEFUL_TERM=graceful) as master:
        master.wait_workers(r, 2)
        job = resque.enqueue("default", "SleepJob", 1)
        wait_for(lambda: records(master, "sleep_started"), what="job running")
        master.signal(signal.SIGTERM)
        assert master.wait() == 0
        assert resque.status(job).status == (4 if graceful else 3)
        assert r.llen("resque:failed") == (0 if graceful else 1) and r.scard("resque:workers") == 0


def test_workers_that_die_at_start_are_a_crash_loop_with_backoff(redis_url, r, tmp_path):
    broken = tmp_path / "broken_jobs.py"
    broken.write_text("raise RuntimeError('cannot start')\n")
    with MasterProcess(redis_url, tmp_path, COUNT="2", APP_INCLUDE=str(broken)) as master:
        wait_for(lambda: "CRASH LOOP" in master.log(), timeout=10, what=f"the crash loop\n{master.log()}")
        assert "crash loop: default" in master.title()
        delays = [json.loads(line.split("retry_in=")[1].split()[0]) for line in master.log().splitlines()
                  if "retry_in=" in line]
        assert delays[:3] == [0.5, 1.0, 2.0]
        sent = time.monotonic()
        master.signal(signal.SIGQUIT)  # also while a restart is pending
        assert master.wait() == 0 and time.monotonic() - sent < 3


def test_burst_mode_master_exits_when_the_queues_are_drained(redis_url, r, tmp_path):
    resque = Resque(redis_url)
    jobs = [resque.enqueue("default", "NoopJob") for _ in range(6)]
    with MasterProcess(redis_url, tmp_path, COUNT="2", INTERVAL="0") as master:
        assert master.wait() == 0
        assert [resque.status(job).status for job in jobs] == [4] * 6 and r.scard("resque:workers") == 0


POOL_INI = """
[pool]
high,default = 2
low = 1        ; one is plenty

[pool:production]
low = 2

[worker]
INTERVAL = 0.1
"""


def test_pool_config_starts_the_right_workers_on_the_right_queues(redis_url, r, tmp_path):
    (tmp_path / "pool.ini").write_text(POOL_INI)
    resque = Resque(redis_url)
    with MasterProcess(redis_url, tmp_path, "pool", "--config", str(tmp_path / "pool.ini"),
                       PYRESQUE_ENV="production", INTERVAL="5") as master:
        workers = master.wait_workers(r, 4)
        queues = sorted(wid.split(":", 2)[2] for wid in workers.values())
        assert queues == ["high,default", "high,default", "low", "low"]
        jobs = [resque.enqueue(q, "PHP_Job", {}) for q in ("high", "default", "low")]
        wait_for(lambda: all(resque.status(j).status == 4 for j in jobs), timeout=3, what="jobs on every queue")


def test_pool_check_prints_the_parsed_config(tmp_path):
    (tmp_path / "pool.ini").write_text(POOL_INI)
    done = subprocess.run([sys.executable, "-m", "pyresque", "pool", "--config", str(tmp_path / "pool.ini"), "--check"],
                          capture_output=True, text=True, env={**os.environ, "PYRESQUE_ENV": "", "RESQUE_ENV": ""})
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["groups"] == {"high,default": 2, "low": 1} and doc["worker_env"] == {"INTERVAL": "0.1"}
    bad = tmp_path / "bad.ini"
    bad.write_text("[pool]\nhigh = lots\n")
    done = subprocess.run([sys.executable, "-m", "pyresque", "pool", "--config", str(bad)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "whole number" in done.stderr and "Traceback" not in done.stderr


def test_restart_policy_backs_off_young_deaths_and_forgives_long_lives():
    policy = RestartPolicy(start=0.5, cap=4, min_uptime=5, crash_loop=3)
    assert policy.died("q", uptime=600, now=0) == 0
    assert [policy.died("q", uptime=0.3, now=0) for _ in range(5)] == [0.5, 1, 2, 4, 4]
    assert policy.crash_looping("q") and not policy.crash_looping("other")
    assert policy.wait("q", now=1) == 3
    assert policy.died("q", uptime=6, now=10) == 0 and not policy.crash_looping("q") and policy.wait("q", 10) == 0


@pytest.mark.parametrize("opt_out", [False, True], ids=["moves", "no-scheduler"])
def test_the_master_moves_due_delayed_jobs_too_unless_its_workers_opt_out(redis_url, r, opt_out):
    """Its workers may all be busy with inline jobs; the master then still moves delayed jobs."""
    from pyresque.pool import config as pool_config
    from pyresque.pool.master import Master

    ts = int(time.time()) - 5
    r.zadd("resque:delayed_queue_schedule", {str(ts): ts})
    r.rpush(f"resque:delayed:{ts}", json.dumps({"class": "PHP_Job", "args": [], "queue": "default"}))
    environ = {"REDIS_URL": redis_url} | ({"PYRESQUE_SCHEDULER": "0"} if opt_out else {})
    master = Master(lambda: pool_config.single("default", 1), environ=environ)
    master._move_delayed()
    if master._duty is not None:
        master._duty[1].due = 0.0  # its first pass waits a random part of a second
        master._move_delayed()
    assert r.llen("resque:queue:default") == (0 if opt_out else 1)
