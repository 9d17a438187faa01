"""Where Redis is: URLs, php's REDIS_BACKEND forms, and every place a URL is shown with its
secrets masked (real CLI, worker, scheduler and pool processes against an unreachable Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from pyresque.exceptions import ConfigurationError
from pyresque.store.connection import RedisSettings, backend_to_url
from pyresque.store.embedded import free_port
from support import ROOT, wait_for


def test_redis_url_wins_over_backend():
    s = RedisSettings.from_env({"REDIS_URL": "redis://:pw@h:1/2", "REDIS_BACKEND": "x:9"})
    assert s.url == "redis://:pw@h:1/2" and s.display_url == "redis://:***@h:1/2" and s.prefix == "resque"


@pytest.mark.parametrize(
    "backend, db, url",
    [
        ("localhost:6380", None, "redis://localhost:6380/0"),
        ("localhost", "2", "redis://localhost:6379/2"),
        ("h:1", "0", "redis://h:1/0"),
        ("redis://h:1", "4", "redis://h:1/4"),
        ("redis://h:1/5", "4", "redis://h:1/5"),
        ("tcp://h:1", None, "redis://h:1"),
        ("unix:///tmp/r.sock", "3", "unix:///tmp/r.sock?db=3"),
    ],
)
def test_php_backend_forms(backend, db, url):
    assert backend_to_url(backend, db) == url


@pytest.mark.parametrize("env", [{"REDIS_URL": "http://x"}, {"REDIS_URL": "redis://h:notaport"},
                                 {"REDIS_BACKEND": "h:port"}, {"REDIS_BACKEND": "h", "REDIS_BACKEND_DB": "x"}])
def test_bad_settings_raise(env):
    with pytest.raises(ConfigurationError):
        RedisSettings.from_env(env)


def test_prefix_from_env_and_argument():
    assert RedisSettings.from_env({"PREFIX": "app"}).prefix == "app"
    assert RedisSettings.from_env({"PREFIX": ""}).prefix == "resque"
    assert RedisSettings.from_env({"PREFIX": "app"}, prefix="other").prefix == "other"


SECRET = "s3cretpw"


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cretpw@h:1/0", "redis://:***@h:1/0"),
    ("redis://user:s3cretpw@h:1/0?db=2", "redis://user:***@h:1/0?db=2"),
    ("rediss://h:1/0?password=s3cretpw", "rediss://h:1/0?password=***"),
    ("redis://h/0?db=1&Password=s3cretpw&ssl_password=s3cretpw", "redis://h/0?db=1&Password=***&ssl_password=***"),
    ("redis://h/0?pass%77ord=s3cretpw", "redis://h/0?pass%77ord=***"),  # redis-py unquotes the name
    ("redis://h/0?password=s3#cretpw", "redis://h/0?password=***#***"),
    ("redis://:s3/cretpw@h:1/0", "redis://:***@h:1/0"),  # urlsplit's netloc ends at the /
    ("redis://:s3?cr#etpw@h:1", "redis://:***@h:1"),
    ("redis://:p@ss@h:1/0", "redis://:***@h:1/0"),
    ("redis://:s3cretpw@[::1/0", "redis://:***@[::1/0"),  # urlsplit raises on it
    ("unix://:s3cretpw@/tmp/r.sock?db=1", "unix://:***@/tmp/r.sock?db=1"),
    ("unix:///tmp/r.sock?password=s3cretpw", "unix:///tmp/r.sock?password=***"),
    ("user:s3cretpw@h:1", "user:***@h:1"),  # a php REDIS_BACKEND
    ("redis://user@h/0?client_name=a@b", "redis://user@h/0?client_name=a@b"),  # no password: as it is
])
def test_every_form_of_password_is_masked(url, shown):
    assert RedisSettings(url=url).display_url == shown


@pytest.mark.parametrize("env", [
    {"REDIS_URL": "redis://:s3cret/pw@h:1/0"}, {"REDIS_URL": "redis://:s3cretpw@h:x/0"},
    {"REDIS_URL": "redis://:s3cretpw@/0"}, {"REDIS_URL": "redis://:s3cretpw@[::1/0"},
    {"REDIS_URL": "http://:s3cretpw@h"}, {"REDIS_BACKEND": "u:s3cretpw@h:x"},
    {"REDIS_BACKEND": "redis://:s3cretpw@[::1", "REDIS_BACKEND_DB": "2"},
])
def test_a_bad_url_is_a_configuration_error_that_hides_the_password(env):
    with pytest.raises(ConfigurationError) as info:
        RedisSettings.from_env(env)
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def _unreachable() -> list[str]:
    port = free_port()  # nothing listens there (never 6379)
    return [f"redis://:{SECRET}@127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0?password={SECRET}",
            f"redis://:{SECRET}/x@127.0.0.1:{port}/0", f"redis://:{SECRET}@[::1/0"]


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB")}
    return {**env, "REDIS_URL": url, "QUEUE": "default", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("command", [("queues",), ("info", "--json"), ("failed", "list"), ("status", "x")])
@pytest.mark.parametrize("url", _unreachable(), ids=["userinfo", "query", "unparsed-port", "unparsed-ipv6"])
def test_cli_errors_never_show_the_password(command, url):
    done = subprocess.run([sys.executable, "-m", "pyresque", *command], env=_env(url), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode in (1, 2) and done.stderr.startswith("Error: "), done.stderr
    assert SECRET not in done.stdout + done.stderr and "***" in done.stderr


@pytest.mark.parametrize("command, extra", [(("worker",), {}), (("scheduler",), {}), (("worker",), {"COUNT": "2"})],
                         ids=["worker", "scheduler", "pool"])
@pytest.mark.parametrize("url", _unreachable()[:2], ids=["userinfo", "query"])
def test_long_running_processes_never_log_the_password(tmp_path, command, extra, url):
    """A worker, a scheduler and a pool's workers retry an unreachable Redis, logging where."""
    out = tmp_path / "out.log"
    with open(out, "wb") as stream:
        proc = subprocess.Popen([sys.executable, "-m", "pyresque", *command], env={**_env(url), **extra},
                                stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wanted = 2 if extra else 1
            wait_for(lambda: out.read_text().count("redis unavailable") >= wanted, timeout=20,
                     what=f"the outage to be logged\n{out.read_text()}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = out.read_text()
    assert SECRET not in text and "***" in text, text


def test_pool_check_masks_the_workers_redis_url(tmp_path):
    (tmp_path / "pool.ini").write_text(f"[pool]\ndefault = 1\n[worker]\nREDIS_URL = redis://:{SECRET}@h:1/0\n")
    done = subprocess.run([sys.executable, "-m", "pyresque", "pool", "--config", str(tmp_path / "pool.ini"), "--check"],
                          capture_output=True, text=True, env={**_env("redis://h:1/0"), "PYRESQUE_ENV": ""}, timeout=30)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout and "redis://:***@h:1/0" in done.stdout
