"""One private redis-server per test session (never port 6379), flushed before every test."""

from __future__ import annotations

import os
import sys

import pytest
import redis

from pyresque.store.embedded import RedisServer

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # so forked workers and subprocesses can import tests' job fixtures


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    if redis_server.process is None:  # a test stopped it and failed before restarting it
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url, protocol=2)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url):
    client = redis.Redis.from_url(redis_url, protocol=2)
    yield client
    client.close()


@pytest.fixture
def resque(redis_url):
    from pyresque import Resque

    return Resque(redis_url)


#: The behavioural suites (worker/test_worker.py, worker/test_signals.py) run once per execution mode (README:
#: execution modes). ``threads-2``, not ``threads-1``: ``--threads 1`` is the CLI's default and runs
#: the plain forking worker; two slots is the smallest threaded worker, and makes every wire assertion
#: hold per slot id (``host@<slot>:pid:queues``) beside an idle neighbour slot.
WORKER_MODES = {
    "fork": {},  # a fresh child per job, forked ahead by the forking helper
    "fork-every-3": {"PYRESQUE_FORK_EVERY": "3"},  # one child serves three jobs
    "no-prefork": {"PYRESQUE_PREFORK": "0"},  # the worker forks each child itself, on demand
    "inline": {"PYRESQUE_INLINE": "1"},  # no fork: jobs run in the worker process
    "threads-2": {"PYRESQUE_THREADS": "2"},  # one process, two slot threads, no fork
    "async-4": {"PYRESQUE_ASYNC": "4"},  # one process, one event loop, four slots (sync jobs: in threads)
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_counterpart_in(*modes, reason): skip the test in these worker modes, where the "
        "behaviour it checks does not exist (the reason says why); keep this list short")


@pytest.fixture(params=sorted(WORKER_MODES))
def worker_mode(request):
    """Run a test once per execution mode (see README: execution modes)."""
    import support

    marker = request.node.get_closest_marker("no_counterpart_in")
    if marker is not None:
        unknown = set(marker.args) - set(WORKER_MODES)
        assert not unknown, f"no_counterpart_in names unknown modes {unknown}"
        if request.param in marker.args:
            pytest.skip(f"no {request.param} counterpart: {marker.kwargs['reason']}")
    support.MODE_ENV.clear()
    support.MODE_ENV.update(WORKER_MODES[request.param])
    yield request.param
    support.MODE_ENV.clear()
