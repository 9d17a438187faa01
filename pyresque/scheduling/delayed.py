"""Delayed jobs in resque-scheduler's layout: schedule, list, remove, and move due ones.

The layout is resque-scheduler's, byte for byte, so Ruby's ``remove_delayed``/``delayed?``,
resque-web's Delayed tab and php-resque's scheduler all see pyresque's delayed jobs::

    delayed_queue_schedule   zset   member = score = integer epoch second
    delayed:<ts>             list   {"class","args","queue"} items, Ruby's encoder (key order too)
    timestamps:<item>        set    "delayed:<ts>" for each bucket holding that exact item

A job that has an id (php-resque's payload, tracked or not), or any other key beyond
``class``/``args`` (a retry's ``attempt``), keeps its payload across the delay. Its item in
``delayed:<ts>`` stays Ruby-exact (so Ruby can find and remove it), and its full payload waits
in a side hash ``pyresque_delayed:<ts>`` under the item's bytes, one list entry per copy. When
pyresque's scheduler moves the item it pushes that payload (same ``id``/``prefix``, fresh
``queue_time``) and leaves the status key as it is (WAITING since the job was scheduled).

The trade-offs, also in README.rst:

* Ruby's ``remove_delayed`` removes a tracked job's item; its payload is dropped with the bucket
  and its status stays WAITING (Ruby knows nothing of it). ``pyresque delayed remove`` also
  deletes the status key.
* Ruby's or php-resque's scheduler moving a bucket pushes a fresh ``{"class","args"}`` (Ruby) or a
  new untracked id (php): the id and its status are lost, as they are for any Ruby-side requeue.
  Run pyresque's scheduler (it takes the same master lock) to keep ids.
* Items without a side payload (Ruby's, php's, ``shape="ruby"``) are pushed as Ruby does:
  ``{"class","args"}``.

Times: a job is never moved before its time. The bucket is the *next* whole second
(``ceil(when)``) and a bucket is due once the clock has reached it; a time not in the future
pushes the job at once, as ``enqueue_at`` in the past does in Ruby.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

from .. import defaults
from ..exceptions import InvalidPayload, PyresqueError
from ..store.scheduler_store import SchedulerStore
from ..wire import payload as wire
from ..wire import untrusted
from .moving import move_due as move_due  # part of this module's API: schedule, list, remove, move
from .moving import refreshed, side_list, side_payload

if TYPE_CHECKING:
    from ..queue import Resque


class InvalidDelay(PyresqueError, ValueError):
    """A delay or a time that cannot be used: negative, not a number, infinite."""


def store_for(resque: Resque) -> SchedulerStore:
    return SchedulerStore(resque.redis, resque.keys)


# -- scheduling -------------------------------------------------------------------------------
def enqueue_at(
    resque: Resque,
    when: float,
    queue: str,
    job_class: str,
    *args: Any,
    track: bool = True,
    job_id: str | None = None,
    status_prefix: str = "",
    shape: str = "php",
) -> str | None:
    """Push a job at ``when`` (unix time); returns its id (``None`` for ``shape="ruby"``).

    A time not in the future enqueues at once (Ruby's rule). A tracked job's status is WAITING
    from now on and its id is the one the worker will see.
    """
    when = _check_time(when)
    if when <= time.time():
        return resque.enqueue(queue, job_class, *args, track=track, job_id=job_id,
                              status_prefix=status_prefix, shape=shape)
    wire.validate_queue_name(queue)
    if shape not in ("php", "ruby"):
        raise ValueError(f"shape must be 'php' or 'ruby', not {shape!r}")
    now = time.time()
    if shape == "ruby":
        payload = wire.build_payload(job_class, args, None)
        _delay(resque, when, queue, payload, None, None)
        return None
    job_id = job_id or wire.new_job_id()
    payload = wire.build_payload(job_class, args, job_id, status_prefix, now)
    status_key = packet = None
    if track:
        status_key = resque.keys.status(job_id, status_prefix)
        packet = wire.encode_status(wire.WAITING, int(now), int(now))
    _delay(resque, when, queue, payload, status_key, packet)
    return job_id


def enqueue_in(resque: Resque, seconds: float, queue: str, job_class: str, *args: Any, **options: Any) -> str | None:
    """:func:`enqueue_at` ``seconds`` from now; a negative or non-finite delay is refused."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidDelay(f"delay must be a number of seconds, not {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidDelay(f"delay must be a finite number of seconds >= 0, not {seconds!r}")
    return enqueue_at(resque, time.time() + seconds, queue, job_class, *args, **options)


def delay_payload(resque: Resque, when: float, queue: str, payload: dict[str, Any]) -> None:
    """Schedule an already-built payload: at ``when`` it is pushed to ``queue`` as it is.

    For retries. The payload (php-resque's shape with ``id``/``prefix``/``queue_time``, or
    Ruby's ``{"class","args"}``) keeps its id and prefix; ``queue_time`` is refreshed when it is
    pushed. Its status key is never touched: it stays what the caller set. A time not in the
    future pushes it at once.
    """
    when = _check_time(when)
    wire.validate_queue_name(queue)
    if not isinstance(payload, dict) or not isinstance(payload.get("class"), str) or not payload["class"]:
        raise InvalidPayload(f"payload has no 'class' string: {payload!r}")
    if not isinstance(payload.get("args", []), list):
        raise InvalidPayload(f"payload 'args' is not a list: {payload.get('args')!r}")
    if when <= time.time():
        resque.store.push(queue, wire.encode_payload(refreshed(payload)))
        return
    _delay(resque, when, queue, dict(payload), None, None)


def _delay(resque: Resque, when: float, queue: str, payload: dict[str, Any], status_key: str | None,
           packet: str | None) -> None:
    ts = bucket_for(when)
    item = encode_item(payload["class"], payload.get("args") or [], queue)
    element = None
    if set(payload) - {"class", "args"}:  # an id, or anything else the item cannot carry (attempt, ...)
        element = json.dumps(wire.encode_payload(payload), ensure_ascii=True)
    store_for(resque).delay(ts, item, element, status_key, packet, ts + defaults.DELAYED_PAYLOADS_GRACE)


def bucket_for(when: float) -> int:
    """The bucket of a job due at ``when``: the next whole second, so it never runs early."""
    return int(math.ceil(when))


def encode_item(job_class: str, args: list[Any], queue: str | None) -> str:
    """resque-scheduler's delayed item, byte for byte as Ruby encodes it."""
    try:
        text = wire.encode_ruby({"class": job_class, "args": list(args), "queue": queue})
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidPayload(f"job arguments are not JSON-serialisable: {exc}") from None
    if untrusted.has_lone_surrogate(text):
        raise InvalidPayload("job class or arguments hold a lone UTF-16 surrogate, which UTF-8 cannot carry")
    return text


def _check_time(when: Any) -> float:
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise InvalidDelay(f"time must be a unix timestamp (seconds), not {when!r}")
    if not math.isfinite(when):
        raise InvalidDelay(f"time must be finite, not {when!r}")
    return float(when)


# -- inspecting and removing ------------------------------------------------------------------
@dataclass(frozen=True)
class DelayedJob:
    """One delayed item: its bucket, exact bytes, decoded item and (if it has one) full payload."""

    timestamp: int
    raw: bytes
    item: dict[str, Any] | None
    payload: dict[str, Any] | None = None
    error: str | None = None
    #: The side hash entry the payload was read from (exact text), for removal.
    entry: str | None = field(default=None, compare=False, repr=False)
    #: The zset member naming the bucket, exactly as read (normally ``str(timestamp)``).
    member: bytes = field(default=b"", compare=False, repr=False)

    @property
    def bucket(self) -> bytes:
        return self.member or str(self.timestamp).encode()

    @property
    def job_class(self) -> str | None:
        return self.item.get("class") if self.item else None

    @property
    def queue(self) -> str | None:
        return self.item.get("queue") if self.item else None

    @property
    def args(self) -> list[Any] | None:
        return self.item.get("args") if self.item else None

    @property
    def job_id(self) -> str | None:
        value = self.payload.get("id") if self.payload else None
        return value if isinstance(value, str) else None


def iter_delayed(resque: Resque, until: float | None = None) -> Iterator[DelayedJob]:
    """Every delayed item, earliest first; copies of one tracked item get its ids in order.

    What cannot be read is a row of its own with ``item=None`` and the reason in ``error``: an
    item that is not a job, and a key of the wrong type (``raw=b""``), so one bad bucket never
    hides the others.
    """
    store = store_for(resque)
    members = store.timestamps()
    yield from _broken_rows(store, 0, b"")
    for member in members:
        ts = _timestamp(member)
        if until is not None and ts > until:
            return
        side = {raw: side_list(value) for raw, value in store.side_payloads(member).items()}
        items = store.bucket(member)
        yield from _broken_rows(store, ts, member)
        used: dict[bytes, int] = {}
        for raw in items or ():
            yield _delayed_job(ts, member, raw, side, used)


def _broken_rows(store: SchedulerStore, ts: int, member: bytes) -> Iterator[DelayedJob]:
    for problem in store.take_problems():
        yield DelayedJob(ts, b"", None, None, problem, member=member)


def _delayed_job(ts: int, member: bytes, raw: bytes, side: dict[bytes, list[str]], used: dict[bytes, int]) -> DelayedJob:
    try:
        item = wire.decode_payload(raw)
    except InvalidPayload as exc:
        return DelayedJob(ts, raw, None, None, str(exc), member=member)
    index = used.get(raw, 0)
    if index < len(side.get(raw, [])):
        used[raw] = index + 1
        entry = side[raw][index]
        try:
            payload: dict[str, Any] | None = side_payload(entry)
        except InvalidPayload as exc:
            return DelayedJob(ts, raw, item, None, str(exc), entry=entry, member=member)
        return DelayedJob(ts, raw, item, payload, entry=entry, member=member)
    return DelayedJob(ts, raw, item, member=member)


class DelayedCount(NamedTuple):
    """resque-scheduler's ``delayed_queue_schedule_size`` and ``count_all_scheduled_jobs``, and what
    could not be counted (keys of the wrong type, one line each)."""

    timestamps: int
    jobs: int
    broken: list[str]


def count_delayed(resque: Resque) -> DelayedCount:
    store = store_for(resque)
    members = store.timestamps()
    sizes = store.bucket_sizes(members)
    broken = store.take_problems()
    broken += [f"{_text(resque.keys.delayed(m))} is a {store.key_type(resque.keys.delayed(m))}, not a list: not counted"
               for m, size in zip(members, sizes) if size is None]
    return DelayedCount(len(members), sum(size for size in sizes if size is not None), broken)


def remove_delayed(resque: Resque, job_class: str | None = None, args: list[Any] | None = None,
                   job_id: str | None = None, queue: str | None = None) -> int:
    """Remove matching delayed jobs; returns how many. Matching compares decoded JSON, so php's
    and Ruby's encodings of one job both match. A removed tracked job's status key is deleted."""
    if job_class is None and args is None and job_id is None:
        raise ValueError("give a class, class and args, or a job id to match")
    wanted = None if args is None else json.loads(json.dumps(list(args)))
    store = store_for(resque)
    removed = 0
    for _ in range(defaults.MOVE_ATTEMPTS):
        retry = False
        for job in list(iter_delayed(resque)):
            if job.item is None:
                continue
            if job_class is not None and job.job_class != job_class:
                continue
            if wanted is not None and job.args != wanted:
                continue
            if queue is not None and job.queue != queue:
                continue
            if job_id is not None and job.job_id != job_id:
                continue
            if _remove_one(resque, store, job):
                removed += 1
            else:
                retry = True
        if not retry:
            break
    return removed


def _remove_one(resque: Resque, store: SchedulerStore, job: DelayedJob) -> bool:
    side = store.side_payloads(job.bucket).get(job.raw)
    if job.entry is None or side is None:
        return store.remove_item(job.bucket, job.raw, None, "", None)
    rest = side_list(side)
    if job.entry not in rest:
        return False  # moved or removed meanwhile
    rest.remove(job.entry)
    status_key = None
    if job.payload is not None and job.job_id is not None:
        prefix = job.payload.get("prefix")
        status_key = resque.keys.status(job.job_id, prefix if isinstance(prefix, str) else "")
    return store.remove_item(job.bucket, job.raw, side, json.dumps(rest) if rest else "", status_key)


def _timestamp(member: bytes) -> int:
    """A member's second; 0 for one that is no time (resque-scheduler's are plain integers)."""
    try:
        return int(float(_text(member)))
    except (ValueError, OverflowError):
        return 0


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
