"""Helpers every ``pyresque`` sub-command shares: one-line errors, connection options, and the
two printers (text and JSON) every command writes its output with."""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Callable, TypeVar

import click
import redis

from ..exceptions import ConfigurationError, InvalidPayload, InvalidQueueName, PyresqueError
from ..queue import Resque
from ..store.connection import RedisSettings
from ..wire.terminal import escape

F = TypeVar("F", bound=Callable[..., Any])


def echo(text: str = "") -> None:
    """Print one line of text output. Most of what is in it (class and queue names, errors,
    worker ids) was written to Redis by someone else: control characters are escaped."""
    click.echo(escape(text))


def json_line(doc: Any) -> str:
    """``doc`` as one line of strict JSON. What Python's JSON reader took from Redis may hold
    NaN or Infinity, which no JSON reader accepts back: they become ``null``."""
    try:
        return json.dumps(doc, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(doc), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class _OneLineError(click.ClickException):
    def __init__(self, message: str) -> None:
        super().__init__(escape(message))  # messages quote names and errors from Redis


class UsageProblem(_OneLineError):
    """Bad input: printed as one ``Error:`` line, exit 2."""

    exit_code = 2


class Failure(_OneLineError):
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
    _say_default_url(settings)
    return Resque(settings=settings)


def _say_default_url(settings: RedisSettings) -> None:
    """Name the default Redis when nothing configured one: the first log line of a long-running
    command (worker, scheduler, master: they set up logging first), else one stderr line."""
    notice = settings.default_notice
    if notice is None:
        return
    import structlog

    if structlog.is_configured():
        from .. import log

        log.get_logger().warning(notice)
    else:
        click.echo(f"Note: {notice}", err=True)


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
