"""Serving the app with uvicorn, as ``pyresque web`` does."""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.routing import BaseRoute

from ..queue import Resque
from .app import create_app


def extra_routes() -> list[BaseRoute]:
    """Routes ``pyresque web`` adds beside the API: the place ``/metrics`` is mounted
    (``[Route("/metrics", prometheus.endpoint)]``); nothing yet."""
    return []


def serve(resque: Resque, host: str, port: int, token: str, public_read: bool, **uvicorn_options: Any) -> None:
    """Run until SIGINT/SIGTERM (uvicorn's graceful shutdown: requests in flight finish)."""
    app = create_app(resque, token=token, public_read=public_read, routes=extra_routes())
    uvicorn.run(app, host=host, port=port, server_header=False, proxy_headers=False, **uvicorn_options)
