"""Serving the app with uvicorn, as ``pyresque web`` does."""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.routing import BaseRoute, Route

from ..queue import Resque
from .app import create_app
from .prometheus import metrics_endpoint


def extra_routes() -> list[BaseRoute]:
    """Routes ``pyresque web`` adds beside the API: Prometheus' ``/metrics`` (behind the same
    token as reads, so a scrape config sends it unless ``--public-read``)."""
    return [Route("/metrics", metrics_endpoint)]


def serve(resque: Resque, host: str, port: int, token: str, public_read: bool, **uvicorn_options: Any) -> None:
    """Run until SIGINT/SIGTERM (uvicorn's graceful shutdown: requests in flight finish)."""
    app = create_app(resque, token=token, public_read=public_read, routes=extra_routes())
    uvicorn.run(app, host=host, port=port, server_header=False, proxy_headers=False, **uvicorn_options)
