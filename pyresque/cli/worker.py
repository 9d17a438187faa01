"""``pyresque-worker`` and ``pyresque worker``: php-resque's environment variables as options."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from .. import defaults, log
from ..exceptions import ConfigurationError
from ..jobs.resolver import JobResolver, is_file_include, load_include, registered
from ..worker import output
from ..worker.options import WorkerOptions
from ..worker.worker import Worker
from .common import EnvNamingCommand, UsageProblem, handle_errors, open_resque, parse_log_format, version_option

_OFF = ("", "0", "false", "no", "off")
CALLBACK_MODULE = "pyresque.jobs.http_callback"


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _OFF


@click.command(cls=EnvNamingCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("queue_names", nargs=-1, metavar="[QUEUE]...")
@click.option("--queue", "queue", envvar="QUEUE", default=None,
              help="Comma-separated queues in priority order; '*' or globs expand to known queues (env QUEUE); "
                   "or name them as arguments: pyresque worker high default.")
@click.option("--interval", envvar="INTERVAL", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds an idle worker's BLMOVE waits before it is renewed (the poll interval with "
                   "BLOCKING=0); 0 = exit when the queues are empty (env INTERVAL).")
@click.option("--burst", is_flag=True, envvar="PYRESQUE_BURST",
              help="Run the jobs waiting, then exit once the queues are empty (RQ's --burst; same as INTERVAL=0).")
@click.option("--blocking", envvar="BLOCKING", default=None,
              help="Wait for jobs with BLMOVE (the default: a job starts within milliseconds, never only in "
                   "memory); '0', 'false', 'no', 'off' poll every INTERVAL instead (env BLOCKING).")
@click.option("--scheduler/--no-scheduler", "moves_delayed", envvar="PYRESQUE_SCHEDULER", default=True,
              show_default=True, help="Take part in moving due delayed jobs and retries, under resque-scheduler's "
                                      "master lock, so they never wait on a scheduler process (env PYRESQUE_SCHEDULER).")
@click.option("-c", "--count", envvar="COUNT", type=click.IntRange(min=1), default=1,
              help="Workers to run (env COUNT); more than 1 starts a supervising master (see 'pyresque pool').")
@click.option("--include", "includes", envvar="APP_INCLUDE", multiple=True,
              help="Python file or module defining/registering job classes (env APP_INCLUDE; repeatable).")
@click.option("--allow", "allowed", envvar="ALLOWED_MODULES", multiple=True,
              help="Module whose classes, and its submodules' classes, may be named as package.module.Class; "
                   "'app.jobs:' (trailing colon) allows that module only (env ALLOWED_MODULES, comma list).")
@click.option("--pidfile", envvar="PIDFILE", default=None, help="Write the worker's pid here (env PIDFILE).")
@click.option("--inline", is_flag=True, envvar="PYRESQUE_INLINE",
              help="Run jobs in the worker process, no fork (like Ruby's FORK_PER_JOB=false).")
@click.option("--prefork/--no-prefork", envvar="PYRESQUE_PREFORK", default=True, show_default=True,
              help="Fork the next job's child while the current job runs (fork mode).")
@click.option("--fork-every", envvar="PYRESQUE_FORK_EVERY", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs one child serves before it is replaced (1 = a fresh process per job) (env PYRESQUE_FORK_EVERY).")
@click.option("--max-child-memory", envvar="PYRESQUE_MAX_CHILD_MEMORY", type=click.FloatRange(min=0), default=0,
              help="With --fork-every: replace a child whose RSS passed this many MiB (env PYRESQUE_MAX_CHILD_MEMORY).")
@click.option("--helper-idle", envvar="PYRESQUE_HELPER_IDLE", type=click.FloatRange(min=0),
              default=defaults.HELPER_IDLE, show_default=True,
              help="Seconds without a job after which the forking helper exits to give back its memory; "
                   "the next job then starts a new one (100-250 ms). 0 = never, the default (env PYRESQUE_HELPER_IDLE).")
@click.option("--threads", envvar="PYRESQUE_THREADS", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs in flight at once, each in a thread of this process with a worker id of its own "
                   "(for I/O-bound jobs; no fork) (env PYRESQUE_THREADS).")
@click.option("--async", "async_slots", envvar="PYRESQUE_ASYNC", type=click.IntRange(min=0), default=0,
              help="Jobs in flight at once on one event loop (async def perform as tasks, a plain def in a "
                   "thread pool), each with a worker id of its own; 0 = off (env PYRESQUE_ASYNC).")
@click.option("--async-threads", envvar="PYRESQUE_ASYNC_THREADS", type=click.IntRange(min=0), default=0,
              help="With --async: threads for plain def perform jobs; 0 = min(N, 32) (env PYRESQUE_ASYNC_THREADS).")
@click.option("--async-max-memory", envvar="PYRESQUE_ASYNC_MAX_MEMORY", type=click.FloatRange(min=0), default=0,
              help="With --async: RSS in MiB past which the worker takes no new job and retires, exit 0 "
                   "(env PYRESQUE_ASYNC_MAX_MEMORY).")
@click.option("--async-lag-warn", envvar="PYRESQUE_ASYNC_LAG_WARN", type=click.FloatRange(min=0), default=0.1,
              show_default=True, help="With --async: event-loop lag in seconds past which it logs and reserves "
                                      "nothing new until it catches up; 0 = off (env PYRESQUE_ASYNC_LAG_WARN).")
@click.option("--timeout", "job_timeout", envvar="PYRESQUE_JOB_TIMEOUT", type=click.FloatRange(min=0), default=0,
              help="Default time limit in seconds for jobs whose class sets none; 0 = none (env PYRESQUE_JOB_TIMEOUT).")
@click.option("--term-child", envvar="TERM_CHILD", default=None,
              help="On TERM/USR1 send TERM to the job, KILL after --term-timeout (env TERM_CHILD).")
@click.option("--term-timeout", envvar="RESQUE_TERM_TIMEOUT", type=click.FloatRange(min=0), default=4.0,
              show_default=True, help="Seconds the job gets after TERM (env RESQUE_TERM_TIMEOUT).")
@click.option("--graceful-term", envvar="GRACEFUL_TERM", default=None,
              help="TERM finishes the job like QUIT (env GRACEFUL_TERM; for systemd/Kubernetes stops).")
@click.option("--heartbeat-interval", envvar="PYRESQUE_HEARTBEAT_INTERVAL", type=click.FloatRange(min=0.05),
              default=defaults.HEARTBEAT_INTERVAL, show_default=True,
              help="Seconds between heartbeats (and prunes); keep it well under the prune interval.")
@click.option("--prune-interval", envvar="PYRESQUE_PRUNE_INTERVAL", type=click.FloatRange(min=1),
              default=defaults.PRUNE_INTERVAL, show_default=True,
              help="A heartbeat older than this marks a worker dead (Ruby's Resque.prune_interval).")
@click.option("--logging", "log_format", envvar="LOGGING", default="console",
              help="Log format: console or json (env LOGGING; php's LOGGING=1 means verbose console).")
@click.option("--verbose", envvar="VERBOSE", default=None, help="Log job starts and ends (env VERBOSE; default on).")
@click.option("--vverbose", envvar="VVERBOSE", default=None, help="Debug logging (env VVERBOSE).")
@click.option("--supervisor-pid", envvar="PYRESQUE_SUPERVISOR_PID", type=int, default=None, hidden=True,
              help="Set by the master: exit gracefully when this process is no longer our parent.")
@click.option("--prefix", envvar="PREFIX", default=None, help="Key namespace (env PREFIX; default 'resque').")
@click.option("--redis-url", envvar="REDIS_URL", default=None,
              help="redis://, rediss:// or unix:// URL (env REDIS_URL; else REDIS_BACKEND/REDIS_BACKEND_DB).")
@version_option
@handle_errors
def worker(queue: str | None, interval: float, blocking: str | None, moves_delayed: bool, count: int, includes: tuple[str, ...],
           allowed: tuple[str, ...], pidfile: str | None, inline: bool, prefork: bool, fork_every: int,
           max_child_memory: float, helper_idle: float, threads: int, job_timeout: float,
           term_child: str | None,
           term_timeout: float,
           graceful_term: str | None, heartbeat_interval: float, prune_interval: float, log_format: str,
           verbose: str | None, vverbose: str | None, supervisor_pid: int | None,
           prefix: str | None, redis_url: str | None,
           queue_names: tuple[str, ...] = (), burst: bool = False, async_slots: int = 0, async_threads: int = 0,
           async_max_memory: float = 0, async_lag_warn: float = 0.1) -> None:
    """Run a Resque worker: QUEUE=default pyresque-worker.

    Signals: QUIT finish the job then exit; TERM/INT kill the job and exit; USR1 kill the job;
    USR2 pause; CONT resume. See README.rst for the full table.
    """
    fmt = parse_log_format(log_format)
    log.configure(fmt, "debug" if _flag(vverbose) else "info", queued=threads > 1 or async_slots > 0,
                  job_lines=verbose is None or verbose.strip() == "" or _flag(verbose))
    queue = _queue_list(queue, queue_names)
    if burst:
        interval = 0.0
        click.get_current_context().params["interval"] = 0.0  # what the master's workers are given
    queues = [q for q in queue.split(",")]
    if not queue.strip() or any(not q.strip() for q in queues):
        raise UsageProblem(f"QUEUE={queue!r}: give a comma-separated list of queue names (or *)")
    if threads > 1 and fork_every > 1:
        raise UsageProblem("--threads runs jobs in threads, without a fork: it cannot be combined with --fork-every")
    if async_slots and (threads > 1 or fork_every > 1):
        raise UsageProblem("--async runs jobs on one event loop: it cannot be combined with "
                           + ("--threads" if threads > 1 else "--fork-every"))
    if prune_interval < 2 * heartbeat_interval + 1:  # heartbeats are whole seconds on the wire
        raise UsageProblem(f"--prune-interval {prune_interval:g} would prune live workers: keep it at least twice "
                           f"--heartbeat-interval ({heartbeat_interval:g}) plus 1 s")
    resque = open_resque(redis_url, prefix)
    if count > 1:  # the master starts `count` of us (COUNT=1 each) and never imports job code
        from ..pool import config as pool_config
        from .pool import run_master, worker_overrides

        config = pool_config.single(queue, count)
        run_master(lambda: config, worker_overrides(click.get_current_context()), pidfile)
    try:
        modules = [load_include(item) for spec in includes for item in spec.split(",") if item.strip()]
    except ConfigurationError as exc:
        if _flag(vverbose) and exc.__cause__ is not None:
            cause = exc.__cause__
            traceback.print_exception(type(cause), cause, cause.__traceback__)
        raise UsageProblem(str(exc)) from None
    prefixes = [p for spec in allowed for p in spec.split(",")]
    if not modules and not any(p.strip() for p in prefixes) and not registered():
        log.get_logger().warning("no job classes loaded: every job will fail 'Could not find job class'; "
                                 "set APP_INCLUDE=path/to/jobs.py (or --include) to load them")
    modules.append(load_include(CALLBACK_MODULE))  # Pyresque_HttpCallback: refuses all unless enabled
    if fmt == "json":  # a job's print() must not break a stream of JSON lines
        output.capture_into_log()
    options = WorkerOptions(
        interval=interval,
        blocking=blocking is None or blocking.strip() == "" or _flag(blocking),
        scheduler=moves_delayed,
        fork=not inline,
        prefork=prefork,
        fork_every=fork_every,
        # resolved now: a helper started later (after an idle retirement) loads the release this
        # worker started with, not whatever a deploy symlink points at by then
        helper_includes=tuple(os.path.realpath(item) if is_file_include(item) else item
                              for spec in includes for item in spec.split(",") if item.strip()) + (CALLBACK_MODULE,),
        max_child_memory_mb=max_child_memory,
        helper_idle=helper_idle,
        job_timeout=job_timeout or None,
        term_child=_flag(term_child),
        graceful_term=_flag(graceful_term),
        term_timeout=term_timeout,
        heartbeat_interval=heartbeat_interval,
        prune_interval=prune_interval,
        pidfile=pidfile,
        supervisor_pid=supervisor_pid,
        threads=threads,
        async_slots=async_slots,
        async_threads=async_threads,
        async_max_memory_mb=async_max_memory,
        async_lag_warn=async_lag_warn,
    )
    resolver = JobResolver(modules, prefixes)
    if async_slots:
        from ..worker.asyncmode import AsyncWorker

        code = AsyncWorker(resque, queues, options, resolver).work()
    elif threads > 1:
        from ..worker.threaded import ThreadedWorker

        code = ThreadedWorker(resque, queues, options, resolver).work()
    else:
        code = Worker(resque, queues, options, resolver).work()
    sys.exit(code)


def _queue_list(option: str | None, names: tuple[str, ...]) -> str:
    """QUEUE / --queue (php-resque) or queue names as arguments (RQ): one of the two."""
    if option is not None and names:
        source = "QUEUE" if click.get_current_context().get_parameter_source("queue") == \
            click.core.ParameterSource.ENVIRONMENT else "--queue"
        raise UsageProblem(f"queues given twice: {source}={option} and as arguments ({' '.join(names)}); "
                           "use one of the two")
    if names:
        return ",".join(names)
    if option is None:
        raise UsageProblem("no queues: set QUEUE=default (or pass queue names: "
                           f"{click.get_current_context().command_path} default high)")
    return option


def worker_main(*args: Any) -> Any:
    """Entry point of ``pyresque-worker``."""
    return worker(prog_name="pyresque-worker")
