"""Starting a real ``pyresque web`` subprocess on a free port, and the clients that talk to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from support import TESTS

TOKEN = "test-token-with-enough-entropy-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WebServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, token: str | None = TOKEN, **options: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **options)  # type: ignore[arg-type]


def web_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "REDIS_BACKEND", "PREFIX") and not k.startswith("PYRESQUE_WEB")}
    env["PYTHONPATH"] = str(TESTS.parent)
    env.update(extra)
    return env


def start_server(redis_url: str, tmp: Path, *args: str, env: dict[str, str] | None = None) -> WebServer:
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    log_path = tmp / f"web-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "pyresque", "web", "--port", str(port), "--redis-url", redis_url,
                                    "--token-file", str(token_file), *args], env=env or web_env(), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = WebServer(f"http://127.0.0.1:{port}", TOKEN, process, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pyresque web exited with {process.returncode}\n{server.log()}")
        try:
            httpx.get(f"{server.url}/api/v1/openapi.json", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"pyresque web did not answer within 20 s\n{server.log()}")


def stop_server(server: WebServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
