"""Helpers every ``pyresque`` sub-command shares: one-line errors, connection options."""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, TypeVar

import click
import redis

from ..exceptions import ConfigurationError, InvalidPayload, InvalidQueueName, PyresqueError
from ..queue import Resque
from ..store.connection import RedisSettings

F = TypeVar("F", bound=Callable[..., Any])


class UsageProblem(click.ClickException):
    """Bad input: printed as one ``Error:`` line, exit 2."""

    exit_code = 2


class Failure(click.ClickException):
    """The operation could not be done: one ``Error:`` line, exit 1."""

    exit_code = 1


def handle_errors(func: F) -> F:
    """Turn expected failures into one-line errors instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return func(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            settings: RedisSettings | None = ctx.find_object(RedisSettings)
            where = settings.display_url if settings else "the configured URL"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise Failure(f"cannot reach Redis at {where}: {reason}") from None
        except redis.ResponseError as exc:
            raise Failure(f"Redis refused a command: {exc}") from None
        except (InvalidQueueName, InvalidPayload, ConfigurationError) as exc:
            raise UsageProblem(str(exc)) from None
        except PyresqueError as exc:
            raise Failure(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def connection_options(func: F) -> F:
    """``--redis-url`` and ``--prefix``, named like the environment variables they override."""
    func = click.option("--prefix", envvar="PREFIX", default=None,
                        help="Key namespace (env PREFIX; default 'resque', as Resque and php-resque).")(func)
    func = click.option("--redis-url", envvar="REDIS_URL", default=None,
                        help="redis://, rediss:// or unix:// URL (env REDIS_URL; else REDIS_BACKEND/REDIS_BACKEND_DB).")(func)
    return func


def open_resque(redis_url: str | None, prefix: str | None) -> Resque:
    ctx = click.get_current_context()
    try:
        settings = RedisSettings.from_env(redis_url=redis_url, prefix=prefix)
    except ConfigurationError as exc:
        raise UsageProblem(str(exc)) from None
    ctx.obj = settings
    return Resque(settings=settings)


def parse_json_args(values: tuple[str, ...]) -> list[Any]:
    parsed = []
    for position, text in enumerate(values, start=1):
        try:
            parsed.append(json.loads(text))
        except ValueError as exc:
            raise UsageProblem(f"argument {position} ({text!r}) is not JSON: {exc}") from None
    return parsed


def parse_args_option(args_json: str | None, job_class: str | None) -> list[Any] | None:
    """``--args JSON`` (with ``--class``): the positional args a job must have to match."""
    if args_json is None:
        return None
    if job_class is None:
        raise UsageProblem("--args needs --class")
    try:
        args = json.loads(args_json)
    except ValueError as exc:
        raise UsageProblem(f"--args is not JSON: {exc}") from None
    if not isinstance(args, list):
        raise UsageProblem("--args must be a JSON list (the positional args)")
    return args
