"""Which queues get how many workers: the master's configuration (resque-pool's idea, in INI).

::

    [pool]                    ; queue group (comma list, in priority order) = number of workers
    high,default = 2
    low = 1

    [pool:production]         ; merged over [pool] when the environment is "production"
    low = 4
    reports = 0               ; 0 removes a group

    [worker]                  ; environment for every worker: the worker's own variable names
    INTERVAL = 1
    APP_INCLUDE = /srv/app/current/jobs.py   ; a relative file is relative to this config file

    [worker:production]
    BLOCKING = 1

INI (``configparser``) because it needs nothing beyond the standard library on every Python
pyresque supports. Keys keep their case; only ``=`` separates a key from its value, so queue
names may contain ``:``. The file is read at start and again on every HUP.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from ..exceptions import ConfigurationError, InvalidQueueName
from ..jobs.resolver import is_file_include
from ..wire import payload as wire

#: Environment the master sets for each worker itself; a config file may not.
MASTER_OWNED = ("QUEUE", "COUNT", "PIDFILE", "PYRESQUE_SUPERVISOR_PID")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_DEFAULT = "pyresque: no default section"


@dataclass(frozen=True)
class PoolConfig:
    """Queue groups with their worker counts (file order), and extra environment for workers."""

    groups: dict[str, int]
    worker_env: dict[str, str] = field(default_factory=dict)
    source: str | None = None

    @property
    def total(self) -> int:
        return sum(self.groups.values())


def single(queues: str, count: int, worker_env: Mapping[str, str] | None = None) -> PoolConfig:
    """``COUNT=n QUEUE=…``: one group."""
    return PoolConfig({normalise_group(queues, "QUEUE"): count}, dict(worker_env or {}))


def load(path: str, environment: str | None = None) -> PoolConfig:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read pool config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"pool config {path} is not UTF-8: {exc.reason}") from None
    return parse(text, environment, source=path, base_dir=os.path.dirname(os.path.abspath(path)))


def parse(text: str, environment: str | None = None, source: str = "<string>",
          base_dir: str | None = None) -> PoolConfig:
    """``base_dir``: where a relative ``APP_INCLUDE`` file is looked for (the config file's
    directory), so a config works from wherever the master is started."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, default_section=_NO_DEFAULT,
                                       inline_comment_prefixes=(";", "#"), strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # queue names and env names keep their case
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise ConfigurationError(f"pool config {source}: {' '.join(str(exc).split())}") from None
    for section in parser.sections():
        kind, colon, suffix = section.partition(":")
        if kind not in ("pool", "worker") or (colon and not suffix.strip()):
            raise ConfigurationError(f"pool config {source}: unknown section [{section}] "
                                     "(use [pool], [pool:ENV], [worker], [worker:ENV])")
    if not parser.has_section("pool"):
        raise ConfigurationError(f"pool config {source}: no [pool] section (lines like 'high,default = 2')")
    groups = _groups(parser, "pool", source)
    env = _worker_env(parser, "worker", source)
    if environment:
        for name, count in _groups(parser, f"pool:{environment}", source).items():
            groups[name] = count
        env.update(_worker_env(parser, f"worker:{environment}", source))
    if base_dir is not None and "APP_INCLUDE" in env:
        env["APP_INCLUDE"] = _beside(env["APP_INCLUDE"], base_dir)
    groups = {name: count for name, count in groups.items() if count > 0}
    if not groups:
        raise ConfigurationError(f"pool config {source}: no queue group has a worker"
                                 + (f" in environment {environment!r}" if environment else ""))
    return PoolConfig(groups, env, source)


def _beside(includes: str, base_dir: str) -> str:
    """Relative include *files* (``jobs.py``, ``app/jobs.py``) joined to ``base_dir``; module
    names and absolute paths (a deploy's ``/srv/app/current/jobs.py``) as written."""
    return ",".join(os.path.join(base_dir, item.strip())
                    if item.strip() and is_file_include(item.strip()) and not os.path.isabs(item.strip()) else item
                    for item in includes.split(","))


def normalise_group(text: str, where: str) -> str:
    """``high, default`` -> ``high,default``: the exact string workers put in their ids."""
    names = [part.strip() for part in text.split(",")]
    try:
        for name in names:
            wire.validate_queue_name(name)
    except InvalidQueueName as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{where}: queue group {text!r} names a queue twice")
    return ",".join(names)


def _groups(parser: configparser.ConfigParser, section: str, source: str) -> dict[str, int]:
    if not parser.has_section(section):
        return {}
    groups: dict[str, int] = {}
    for key, value in parser.items(section):
        where = f"pool config {source} [{section}] {key!r}"
        name = normalise_group(key, where)
        if name in groups:
            raise ConfigurationError(f"{where}: the same queue group appears twice")
        if not re.fullmatch(r"[0-9]+", value.strip()):
            raise ConfigurationError(f"{where}: the worker count must be a whole number >= 0, not {value!r}")
        groups[name] = int(value)
    return groups


def _worker_env(parser: configparser.ConfigParser, section: str, source: str) -> dict[str, str]:
    if not parser.has_section(section):
        return {}
    env: dict[str, str] = {}
    for key, value in parser.items(section):
        where = f"pool config {source} [{section}] {key!r}"
        if not _ENV_NAME.match(key):
            raise ConfigurationError(f"{where}: not an environment variable name")
        if key.upper() in MASTER_OWNED:
            raise ConfigurationError(f"{where}: the master sets {key} for each worker itself")
        env[key] = value
    return env
