"""The two gates every request passes before a route sees it: the Bearer token and the body limit.

Both are plain ASGI middleware, so they guard every route of the app, including any mounted
later (``/metrics``), and answer in the API's one error shape.

Token rule: a request that changes state (anything but GET, HEAD, OPTIONS) always needs
``Authorization: Bearer <token>``; a read needs it too unless ``public_read``. The docs page and
the OpenAPI document are always open: they describe the API, they hold no data. No header or a
wrong token is 401 (with ``WWW-Authenticate: Bearer``); the token is compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Iterable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value)
    return None


class TokenGuard:
    """Refuses requests without the token (see the module docstring for which)."""

    def __init__(self, app: ASGIApp, token: str, public_read: bool = False, open_paths: Iterable[str] = ()) -> None:
        if not token:
            raise ValueError("the web API needs a non-empty token")
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.public_read = public_read
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"authorization")
        if given is None:
            message, code = "this request needs 'Authorization: Bearer <token>'", "missing_token"
        else:
            message, code = "the token is not valid", "invalid_token"
        response = error_response(401, code, message, "Authorization", {"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if (path[len(root):] if root and path.startswith(root) else path) in self.open_paths:  # mounted: minus the mount
            return True
        if self.public_read and scope.get("method") in READ_METHODS:
            return True
        given = _header(scope, b"authorization") or b""
        return hmac.compare_digest(given, self.expected)


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` past the limit: an HTTPException, so that a framework reading the
    body passes it on (FastAPI turns other errors there into a 400) and the handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


class BodyLimit:
    """413 for a body over ``limit`` bytes: at once when ``Content-Length`` says so, else when the
    streamed body passes it (a chunked upload never gets read whole into memory)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await error_response(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                return
            if declared > self.limit:
                await self._refuse(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "body_too_large", f"the request body is over {self.limit} bytes",
                                  headers={"Connection": "close"})
        await response(scope, receive, send)
