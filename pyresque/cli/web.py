"""``pyresque web``: serve the HTTP API (``pyresque[web]``) with uvicorn."""

from __future__ import annotations

import os
import secrets

import click

from .. import log
from ..web import INSTALL_HINT, missing_extra
from .common import (
    EnvNamingCommand,
    Failure,
    UsageProblem,
    connection_options,
    handle_errors,
    open_resque,
    parse_log_format,
)

#: The environment variable a token may come in (else ``--token-file``, else one is generated).
TOKEN_ENV = "PYRESQUE_WEB_TOKEN"


def read_token(token_file: str | None) -> tuple[str, bool]:
    """The token and whether it was generated here (so it must be shown)."""
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageProblem(f"--token-file {token_file}: cannot read it: {exc}") from None
        if not token:
            raise UsageProblem(f"--token-file {token_file} is empty")
        return token, False
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token, False
    return secrets.token_urlsafe(32), True


@click.command(cls=EnvNamingCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", envvar="PYRESQUE_WEB_HOST", default="127.0.0.1", show_default=True,
              help="Address to bind (env PYRESQUE_WEB_HOST); 0.0.0.0 exposes it to the network.")
@click.option("--port", envvar="PYRESQUE_WEB_PORT", default=5678, show_default=True, type=click.IntRange(0, 65535),
              help="Port to bind (env PYRESQUE_WEB_PORT).")
@click.option("--token-file", envvar="PYRESQUE_WEB_TOKEN_FILE", default=None,
              help=f"File holding the API token (env PYRESQUE_WEB_TOKEN_FILE); else env {TOKEN_ENV}; "
                   "else one is generated and printed once.")
@click.option("--public-read", envvar="PYRESQUE_WEB_PUBLIC_READ", is_flag=True,
              help="Let GET requests in without the token (changes still need it).")
@click.option("--logging", "log_format", envvar="LOGGING", default="console", help="console or json (env LOGGING).")
@connection_options
@handle_errors
def web(host: str, port: int, token_file: str | None, public_read: bool, log_format: str,
        redis_url: str | None, prefix: str | None) -> None:
    """Serve the HTTP API under /api/v1 (docs at /api/v1/docs) for producers in any language.

    Every state-changing request needs 'Authorization: Bearer <token>', and reads too unless
    --public-read. Stop with Ctrl-C or TERM (requests in flight finish).
    """
    log.configure(parse_log_format(log_format), "info")
    token, generated = read_token(token_file)
    resque = open_resque(redis_url, prefix)
    resque.ping()  # an unreachable Redis is one line now, not a 503 on every request later
    try:
        from ..web.server import serve
    except ImportError as exc:
        if missing_extra(exc):
            raise Failure(f"pyresque web needs the web extra ({exc.name} is missing): {INSTALL_HINT}") from None
        raise
    if generated:
        click.echo(f"API token (generated; printed only now, set {TOKEN_ENV} or --token-file to choose one): {token}",
                   err=True)
    click.echo(f"Serving the pyresque API on http://{host}:{port}/api/v1 (docs: /api/v1/docs) for "
               f"{resque.settings.display_url}" + (" with public reads" if public_read else ""), err=True)
    serve(resque, host, port, token, public_read, log_level="warning")
