"""Running real worker processes in tests, and waiting for what they do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import redis

TESTS = Path(__file__).parent
ROOT = TESTS.parent
JOBS = str(TESTS / "fixtures.py")

#: Extra environment for every worker a test starts; the ``worker_mode`` fixture sets it so the
#: behavioural suites run once per execution mode.
MODE_ENV: dict[str, str] = {}


def mode_forks() -> bool:
    """Does the mode under test run each job in a forked child (fork, fork-every, no-prefork)?"""
    return not mode_is_inline() and not mode_is_threaded()


def mode_is_inline() -> bool:
    return MODE_ENV.get("PYRESQUE_INLINE") == "1"


def mode_is_threaded() -> bool:
    """Threaded or async mode: one process, a worker id per slot (``host@<slot>:pid:queues``)."""
    return int(MODE_ENV.get("PYRESQUE_THREADS", "1")) > 1 or mode_is_async()


def mode_is_async() -> bool:
    return int(MODE_ENV.get("PYRESQUE_ASYNC", "0")) > 0


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class WorkerProcess:
    """A real ``pyresque worker`` subprocess with its own log file."""

    def __init__(self, redis_url: str, tmp_path: Path, queue: str = "default", *, cwd: Path | None = None,
                 command: list[str] | None = None, **env: str) -> None:
        self.redis_url = redis_url
        self.record_dir = tmp_path / "records"
        self.record_dir.mkdir(exist_ok=True)
        self.log_path = tmp_path / f"worker-{time.monotonic_ns()}.log"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX", "BLOCKING", "TERM_CHILD", "GRACEFUL_TERM")}
        self.env.update({"REDIS_URL": redis_url, "QUEUE": queue, "INTERVAL": "0.1", "APP_INCLUDE": JOBS,
                         "JOB_RECORD_DIR": str(self.record_dir), "PYTHONPATH": str(TESTS.parent)})
        self.env.update(MODE_ENV)
        self.env.update(env)
        self.cwd = cwd
        self.command = command or [sys.executable, "-m", "pyresque", "worker"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_id(self, r: redis.Redis, timeout: float = 15) -> str:
        def registered():
            for member in r.smembers("resque:workers"):
                if f":{self.pid}:" in member.decode():
                    return member.decode()
            return None

        return wait_for(registered, timeout, what=f"worker {self.pid} to register\n{self.log()}")

    @property
    def slots(self) -> int:
        """Worker ids this process registers: one, or one per slot (``--threads N``, ``--async N``)."""
        threads = int(self.env.get("PYRESQUE_THREADS") or 1)
        async_slots = int(self.env.get("PYRESQUE_ASYNC") or 0)
        return async_slots or (threads if threads > 1 else 1)

    def worker_ids(self, r: redis.Redis, timeout: float = 15) -> list[str]:
        """Every id this process registered (waits until all its slots have)."""
        def registered():
            ids = sorted(m.decode() for m in r.smembers("resque:workers") if f":{self.pid}:" in m.decode())
            return ids if len(ids) == self.slots else None

        return wait_for(registered, timeout, what=f"worker {self.pid} to register {self.slots} id(s)\n{self.log()}")

    def working_on(self, r: redis.Redis, job_id: str, timeout: float = 15) -> str:
        """The id of ours (the worker, or the slot) whose ``worker:<id>`` record holds ``job_id``."""
        def holder():
            for wid in self.worker_ids(r, timeout):
                raw = r.get(f"resque:worker:{wid}")
                if raw is not None and json.loads(raw)["payload"].get("id") == job_id:
                    return wid
            return None

        return wait_for(holder, timeout, what=f"a working-on record of {job_id}\n{self.log()}")

    def open_gate(self, name: str) -> None:
        """Let a ``GateJob(name)`` of this worker finish."""
        (self.record_dir / f"gate-{name}").touch()

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float = 15) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit within {timeout}s\n{self.log()}") from None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGQUIT)
                self.process.wait(10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def records(worker: WorkerProcess, name: str) -> list:
    import fixtures

    return fixtures.records(str(worker.record_dir), name)


# -- the scheduler ------------------------------------------------------------------------------
#: resque-scheduler's master lock under the default namespace (the namespace really appears twice).
LOCK = "resque:resque:resque_scheduler_master_lock"


class SchedulerProcess:
    """A real ``pyresque scheduler`` subprocess with its own log file."""

    def __init__(self, redis_url: str, tmp_path: Path, *args: str, **env: str) -> None:
        self.log_path = tmp_path / f"scheduler-{time.monotonic_ns()}.log"
        self.args = list(args)
        self.env = {k: v for k, v in os.environ.items() if k not in ("REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
        self.env.update({"REDIS_URL": redis_url, "RESQUE_SCHEDULER_INTERVAL": "0.1", "PYTHONPATH": str(TESTS.parent)})
        self.env.update(env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SchedulerProcess:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "pyresque", "scheduler", *self.args], env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def title(self) -> str:
        with open(f"/proc/{self.pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode().strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait(self, timeout: float = 10) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"scheduler did not exit within {timeout}s\n{self.log()}") from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()

    def __enter__(self) -> SchedulerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def holder_pid(r) -> int | None:
    value = r.get(LOCK)
    return int(value.decode().rsplit(":", 1)[1]) if value else None


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
    env["REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "pyresque", *args], env=env, capture_output=True, text=True, timeout=30)
