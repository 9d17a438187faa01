"""A real ``pyresque web`` subprocess per test module, on a free port, against the session's redis-server."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # the web tests' helpers (webserver.py)

from webserver import WebServer, start_server, stop_server  # noqa: E402


@pytest.fixture(scope="module")
def web(redis_server, tmp_path_factory):
    server = start_server(redis_server.url, tmp_path_factory.mktemp("web"))
    yield server
    stop_server(server)


@pytest.fixture
def api(web, redis_url):
    """An authenticated client, on a flushed Redis."""
    with web.client() as client:
        yield client


@pytest.fixture
def anonymous(web, redis_url):
    with web.client(token=None) as client:
        yield client


@pytest.fixture
def start_web(redis_server, redis_url, tmp_path):
    """Start another server with other options (stopped at the end of the test)."""
    started = []

    def start(*args: str, env: dict[str, str] | None = None, redis_url: str | None = None) -> WebServer:
        server = start_server(redis_url or redis_server.url, tmp_path, *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)
