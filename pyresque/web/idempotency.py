"""``Idempotency-Key``: a retried POST enqueues once and gets the first answer again.

As the IETF draft (draft-ietf-httpapi-idempotency-key-header) has it:

1. The key (any 1..255 printable ASCII characters) is stored as the SHA-256 of itself, under
   pyresque's own namespace (``<prefix>:pyresque_idempotency:<sha256>``), php and Ruby ignore it.
2. The first request claims it atomically (``SET NX``, :data:`CLAIM_TTL`); when it has
   answered with a 2xx the answer replaces the claim for :data:`ANSWER_TTL` (24 h). A request
   that fails (4xx/5xx: nothing was enqueued) lets the key go, so it can be retried.
3. A request with a key already answered gets that answer again (``Idempotent-Replayed: true``)
   when it is the same request (method, path and body); another request with that key is a 422.
   One sent while the first is in flight waits up to :data:`WAIT_FOR_FIRST`, then gets a 409.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..exceptions import InvalidPayload
from ..queue import Resque
from ..store.idempotency import IdempotencyStore
from ..wire import untrusted
from .errors import ApiError

HEADER = "Idempotency-Key"

#: How long an unanswered claim blocks its key: a server killed mid-request frees it then.
CLAIM_TTL = 60

#: How long an answer is kept, and replayed to a retry.
ANSWER_TTL = 24 * 3600

#: How long a request waits for an in-flight one with the same key before a 409.
WAIT_FOR_FIRST = 2.0

MAX_KEY_LENGTH = 255


@dataclass
class Claim:
    """A key this request owns until it settles or releases it."""

    key: str
    token: str
    fingerprint: str


@dataclass
class Replay:
    status: int
    body: Any


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode("utf-8", "surrogateescape"), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def check_key(value: str) -> str:
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in value):
        raise ApiError(400, "invalid_idempotency_key",
                       f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters", HEADER)
    return value


class Idempotency:
    def __init__(self, resque: Resque) -> None:
        self.resque = resque
        self.store = IdempotencyStore(resque.redis)

    def _redis_key(self, value: str) -> str:
        return self.resque.keys.idempotency(hashlib.sha256(value.encode("ascii")).hexdigest())

    async def begin(self, value: str, request_fingerprint: str) -> Claim | Replay:
        """Own the key (a :class:`Claim`), or the earlier answer to replay; raises 409/422."""
        key = self._redis_key(check_key(value))
        token = secrets.token_hex(8)
        claim_doc = json.dumps({"state": "pending", "request": request_fingerprint, "claim": token})
        deadline = time.monotonic() + WAIT_FOR_FIRST
        pause = 0.01
        while True:
            if await run_in_threadpool(self.store.claim, key, claim_doc, CLAIM_TTL):
                return Claim(key, claim_doc, request_fingerprint)
            raw = await run_in_threadpool(self.store.read, key)
            doc = _read(raw)
            if doc is not None and doc.get("request") != request_fingerprint:
                raise ApiError(422, "idempotency_key_reused",
                               f"this {HEADER} was used for a different request (method, path or body)", HEADER)
            if doc is not None and doc.get("state") == "done" and isinstance(doc.get("status"), int):
                return Replay(doc["status"], doc.get("body"))
            if time.monotonic() >= deadline:
                raise ApiError(409, "idempotency_key_in_flight",
                               f"a request with this {HEADER} is still being processed; retry later", HEADER)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def finish(self, claim: Claim, status: int, body: Any) -> None:
        """Keep a 2xx answer for :data:`ANSWER_TTL`; let the key go after anything else."""
        if 200 <= status < 300:
            answer = json.dumps({"state": "done", "request": claim.fingerprint, "status": status, "body": body})
            await run_in_threadpool(self.store.settle, claim.key, claim.token, answer, ANSWER_TTL)
        else:
            await run_in_threadpool(self.store.release, claim.key, claim.token)


def _read(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        doc = untrusted.loads(raw, "idempotency record")
    except InvalidPayload:
        return None
    return doc if isinstance(doc, dict) else None
