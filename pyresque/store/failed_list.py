"""Resque's ``failed`` list: the commands behind :mod:`pyresque.admin.failed` and the status's
fallback search, mixed into :class:`~.datastore.DataStore` (one connection pool, one API).

Every edit names the record by its exact bytes as well as its index (the scripts in
:mod:`.scripts`), so a list that changed underneath is never edited at the wrong place.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import redis

from ..wire.keys import Keys


class FailedListCommands:
    """The failed-list part of :class:`~.datastore.DataStore`, which registers the scripts."""

    redis: Any
    keys: Keys
    _edit_failed: Any
    _requeue_failed: Any

    def push_failure(self, record: str, worker_id: str | None = None) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(self.keys.failed, record)
        pipe.incrby(self.keys.stat("failed"), 1)
        if worker_id:
            pipe.incrby(self.keys.worker_stat("failed", worker_id), 1)
        pipe.execute()

    def failed_count(self) -> int:
        return int(self.redis.llen(self.keys.failed))

    def failed_range(self, start: int, count: int) -> list[bytes]:
        if count <= 0:
            return []
        return list(self.redis.lrange(self.keys.failed, start, start + count - 1))

    def replace_failed(self, index: int, expected: bytes, replacement: str) -> bool:
        return bool(self._edit_failed(keys=[self.keys.failed], args=[index, expected, replacement, ""]))

    def remove_failed(self, index: int, expected: bytes) -> bool:
        marker = "__pyresque_removed__:" + os.urandom(16).hex()  # see EDIT_FAILED_LUA
        return bool(self._edit_failed(keys=[self.keys.failed], args=[index, expected, "", marker]))

    def find_failed(self, expected: bytes, page: int = 500) -> int | None:
        """Index of the first failure record with exactly these bytes (LPOS; a scan before Redis 6.0.6)."""
        try:
            found = self.redis.lpos(self.keys.failed, expected)
        except redis.ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
        else:
            return None if found is None else int(found)
        start = 0
        while True:
            chunk = self.failed_range(start, page)
            for offset, raw in enumerate(chunk):
                if raw == expected:
                    return start + offset
            if len(chunk) < page:
                return None
            start += page

    def clear_failed(self) -> int:
        pipe = self.redis.pipeline(transaction=True)
        pipe.llen(self.keys.failed)
        pipe.delete(self.keys.failed)
        return int(pipe.execute()[0])

    def requeue_failed(self, index: int, expected: bytes, updated_record: str, queue: str, item: str,
                       status_key: str | None, status_packet: str | None, remove: bool = False) -> bool:
        """Push a failure's job again and mark its record retried (``remove``: delete the record
        instead), only if the record is unchanged; a tracked job's status goes back to waiting
        and its failure summary is dropped."""
        keys = [self.keys.failed, self.keys.queues, self.keys.queue(queue), status_key or self.keys.status("-"),
                self.keys.job_failure_of(status_key) if status_key else self.keys.status("-")]
        marker = "__pyresque_removed__:" + os.urandom(16).hex() if remove else ""  # see EDIT_FAILED_LUA
        args: list[Any] = [index, expected, updated_record, queue, item, status_packet if status_key else "", marker]
        return bool(self._requeue_failed(keys=keys, args=args))

    def recent_failures(self, limit: int, page: int = 100) -> Iterator[bytes]:
        """The newest ``limit`` failure records, newest first, read from the list's end in pages
        (records appended meanwhile may make one be seen twice, never skipped)."""
        seen = 0
        while seen < limit:
            count = min(page, limit - seen)
            try:
                chunk = self.redis.lrange(self.keys.failed, -(seen + count), -(seen + 1))
            except redis.ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                return  # another program's value: no failure records to read
            yield from reversed(chunk)
            if len(chunk) < count:
                return
            seen += count
