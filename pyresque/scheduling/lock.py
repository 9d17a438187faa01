"""The scheduler's master lock: resque-scheduler's, plus two guards so no lock stops every scheduler.

resque-scheduler's rules (``lock/resilient.rb``): take the lock with SETNX + EXPIRE, value
``host:pid``; refresh its TTL each pass while it holds our value; release it only if ours. A
master that dies stops refreshing, and its lock expires after ``LOCK_TIMEOUT``.

That trusts whoever wrote the key. What it leaves open, and what this module adds:

1. A lock without a TTL (``SET`` by hand or by a script, or a SETNX whose EXPIRE never came)
   never expires, and every scheduler waits forever. It is given our lock timeout at first sight,
   so it expires like a dead master's unless its holder refreshes it.
2. A lock with a TTL of years that nobody refreshes does the same for years. A holder that has
   not touched its lock for a whole lock timeout of ours is taken for dead, and the lock is taken
   over, atomically and only if it is still untouched. A live master refreshes it every pass,
   well within any timeout it shares with us: give every scheduler the same ``LOCK_TIMEOUT``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..store.scheduler_store import SchedulerStore

#: How far the expiry a holder's TTL implies may drift between two reads (the round trips) before
#: it counts as touched. Far below any lock timeout (>= 1 s), far above a round trip.
_DRIFT = 0.25


@dataclass
class _Sighting:
    holder: bytes
    expires: float  # on our monotonic clock: when the lock expires if nobody touches it
    since: float  # when it was first seen so, or last seen touched


class MasterLock:
    """One scheduler's view of the master lock: :meth:`elect` once per pass."""

    def __init__(self, store: SchedulerStore, value: str, ttl: int, log: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.value = value
        self.ttl = ttl
        self.log = log
        self.clock = clock
        self._sighting: _Sighting | None = None

    def elect(self) -> bool:
        """resque-scheduler's ``master?`` (acquire, or refresh when ours), else watch the holder."""
        if self.store.acquire_lock(self.value, self.ttl) or self.store.refresh_lock(self.value, self.ttl):
            self._sighting = None
            return True
        return self._watch()

    def release(self) -> bool:
        self._sighting = None
        return self.store.release_lock(self.value)

    def forget(self) -> None:
        """Forget how long the holder has gone without refreshing: after a Redis outage it could
        not refresh either, and must not be taken for dead for that."""
        self._sighting = None

    def _watch(self) -> bool:
        holder, pttl = self.store.lock_state()
        if holder is None or pttl == -2:  # expired since: the next pass takes it
            self._sighting = None
            return False
        if pttl == -1:
            if self.store.expire_lock(holder, self.ttl):
                self.log.warning("master lock had no TTL: gave it one, it expires unless its holder refreshes it",
                                 holder=_text(holder), lock_timeout=self.ttl)
            self._sighting = None
            return False
        now = self.clock()
        expires = now + pttl / 1000
        seen = self._sighting
        if seen is None or seen.holder != holder or abs(expires - seen.expires) > _DRIFT:
            self._sighting = _Sighting(holder, expires, now)  # new, or touched (refreshed): alive
            return False
        if now - seen.since < self.ttl:
            return False
        self._sighting = None
        if not self.store.take_over_lock(holder, pttl, self.value, self.ttl):
            return False  # touched or gone meanwhile
        self.log.warning("took over the master lock: its holder had not refreshed it for a whole lock timeout",
                         holder=_text(holder), lock_timeout=self.ttl, ttl_left=math.ceil(pttl / 1000))
        return True


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")
