"""``create_app``: the ASGI application ``pyresque web`` serves, importable to mount elsewhere.

::

    from pyresque.web import create_app
    app = create_app(Resque("redis://..."), token=os.environ["PYRESQUE_WEB_TOKEN"])
    # standalone:  uvicorn.run(app)      inside yours:  parent_app.mount("/resque", app)

Layout: the API under ``/api/v1`` (producers: jobs.py; operators: operate.py), its OpenAPI
document at ``/api/v1/openapi.json`` and its docs page at ``/api/v1/docs`` (docs.py, no CDN:
FastAPI's own ``/docs`` and ``/redoc`` are off). Every request passes the token and body-size
gates (auth.py) and every error is the one JSON shape (errors.py).

Adding routes (``/metrics``): pass them as ``routes=[starlette.routing.Route("/metrics", ...)]``
or call ``app.add_route`` on the result; they sit behind the same gates (with ``public_read`` a
scraper needs no token; else give it ``authorization: {credentials: <token>}``).
"""

from __future__ import annotations

from typing import Any, Iterable

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute

from ..queue import Resque
from . import docs, errors, jobs, operate
from .auth import BodyLimit, TokenGuard
from .models import ErrorBody, JobIn


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyresque")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "0"


PREFIX = "/api/v1"
OPENAPI_URL = f"{PREFIX}/openapi.json"
DOCS_URL = f"{PREFIX}/docs"

#: Largest request body, in bytes: a bulk enqueue of a few thousand ordinary jobs fits.
MAX_BODY = 4 * 1024 * 1024

#: Documented on every operation: the answers any of them may give, in the one error shape.
_ERRORS = {code: {"model": ErrorBody, "description": text} for code, text in {
    400: "The request cannot be read (not JSON)", 401: "No token, or a wrong one", 404: "No such job or record",
    409: "The state forbids it", 413: "The body is over the limit", 422: "A bad value (the field is named)",
    503: "Redis is unreachable"}.items()}


def create_app(resque: Resque | None = None, token: str | None = None, public_read: bool = False, *,
               max_body: int = MAX_BODY, routes: Iterable[BaseRoute] = ()) -> FastAPI:
    """The HTTP API over ``resque`` (default: ``Resque()`` from the environment).

    ``token``: required as ``Authorization: Bearer`` on every state-changing request, and on
    reads unless ``public_read``; ``None`` leaves the app open (only for mounting inside an app
    that authenticates on its own). ``routes`` are added at the top level, behind the same gates.
    """
    app = FastAPI(title="pyresque", version=_version(), docs_url=None, redoc_url=None, openapi_url=OPENAPI_URL,
                  default_response_class=errors.StrictJSONResponse, responses=_ERRORS,  # type: ignore[arg-type]
                  description="Resque-compatible job queues over HTTP: enqueue, follow and operate jobs that "
                              "php-resque, Ruby Resque and pyresque workers run. Errors: "
                              '{"error": {"code", "message", "field"}}.')
    app.state.resque = resque if resque is not None else Resque()
    errors.install(app)
    app.include_router(jobs.router, prefix=PREFIX, tags=["jobs"])
    app.include_router(operate.router, prefix=PREFIX, tags=["operate"])

    @app.get(DOCS_URL, include_in_schema=False)
    def docs_page(request: Request) -> HTMLResponse:
        return HTMLResponse(docs.render(app.openapi(), OPENAPI_URL), headers={"Content-Security-Policy": docs.CSP})

    app.openapi = lambda: _openapi(app, secured=token is not None)  # type: ignore[method-assign]
    for route in routes:
        app.router.routes.append(route)
    app.add_middleware(BodyLimit, limit=max_body)
    if token is not None:  # added last: outermost, so no body is read before the token is checked
        app.add_middleware(TokenGuard, token=token, public_read=public_read,
                           open_paths=(OPENAPI_URL, DOCS_URL))
    return app


def _openapi(app: FastAPI, secured: bool) -> dict[str, Any]:
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("JobIn", JobIn.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}"))
        if secured:
            doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            doc["security"] = [{"bearer": []}]
        app.openapi_schema = doc
    return app.openapi_schema
