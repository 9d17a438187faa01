"""Helpers every ``pyresque`` sub-command shares: one-line errors, connection options, and the
two printers (text and JSON) every command writes its output with."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from typing import Any, Callable, Iterator, TypeVar

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


class EnvNamingCommand(click.Command):
    """A command whose bad-value errors name the environment variable the value came from:
    ``INTERVAL=abc`` is reported as ``Invalid value for INTERVAL (--interval)``, where click
    names only ``--interval``, an option the user never typed."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as exc:
            param = exc.param
            if param is not None and param.name and exc.param_hint is None and \
                    ctx.get_parameter_source(param.name) == click.core.ParameterSource.ENVIRONMENT:
                names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
                name = next((n for n in names if n in os.environ), None)
                if name is not None:
                    exc.param_hint = f"{name} ({param.get_error_hint(ctx)})"
            raise


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


#: The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it): never 1,
#: which says the operation failed (``status --watch``: the job failed).
INTERRUPTED = 130


@contextlib.contextmanager
def exit_130_on_ctrl_c() -> Iterator[None]:
    """Ctrl-C ends a ``--watch`` loop quietly, with :data:`INTERRUPTED` (click would say
    "Aborted!" and exit 1)."""
    try:
        yield
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED) from None


#: Characters of one job's arguments ``peek`` prints unless ``--full``: a 10 MB payload printed
#: whole buries every other line of the listing (and the terminal with it).
SHOWN_CHARS = 2000


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut at ``limit`` characters, saying how much was left out and how to see it."""
    if len(text) <= limit:
        return text
    rest = len(text[limit:].encode("utf-8", "surrogatepass"))
    return f"{text[:limit]}… ({rest} more bytes; --full shows all)"


#: ``LOGGING`` values: ours, and php-resque's "on" (``LOGGING=1``), which only meant "log".
_LOG_FORMATS = {"console": "console", "json": "json", "1": "console", "true": "console", "yes": "console",
                "on": "console"}


def parse_log_format(value: str | None) -> str:
    """``LOGGING`` / ``--logging`` as ``console`` or ``json``; anything else is a usage error
    (``LOGGING=xml`` logging to the console as if it were understood hides the typo)."""
    text = (value or "console").strip().lower()
    if text not in _LOG_FORMATS:
        raise UsageProblem(f"LOGGING={value!r} is not a log format: use console or json "
                           "(php-resque's LOGGING=1 or true mean console)")
    return _LOG_FORMATS[text]


def version_option(func: F) -> F:
    """``--version``: ``pyresque <version>``, from the installed package's metadata."""
    return click.version_option(package_name="pyresque", message="%(package)s %(version)s")(func)


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
