"""Living through Redis trouble: one warning when an outage starts, one line when it ends, and a
capped exponential backoff in between (no traceback spam, no hammering a restarting server);
and keys of the wrong type that the scripts skipped, each logged once (never a crash loop)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from .. import defaults


class _Reports(Protocol):
    problems: list[str]

    def take_problems(self) -> list[str]: ...


class Outage:
    def __init__(self, log: Any, url: str) -> None:
        self.log = log
        self.url = url
        self.since: float | None = None
        self.attempts = 0
        self._problems_seen: set[str] = set()

    @property
    def active(self) -> bool:
        return self.since is not None

    def down(self, exc: BaseException) -> None:
        """Note a failed call; only the first of an outage is logged."""
        if self.since is None:
            self.since = time.monotonic()
            self.attempts = 0
            self.log.warning("redis unavailable, retrying with backoff", url=self.url,
                             error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def next_delay(self) -> float:
        """Seconds to wait before the next try: doubling from the start value up to the cap."""
        self.attempts += 1
        return min(defaults.OUTAGE_BACKOFF_CAP, defaults.OUTAGE_BACKOFF_START * 2 ** min(self.attempts, 10))

    def back(self) -> None:
        if self.since is not None:
            self.log.info("redis is back", down_for=round(time.monotonic() - self.since, 3))
            self.since = None

    def report(self, store: _Reports) -> None:
        """Log what the scripts skipped (a queue that is a hash, a counter that holds "abc"),
        each once per process: the job went on, the operator should know the key is broken."""
        for problem in store.take_problems() if store.problems else ():
            if problem not in self._problems_seen:
                self._problems_seen.add(problem)
                self.log.error("a key in Redis holds the wrong type, skipped", problem=problem)
