"""Redis commands behind ``Idempotency-Key``: claim a key once, settle it with the answer, or let it go.

One string per key (:meth:`pyresque.wire.keys.Keys.idempotency`). Its value is opaque here (the
web room writes and reads it); what matters is that each step is atomic:

1. ``claim``: ``SET NX EX`` with a short TTL. Of two concurrent requests with one key, exactly one
   claims it; the other sees the claim and waits or is told so. A server that dies mid-request
   frees the key when the short TTL runs out.
2. ``settle``: replace the claim by the answer with the long TTL, only if the claim is still ours.
3. ``release``: delete the claim, only if it is still ours (the request failed before enqueuing,
   so a retry must be free to enqueue).
"""

from __future__ import annotations

import redis

# KEYS[1] the idempotency key; ARGV[1] the claim we wrote; ARGV[2] the new value; ARGV[3] TTL (s).
SETTLE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""

# KEYS[1] the idempotency key; ARGV[1] the claim we wrote.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class IdempotencyStore:
    """The three atomic steps on one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._settle = client.register_script(SETTLE_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def claim(self, key: str, claim: str, ttl: int) -> bool:
        """True when this request now owns ``key`` (nobody had it)."""
        return bool(self.redis.set(key, claim, nx=True, ex=ttl))

    def read(self, key: str) -> bytes | None:
        """The key's value, whatever it is (the caller reads it as untrusted); ``None`` if unset
        or not a string."""
        try:
            value = self.redis.get(key)
        except redis.ResponseError:  # WRONGTYPE: someone else's data; treat as no answer
            return None
        return value if isinstance(value, bytes) else None

    def settle(self, key: str, claim: str, answer: str, ttl: int) -> bool:
        return bool(self._settle(keys=[key], args=[claim, answer, ttl]))

    def release(self, key: str, claim: str) -> bool:
        return bool(self._release(keys=[key], args=[claim]))
