"""Which queues a worker reserves from, in priority order, and whether all workers are paused.

Ruby-style globs (``*``, ``high*``) are expanded against the known queues at most once a
second, so a worker of ``QUEUE=*`` picks up a new queue within a second without a ``SMEMBERS``
per job. The pause flag costs nothing while unpaused: the reserve script reports it
(:meth:`QueueSelection.learned_paused`); while paused it is read at most once a second. Each
change of it is logged, so a worker's log says why it stopped taking jobs.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any, Sequence

from ..exceptions import ConfigurationError
from ..store.datastore import DataStore
from ..wire import payload as wire

_GLOB = set("*?[")
_RECHECK = 1.0  # seconds a glob expansion or a pause check is trusted


def is_glob(pattern: str) -> bool:
    return any(ch in _GLOB for ch in pattern)


class QueueSelection:
    """A worker's queue patterns, resolved to queue names when it reserves."""

    def __init__(self, store: DataStore, patterns: Sequence[str], log: Any = None) -> None:
        if not patterns:
            raise ConfigurationError("no queues given: set QUEUE to a comma-separated list (or *)")
        for pattern in patterns:
            if not is_glob(pattern):
                wire.validate_queue_name(pattern)
        self.store = store
        self.patterns = list(patterns)
        self.log = log
        self._has_globs = any(is_glob(p) for p in self.patterns)
        self._expanded: tuple[float, list[str]] = (0.0, [])
        self._pause_checked = (0.0, False)

    def names(self) -> list[str]:
        """The queue list in priority order, with globs expanded (each queue once)."""
        if not self._has_globs:
            return self.patterns
        checked, cached = self._expanded
        if time.monotonic() - checked < _RECHECK:
            return cached
        known = self.store.queue_names()
        expanded: dict[str, None] = {}  # ordered, and O(1) per name: QUEUE=* may see 200k queues
        for pattern in self.patterns:
            matches = sorted(fnmatch.filter(known, pattern)) if is_glob(pattern) else [pattern]
            expanded.update(dict.fromkeys(q for q in matches if q not in expanded))
        names = list(expanded)
        self._expanded = (time.monotonic(), names)
        return names

    def all_paused(self) -> bool:
        """Is ``pause-all-workers`` set? Asked of Redis at most once a second, and only while the
        last answer (or the reserve script) said paused."""
        checked, paused = self._pause_checked
        if not paused or time.monotonic() - checked < _RECHECK:
            return paused
        paused = self.store.all_paused()
        self._pause_checked = (time.monotonic(), paused)
        if not paused and self.log is not None:
            self.log.info("resuming: pause-all-workers was cleared")
        return paused

    def learned_paused(self) -> None:
        """The reserve script found every worker paused: trust that for a second."""
        if not self._pause_checked[1] and self.log is not None:
            self.log.info("paused: pause-all-workers is set (pyresque resume clears it)")
        self._pause_checked = (time.monotonic(), True)
