"""``pyresque pool`` and ``COUNT=n pyresque-worker``: run the supervising master (master.py)."""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn

import click

from .. import log
from ..pool import config as pool_config
from ..pool.config import MASTER_OWNED, PoolConfig
from ..pool.master import Master
from ..store.connection import mask_url
from .common import EnvNamingCommand, UsageProblem, echo, handle_errors, json_line, parse_log_format

_OFF = ("", "0", "false", "no", "off")


def setup_logging(log_format: str | None, vverbose: str | None) -> None:
    fmt = parse_log_format(log_format)
    debug = vverbose is not None and vverbose.strip().lower() not in _OFF
    log.configure(fmt, "debug" if debug else "info")


def worker_overrides(ctx: click.Context) -> dict[str, str]:
    """The worker command's options as the environment variables they stand for.

    Workers the master starts then run with exactly what the master was given, whether it came
    from the environment or from options (``pyresque worker -c 3 --queue high --include app.py``).
    """
    env: dict[str, str] = {}
    for param in ctx.command.params:
        envvar = getattr(param, "envvar", None)
        if not isinstance(envvar, str) or envvar in MASTER_OWNED:
            continue
        value = ctx.params.get(param.name or "")
        if value is None or value is False or value == ():
            continue
        if value is True:
            env[envvar] = "1"
        elif isinstance(value, (tuple, list)):
            env[envvar] = ",".join(str(item) for item in value)
        else:
            env[envvar] = str(value)
    return env


def run_master(load: Callable[[], PoolConfig], overrides: dict[str, str], pidfile: str | None) -> NoReturn:
    master = Master(load, environ={**os.environ, **overrides}, pidfile=pidfile)
    sys.exit(master.run())


@click.command(cls=EnvNamingCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RESQUE_POOL_CONFIG", default=None,
              type=click.Path(dir_okay=False), help="Pool config (INI): [pool] 'queues = count' lines (env RESQUE_POOL_CONFIG).")
@click.option("-E", "--environment", envvar=["PYRESQUE_ENV", "RESQUE_ENV"], default=None,
              help="Also apply [pool:ENV] and [worker:ENV] (env PYRESQUE_ENV or RESQUE_ENV).")
@click.option("--check", is_flag=True, help="Only read the config and print what would run (JSON), then exit.")
@click.option("--pidfile", envvar="PIDFILE", default=None, help="Write the master's pid here (env PIDFILE).")
@click.option("--logging", "log_format", envvar="LOGGING", default="console",
              help="Log format of the master: console or json (env LOGGING; workers read it too).")
@click.option("--vverbose", envvar="VVERBOSE", default=None, help="Debug logging (env VVERBOSE).")
@click.option("--prefix", envvar="PREFIX", default=None, help="Key namespace (env PREFIX; default 'resque').")
@click.option("--redis-url", envvar="REDIS_URL", default=None,
              help="redis://, rediss:// or unix:// URL (env REDIS_URL; else REDIS_BACKEND/REDIS_BACKEND_DB).")
@handle_errors
def pool(config_path: str | None, environment: str | None, check: bool, pidfile: str | None, log_format: str,
         vverbose: str | None, prefix: str | None, redis_url: str | None) -> None:
    """Run the worker pools a config file describes, under one supervising master.

    \b
      [pool]
      high,default = 2     # two workers on high, then default
      low = 1
    \b
    Signals to the master: QUIT stop gracefully; TERM/INT forwarded; USR2/CONT pause/resume;
    HUP rolling restart (re-reads this file); TTIN/TTOU one worker more/fewer per group.
    """
    if config_path is None:  # click's "Missing option '--config'" would not name the variable
        raise UsageProblem("no pool config: pass --config pool.ini (or set RESQUE_POOL_CONFIG=pool.ini)")
    path = os.path.abspath(config_path)

    def load() -> PoolConfig:
        return pool_config.load(path, environment)

    if check:
        config = load()
        shown = {key: mask_url(value) if key.upper() in ("REDIS_URL", "REDIS_BACKEND") else value
                 for key, value in config.worker_env.items()}
        echo(json_line({"config": path, "environment": environment, "groups": config.groups,
                        "workers": config.total, "worker_env": shown}))
        return
    setup_logging(log_format, vverbose)
    run_master(load, worker_overrides(click.get_current_context()), pidfile)
