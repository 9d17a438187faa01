"""The failed list: read, retry and remove Resque failure records, safely while workers run.

Records are the ones every implementation writes: ``{"failed_at", "payload", "exception",
"error", "backtrace", "worker", "queue"}``, plus ``"retried_at"`` once retried. Operations follow
Ruby's ``Resque::Failure`` (index-based; a retried record stays in the list, marked with
``retried_at``), with these differences:

1. Every change names the record by its exact bytes as well as its index. A record that moved
   because the list changed underneath (resque-web's race) is found again by content; one that
   was removed or changed meanwhile is reported, never swapped for its neighbour.
2. Retrying a php-resque job keeps its ``id``: the job is pushed again in php-resque's shape with
   a fresh ``queue_time`` and its status reset to WAITING, so php's status API follows the retry
   (Ruby's requeue drops the id, vector h3). A job without an id goes back in Ruby's bare
   ``{"class","args"}``, byte for byte what Ruby's requeue writes.
3. A record already retried (``retried_at`` set, by pyresque, Ruby or resque-web) is not retried
   again unless asked (``again=True``): Ruby's rule enqueues the job once more, silently. A
   retry may move the record out instead (``remove=True``, or ``PYRESQUE_FAILED_RETRY=remove``):
   the job is pushed and its record deleted in one step. Each retry after the first keeps the
   earlier times in ``retried_before`` (the first one is written byte for byte as Ruby's).

The list is only ever edited in place (LSET, or LREM of one record) and never LPUSHed, trimmed
or reordered, so failures that workers append meanwhile are never lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Union

from ..exceptions import ConfigurationError, InvalidPayload, InvalidQueueName, PyresqueError
from ..wire import payload as wire

if TYPE_CHECKING:
    from ..queue import Resque

#: Records read per LRANGE while scanning: enough to amortise the round trip, small enough that
#: a list of large backtraces never has to fit in memory at once.
PAGE = 500

#: How often one operation follows a record that keeps moving (or a WATCH that keeps being
#: interrupted by workers appending failures) before it gives up and says so.
ATTEMPTS = 10

#: Hex characters of a record's digest shown in listings; enough to tell records apart, short
#: enough to type. Any prefix of at least MIN_DIGEST characters is accepted back.
SHORT_DIGEST = 8
MIN_DIGEST = 6

#: Whether a retry keeps the record, marked ``retried_at`` (``keep``, Ruby's rule, the default),
#: or moves it out of the list (``remove``); ``retry(remove=...)`` overrides it.
RETRY_MODE_ENV = "PYRESQUE_FAILED_RETRY"


class FailedJobNotFound(PyresqueError, LookupError):
    """No failure record at that index."""


class FailedJobChanged(PyresqueError):
    """The record was removed or changed since it was read, so nothing was done to it."""


class NotRetryable(PyresqueError):
    """The record holds no job that can be pushed again (not JSON, no class, bad queue)."""


class AlreadyRetried(PyresqueError):
    """The record was retried before (``retried_at``): retrying it again enqueues its job once
    more, so it is done only when asked (``again=True``)."""


@dataclass(frozen=True)
class FailedJob:
    """One entry of the failed list: its index when read, its exact bytes, and the decoded record.

    ``record`` is ``None`` when the bytes are not a JSON object; such an entry can be listed and
    removed but not retried.
    """

    index: int
    raw: bytes
    record: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def read(cls, index: int, raw: bytes) -> FailedJob:
        return cls(index, raw, wire.decode_failure(raw))

    @property
    def digest(self) -> str:
        """SHA-1 of the exact bytes: names this version of the record (a retry changes it)."""
        return hashlib.sha1(self.raw).hexdigest()

    @property
    def short_digest(self) -> str:
        return self.digest[:SHORT_DIGEST]

    @property
    def payload(self) -> dict[str, Any] | None:
        value = self.record.get("payload") if self.record else None
        return value if isinstance(value, dict) else None

    @property
    def job_class(self) -> str | None:
        value = self.payload.get("class") if self.payload else None
        return value if isinstance(value, str) else None

    @property
    def args(self) -> Any:
        return self.payload.get("args") if self.payload else None

    @property
    def job_id(self) -> str | None:
        """The php-resque id, when the failed payload carried one."""
        value = self.payload.get("id") if self.payload else None
        return value if isinstance(value, str) and value else None

    @property
    def status_prefix(self) -> str:
        value = self.payload.get("prefix") if self.payload else None
        return value if isinstance(value, str) else ""

    def _text(self, name: str) -> str | None:
        value = self.record.get(name) if self.record else None
        return None if value is None else str(value)

    @property
    def queue(self) -> str | None:
        return self._text("queue")

    @property
    def exception(self) -> str | None:
        return self._text("exception")

    @property
    def error(self) -> str | None:
        return self._text("error")

    @property
    def worker(self) -> str | None:
        return self._text("worker")

    @property
    def failed_at(self) -> str | None:
        """The time as written (Ruby, php ``date('c')`` or chrisboulton format)."""
        return self._text("failed_at")

    @property
    def retried_at(self) -> str | None:
        return self._text("retried_at")

    @property
    def retried_before(self) -> list[str]:
        """The times of earlier retries, oldest first, when pyresque retried it more than once."""
        value = self.record.get("retried_before") if self.record else None
        return [str(when) for when in value] if isinstance(value, list) else []

    @property
    def attempt(self) -> int:
        """Which run of the job failed here (pyresque's ``@retry`` counts them; 1 otherwise)."""
        return wire.attempt_of(self.payload) if self.payload else 1

    @property
    def retry_history(self) -> list[dict[str, Any]]:
        """The earlier runs' failures (``attempt``, ``failed_at``, ``exception``, ``error``), oldest
        first, as ``@retry`` recorded them in the payload."""
        value = self.payload.get("retry_history") if self.payload else None
        return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []

    @property
    def failed_time(self) -> float | None:
        """``failed_at`` as a Unix time; ``None`` when missing or in no known format."""
        text = self.failed_at
        return None if text is None else wire.parse_time(text)

    @property
    def backtrace(self) -> list[str]:
        value = self.record.get("backtrace") if self.record else None
        if isinstance(value, list):
            return [str(line) for line in value]
        return [] if value is None else [str(value)]

    def matches(self, queue: str | None = None, job_class: str | None = None, since: float | None = None,
                job_id: str | None = None) -> bool:
        """Whether the record passes every given filter; an entry that is not JSON passes none."""
        if queue is None and job_class is None and since is None and job_id is None:
            return True
        if self.record is None:
            return False
        if job_id is not None and self.job_id != job_id:
            return False
        if queue is not None and self.queue != queue:
            return False
        if job_class is not None and self.job_class != job_class:
            return False
        if since is not None:
            when = self.failed_time
            if when is None or when < since:
                return False
        return True

    def describe(self) -> str:
        """A few words for messages: ``3 (FailJob on default)``."""
        if self.record is None:
            return f"{self.index} (not JSON)"
        return f"{self.index} ({self.job_class or 'no class'} on {self.queue or 'no queue'})"


@dataclass
class BulkResult:
    """What a bulk retry or remove did: how many records it acted on, and what it left alone."""

    done: int = 0
    gone: int = 0  # matched when read, but removed or changed by someone else before acting
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)
    already_retried: int = 0  # left alone: retried before, and ``again`` was not given


Target = Union[int, FailedJob]


class FailedJobs:
    """The failed list of one Resque keyspace::

        failed = FailedJobs(Resque())
        for job in failed.list(job_class="PHP_FailJob", limit=20):
            failed.retry(job)          # follows the record if the list shifted meanwhile

    Operations take an index (the record there now) or a :class:`FailedJob` read earlier (that
    record, wherever it is now, or :class:`FailedJobChanged` if it is gone or changed).
    """

    def __init__(self, resque: Resque) -> None:
        self.store = resque.store
        self.keys = resque.keys

    # -- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        return self.store.failed_count()

    def get(self, index: int) -> FailedJob:
        _check_index(index)
        found = self.store.failed_range(index, 1)
        if not found:
            raise FailedJobNotFound(f"no failed job at index {index}: the failed list holds {self.count()}")
        return FailedJob.read(index, found[0])

    def find(self, index: int, digest: str) -> FailedJob:
        """The record whose digest starts with ``digest``: at ``index`` if it is still there,
        else wherever it moved. Raises :class:`FailedJobChanged` when no record has it."""
        _check_index(index)
        digest = digest.strip().lower()
        if len(digest) < MIN_DIGEST or any(ch not in "0123456789abcdef" for ch in digest):
            raise ValueError(f"a digest is at least {MIN_DIGEST} hex characters, got {digest!r}")
        found = self.store.failed_range(index, 1)
        if found and hashlib.sha1(found[0]).hexdigest().startswith(digest):
            return FailedJob.read(index, found[0])
        matches = [job for job in self._scan() if job.digest.startswith(digest)]
        if not matches:
            raise FailedJobChanged(f"no failed job with digest {digest}: it was removed, or changed (retried), "
                                   f"since it was listed")
        if len({job.raw for job in matches}) > 1:
            raise ValueError(f"digest {digest} matches several failed jobs; give more characters")
        return min(matches, key=lambda job: abs(job.index - index))

    def list(
        self,
        queue: str | None = None,
        job_class: str | None = None,
        since: float | datetime | None = None,
        limit: int | None = None,
        job_id: str | None = None,
    ) -> List[FailedJob]:
        """Matching records in list order (oldest first); with ``limit``, the newest ``limit``.

        The list is read from its end in pages, so a limit stops early. A listing taken while
        others remove records may miss or repeat one; acting on an entry is still exact.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        since_ts = _timestamp(since)
        newest_first: List[FailedJob] = []
        for job in self._scan_from_end():
            if job.matches(queue, job_class, since_ts, job_id):
                newest_first.append(job)
                if limit is not None and len(newest_first) >= limit:
                    break
        newest_first.reverse()
        return newest_first

    def by_id(self, job_id: str) -> FailedJob:
        """The newest record of the job with that php-resque id (a job may have failed more than
        once: :meth:`list` with ``job_id`` gives them all)."""
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"a job id is a non-empty string, got {job_id!r}")
        found = self.list(job_id=job_id, limit=1)
        if not found:
            raise FailedJobNotFound(f"no failed job with id {job_id} in the failed list")
        return found[0]

    # -- acting on one record ------------------------------------------------------------------
    def retry(self, target: Target, *, remove: bool | None = None, again: bool = False) -> FailedJob:
        """Push the job again and mark the record ``retried_at`` (it stays in the list), or with
        ``remove`` delete the record in the same step (``None``: as ``PYRESQUE_FAILED_RETRY``
        says, else keep). Raises :class:`AlreadyRetried` for a record retried before, unless
        ``again``.

        Returns the record as it is now (its current index, and the bytes with ``retried_at``),
        or as it was when removed.
        """
        job = self._resolve(target)
        if job.retried_at is not None and not again:
            raise AlreadyRetried(f"failed job {job.describe()} was already retried at {job.retried_at}: retrying "
                                 f"it again enqueues it once more: give --again (Python: again=True) to do so")
        remove = retry_removes() if remove is None else remove
        record, queue, item, status_key, packet = self._retry_plan(job, time.time())
        index = self._follow(job, lambda i: self.store.requeue_failed(i, job.raw, record, queue, item, status_key,
                                                                      packet, remove))
        if remove:
            return replace(job, index=index)
        return FailedJob.read(index, record.encode("utf-8"))

    def remove(self, target: Target) -> FailedJob:
        """Delete the record; returns it, with the index it had when it was removed."""
        job = self._resolve(target)
        index = self._follow(job, lambda i: self.store.remove_failed(i, job.raw))
        return replace(job, index=index)

    # -- bulk ----------------------------------------------------------------------------------
    def retry_all(self, queue: str | None = None, job_class: str | None = None, *, remove: bool | None = None,
                  again: bool = False) -> BulkResult:
        """Retry every record (or those of a queue and/or class), like Ruby's ``requeue_all``.

        Unlike Ruby, a record already retried is left alone and counted (``already_retried``)
        unless ``again``; records that are not jobs are skipped and reported. ``remove`` as in
        :meth:`retry`.
        """
        remove = retry_removes() if remove is None else remove
        return self._bulk(lambda job: self.retry(job, remove=remove, again=again), queue, job_class)

    def remove_where(self, queue: str | None = None, job_class: str | None = None) -> BulkResult:
        """Delete the records of a queue and/or class (use :meth:`clear` for all of them)."""
        if queue is None and job_class is None:
            raise ValueError("give a queue or a class to remove; clear() removes everything")
        return self._bulk(self.remove, queue, job_class)

    def clear(self, queue: str | None = None) -> int:
        """Delete every record (``DEL failed``, as Ruby), or only that queue's; returns how many."""
        if queue is None:
            return self.store.clear_failed()
        return self.remove_where(queue=queue).done

    # -- internals -----------------------------------------------------------------------------
    def _resolve(self, target: Target) -> FailedJob:
        return target if isinstance(target, FailedJob) else self.get(target)

    def _follow(self, job: FailedJob, act: Callable[[int], bool]) -> int:
        """Run ``act`` on the record holding exactly ``job.raw``; returns the index it acted at.

        ``act`` checks the bytes atomically and declines if they differ (see EDIT_FAILED_LUA and
        ``requeue_failed``); then the record is looked for by content and tried again there.
        """
        index = job.index
        for _ in range(ATTEMPTS):
            if act(index):
                return index
            found = self.store.find_failed(job.raw)
            if found is None:
                raise FailedJobChanged(f"failed job {job.describe()} was removed or changed by someone else "
                                       f"since it was read; nothing was done to it")
            index = found
        raise FailedJobChanged(f"failed job {job.describe()}: the failed list kept changing under "
                               f"{ATTEMPTS} attempts; nothing was done, try again")

    def _retry_plan(self, job: FailedJob, now: float) -> tuple[str, str, str, str | None, str | None]:
        """(updated record, queue, payload to push, status key or None, status packet or None)."""
        record = job.record
        if record is None:
            raise NotRetryable(f"failed job {job.index} is not a JSON record: it can only be removed")
        job_class = job.job_class
        if not job_class:
            raise NotRetryable(f"failed job {job.describe()} has no payload with a job class to retry")
        if job_class == wire.UNREADABLE_JOB:
            raise NotRetryable(f"failed job {job.describe()} is an unreadable item, not a job: it can only be removed")
        args = job.args
        if args is None:
            args = []  # Ruby: missing or nil args are no arguments
        if not isinstance(args, list):
            raise NotRetryable(f"failed job {job.describe()} has args that are not a list")
        try:
            queue = wire.validate_queue_name(record.get("queue"))
        except InvalidQueueName as exc:
            raise NotRetryable(f"failed job {job.index}: {exc}") from None
        job_id = job.job_id
        try:
            if job_id is None:
                # Ruby's requeue: a fresh bare payload, written with Ruby's encoder.
                item = wire.encode_ruby(wire.build_payload(job_class, args, None))
                item.encode("utf-8")
                status_key = packet = None
            else:
                # php-resque's shape with the same id and prefix, so its status API follows it.
                prefix = job.status_prefix
                item = wire.encode_payload(wire.build_payload(job_class, args, job_id, prefix, now))
                status_key = self.keys.status(job_id, prefix)
                packet = wire.encode_status(wire.WAITING, int(now), int(now))
        except (InvalidPayload, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise NotRetryable(f"failed job {job.describe()}: its arguments cannot be written back: {exc}") from None
        updated = dict(record)
        earlier = record.get("retried_at")
        if isinstance(earlier, str):  # a retry again: the earlier times stay, retried_at stays last
            del updated["retried_at"]
            updated["retried_before"] = job.retried_before + [earlier]
        updated["retried_at"] = wire.failed_at(now)  # Ruby sets it in place, or appends it
        return _encode_record(updated), queue, item, status_key, packet

    def _bulk(self, act: Callable[[FailedJob], Any], queue: str | None, job_class: str | None) -> BulkResult:
        """Act on every match, from the end of the list towards its start, so records this
        removes never shift the ones still to do; others' changes are followed by content."""
        result = BulkResult()
        selected = [job for job in self._scan() if job.matches(queue, job_class)]
        for job in reversed(selected):
            try:
                act(job)
            except FailedJobChanged:
                result.gone += 1
            except AlreadyRetried:
                result.already_retried += 1
            except NotRetryable as exc:
                result.skipped.append((job.index, str(exc)))
            else:
                result.done += 1
        result.skipped.reverse()
        return result

    def _scan(self) -> Iterator[FailedJob]:
        """Every record from the start, page by page (records removed meanwhile may be missed)."""
        start = 0
        while True:
            chunk = self.store.failed_range(start, PAGE)
            for offset, raw in enumerate(chunk):
                yield FailedJob.read(start + offset, raw)
            if len(chunk) < PAGE:
                return
            start += PAGE

    def _scan_from_end(self) -> Iterator[FailedJob]:
        end = self.store.failed_count() - 1
        while end >= 0:
            start = max(0, end - PAGE + 1)
            chunk = self.store.failed_range(start, end - start + 1)
            for offset in range(len(chunk) - 1, -1, -1):
                yield FailedJob.read(start + offset, chunk[offset])
            end = start - 1


def retry_removes() -> bool:
    """What ``PYRESQUE_FAILED_RETRY`` asks of a retry: True for ``remove``, False for ``keep``
    (the default, Ruby's rule). Any other value is refused, not guessed at."""
    value = os.environ.get(RETRY_MODE_ENV, "keep").strip().lower() or "keep"
    if value not in ("keep", "remove"):
        raise ConfigurationError(f"{RETRY_MODE_ENV} must be 'keep' or 'remove', not {os.environ[RETRY_MODE_ENV]!r}")
    return value == "remove"


def _check_index(index: Any) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"a failed-list index is a non-negative integer, got {index!r}")


def _timestamp(since: float | datetime | None) -> float | None:
    if since is None or isinstance(since, (int, float)):
        return since
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)  # failure times are UTC
    return since.timestamp()


def _encode_record(record: dict[str, Any]) -> str:
    """Ruby's encoder, as Ruby's requeue rewrites the record; a record Ruby's encoder could not
    have produced (NaN, a lone surrogate escape) is written ASCII-escaped, losing nothing."""
    try:
        text = wire.encode_failure(record)
        text.encode("utf-8")
        return text
    except ValueError:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


__all__ = [
    "AlreadyRetried", "BulkResult", "FailedJob", "FailedJobChanged", "FailedJobNotFound", "FailedJobs",
    "NotRetryable", "RETRY_MODE_ENV", "retry_removes",
]
