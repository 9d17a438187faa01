"""One JSON shape for every error the HTTP API answers, and the mapping from what went wrong to it.

Every 4xx and 5xx body is ``{"error": {"code": ..., "message": ..., "field": ...}}``: ``code`` a
stable word a client can branch on, ``message`` for people, ``field`` the request field at fault
(``"args"``, ``"[2].class"``, ``"queue"``, ``"timeout"``) or ``null``.

Status codes: 400 a request that cannot be read (not JSON); 401 no or a wrong token; 404 no such
job, record or route; 405 a method the route does not take; 409 the state forbids it (a failed job
already retried, a record changed meanwhile, an ``Idempotency-Key`` still in flight); 413 a body
over the limit; 422 a readable request with a bad value (a queue name Resque's keys cannot carry,
a class name or args the wire refuses, a key reused for another request); 503 Redis is
unreachable. A 500 means a bug: bad input never gets one.
"""

from __future__ import annotations

import json
import math
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from .. import log
from ..admin.failed import AlreadyRetried, FailedJobChanged, FailedJobNotFound, NotRetryable
from ..exceptions import InvalidPayload, InvalidQueueName, InvalidStatus, KeyTypeError, UnknownJob
from ..scheduling.delayed import InvalidDelay
from ..scheduling.schedules import InvalidSchedule


class ApiError(Exception):
    """An error answer: raised anywhere in a request, rendered by :func:`install`'s handler."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def dumps(doc: Any) -> bytes:
    """Strict JSON, ASCII only: what Python's JSON reader took from Redis may hold NaN (not JSON:
    becomes ``null``) or a lone surrogate (not UTF-8: ``\\udxxx`` escapes carry it)."""
    try:
        text = json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(doc), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class StrictJSONResponse(JSONResponse):
    """Every answer of the API, rendered by :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return StrictJSONResponse(error_body(code, message, field), status_code=status, headers=headers)


#: Library exceptions that mean the request's values were bad or the state forbids it.
_LIBRARY_ERRORS: list[tuple[type[Exception], int, str]] = [
    (InvalidQueueName, 422, "invalid_queue"),
    (InvalidPayload, 422, "invalid_job"),
    (InvalidDelay, 422, "invalid_delay"),
    (InvalidSchedule, 422, "invalid_schedule"),
    (UnknownJob, 404, "unknown_job"),
    (FailedJobNotFound, 404, "failed_job_not_found"),
    (FailedJobChanged, 409, "failed_job_changed"),
    (AlreadyRetried, 409, "already_retried"),
    (NotRetryable, 409, "not_retryable"),
    (InvalidStatus, 409, "unreadable_status"),
    (KeyTypeError, 409, "wrong_key_type"),
]

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "body_too_large", 415: "unsupported_media_type",
               422: "invalid", 503: "unavailable"}


def field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """``("body", 2, "class")`` -> ``"[2].class"``; ``("query", "timeout")`` -> ``"timeout"``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def install(app: FastAPI) -> None:
    """Route every failure of a request to one JSON error shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return error_response(400, "invalid_json", f"the body is not JSON: {first.get('msg')}")
        field = field_of(first.get("loc", ()))
        message = str(first.get("msg", "invalid request"))
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        return error_response(422, "invalid", f"{field or 'request'}: {message}{more}", field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))

    for exc_type, status, code in _LIBRARY_ERRORS:
        app.add_exception_handler(exc_type, _library_handler(status, code))

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def redis_down(request: Request, exc: Exception) -> Response:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return error_response(503, "redis_unavailable", f"cannot reach Redis: {reason}")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.get_logger().exception("web request failed", path=request.url.path, method=request.method)
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); see the server log")


def _library_handler(status: int, code: str) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return error_response(status, code, str(exc))
    return handler
