"""Producer API: enqueue jobs, read their status, and inspect or trim queues.

Two job shapes, both natural::

    r = Resque()                                    # REDIS_URL / REDIS_BACKEND / PREFIX
    r.enqueue("default", "PHP_Job", {"name": "x"})  # php-resque: one dict -> $this->args
    r.enqueue("default", "SomeJob", 1, "two")       # Ruby: perform(1, "two")

Every payload carries php-resque's ``id``/``prefix``/``queue_time`` (Ruby ignores them) unless
``shape="ruby"`` asks for Ruby's bare ``{"class","args"}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import redis

from . import defaults
from .exceptions import DontCreate, InvalidPayload, InvalidStatus, JobFailed, UnknownJob, WaitTimeout
from .jobs import hooks, policies
from .jobs.resolver import lookup
from .store.connection import RedisSettings
from .store.datastore import DataStore
from .wire import payload as wire
from .wire.keys import Keys

#: How many of the newest failure records ``status`` searches for a failed job's record when no
#: pyresque worker left its summary (a php-resque or Ruby worker failed it).
FAILURE_SEARCH = 1000

#: ``wait``'s polling: first pause, and the longest (the pause doubles in between).
WAIT_POLL_START = 0.005
WAIT_POLL_CAP = 0.25


@dataclass(frozen=True)
class QueuedJob:
    """One item of a queue, decoded when possible."""

    index: int
    raw: bytes
    payload: dict[str, Any] | None
    error: str | None = None

    @property
    def job_class(self) -> str | None:
        return self.payload.get("class") if self.payload else None

    @property
    def job_id(self) -> str | None:
        value = self.payload.get("id") if self.payload else None
        return value if isinstance(value, str) else None


class Resque:
    """A handle on one Resque keyspace: the entry point of the Python API."""

    def __init__(
        self,
        redis_url: str | None = None,
        prefix: str | None = None,
        *,
        settings: RedisSettings | None = None,
        client: redis.Redis | None = None,
        status_ttl: int = defaults.STATUS_TTL,
    ) -> None:
        self.settings = settings or RedisSettings.from_env(redis_url=redis_url, prefix=prefix)
        self.redis = client if client is not None else self.settings.client()
        self.keys = Keys(self.settings.prefix)
        self.store = DataStore(self.redis, self.keys, status_ttl)
        self.before_enqueue: list[Callable[[str, str, list[Any], str | None], Any]] = []
        self.after_enqueue: list[Callable[[str, str, list[Any], str | None], Any]] = []

    def __repr__(self) -> str:
        return f"Resque({self.settings.display_url!r}, prefix={self.keys.ns!r})"

    @property
    def status_ttl(self) -> int:
        """Seconds a FAILED/COMPLETE status packet lives (php-resque: 86400)."""
        return self.store.final_status_ttl

    @status_ttl.setter
    def status_ttl(self, seconds: int) -> None:
        self.store.final_status_ttl = seconds

    # -- enqueue -----------------------------------------------------------------------------
    def enqueue(
        self,
        queue: str,
        job_class: str,
        *args: Any,
        track: bool = True,
        job_id: str | None = None,
        status_prefix: str = "",
        shape: str = "php",
    ) -> str | None:
        """Push one job; returns its id (``None`` for ``shape="ruby"`` or a cancelled enqueue).

        Order: the ``beforeEnqueue`` event (php-resque; :class:`DontCreate` cancels), this
        instance's ``before_enqueue`` listeners and the job class's ``before_enqueue*`` hooks
        (Ruby; returning ``False`` cancels), the push, then ``after_enqueue*`` hooks, this
        instance's ``after_enqueue`` listeners and the ``afterEnqueue`` event. Class hooks are
        found only on registered classes: enqueuing never imports anything. A hook that raises
        propagates to the caller and nothing is pushed (as in both Ruby and php-resque).
        """
        wire.validate_queue_name(queue)
        item, job_id, status_key, packet = self._prepare(job_class, args, track, job_id, status_prefix, shape)
        arg_list = list(args)
        target = lookup(job_class)
        try:
            hooks.trigger("beforeEnqueue", job_class, arg_list, queue, job_id)
        except DontCreate:
            return None
        for listener in self.before_enqueue:
            if listener(queue, job_class, arg_list, job_id) is False:
                return None
        if target is not None:
            for hook in hooks.class_hooks(target, "before_enqueue"):
                if hook(*arg_list) is False:
                    return None
        digest = policies.unique_digest(target, arg_list) if target is not None else None
        if digest is None or target is None:
            self.store.push(queue, item, status_key, packet)
        elif not self.store.push_unique(self.keys.unique_lock(digest), target.unique_ttl, queue, item,
                                        status_key, packet):
            return None  # an identical job is queued or running
        if target is not None:
            for hook in hooks.class_hooks(target, "after_enqueue"):
                hook(*arg_list)
        for listener in self.after_enqueue:
            listener(queue, job_class, arg_list, job_id)
        hooks.trigger("afterEnqueue", job_class, arg_list, queue, job_id)
        return job_id

    def enqueue_many(
        self,
        queue: str,
        job_class: str,
        args_list: Iterable[Sequence[Any]],
        *,
        track: bool = True,
        shape: str = "php",
    ) -> list[str | None]:
        """Push many jobs of one class in pipelines; returns their ids in order."""
        wire.validate_queue_name(queue)
        prepared = [self._prepare(job_class, args, track, None, "", shape) for args in args_list]
        self.store.push_many(queue, [(item, key, packet) for item, _, key, packet in prepared])
        return [job_id for _, job_id, _, _ in prepared]

    def _prepare(
        self, job_class: str, args: Sequence[Any], track: bool, job_id: str | None, status_prefix: str, shape: str
    ) -> tuple[str, str | None, str | None, str | None]:
        if shape not in ("php", "ruby"):
            raise ValueError(f"shape must be 'php' or 'ruby', not {shape!r}")
        if shape == "ruby":
            return wire.encode_payload(wire.build_payload(job_class, args, None)), None, None, None
        now = time.time()
        job_id = job_id or wire.new_job_id()
        item = wire.encode_payload(wire.build_payload(job_class, args, job_id, status_prefix, now))
        if not track:
            return item, job_id, None, None
        return item, job_id, self.keys.status(job_id, status_prefix), wire.encode_status(wire.WAITING, int(now), int(now))

    # -- status ------------------------------------------------------------------------------
    def status(self, job_id: str, status_prefix: str = "") -> wire.StatusPacket | None:
        """The job's status packet, or ``None`` when it is not tracked (or has expired).

        A FAILED packet comes with ``error`` (:class:`~pyresque.wire.payload.JobError`: exception
        class and message), from the summary a pyresque worker writes beside the status, else from
        the newest of the last :data:`FAILURE_SEARCH` failure records with this id (php/Ruby
        workers); ``None`` when neither has it. Raises :class:`InvalidStatus` when the key holds
        something that is not a packet.
        """
        raw, summary = self.store.get_status_and_failure(self.keys.status(job_id, status_prefix))
        if raw is None:
            return None
        packet = wire.decode_status(raw)
        if packet.status != wire.FAILED:
            return packet
        error = wire.decode_failure_summary(summary, packet.updated) or self._failure_in_list(job_id, status_prefix)
        return packet._replace(error=error)

    def _failure_in_list(self, job_id: str, status_prefix: str) -> wire.JobError | None:
        """The newest failure record of that job among the last ``FAILURE_SEARCH``; bytes that do
        not even contain the id are not decoded, so the search costs little beyond the reads."""
        needle = job_id.encode("utf-8", "surrogateescape")
        for raw in self.store.recent_failures(FAILURE_SEARCH):
            if needle in raw:
                record = wire.decode_failure(raw)
                if record is not None and wire.failure_of_job(record, job_id, status_prefix):
                    return wire.job_error(record)
        return None

    def wait(self, job_id: str, timeout: float | None = None, status_prefix: str = "") -> Any:
        """Block until the job is final; return its result (COMPLETE), else raise.

        Raises :class:`~pyresque.JobFailed` (its exception class and message) when it failed,
        :class:`~pyresque.WaitTimeout` (a :class:`TimeoutError`) after ``timeout`` seconds
        (``None``: wait as long as it takes), and :class:`~pyresque.UnknownJob` when the id has
        no status (not tracked, or expired). Polls the status key, from every 5 ms up to every
        250 ms: a quick job answers quickly, a slow one costs a few commands a second.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        pause = WAIT_POLL_START
        while True:
            packet = self.status(job_id, status_prefix)
            if packet is None:
                raise UnknownJob(job_id)
            if packet.status == wire.COMPLETE:
                return packet.result
            if packet.status == wire.FAILED:
                error = packet.error
                raise JobFailed(job_id, error.exception if error else None, error.message if error else None)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(job_id, timeout or 0.0, packet.name)
                pause = min(pause, left)
            time.sleep(pause)
            pause = min(pause * 2, WAIT_POLL_CAP)

    def update_status(self, job_id: str, status: int, result: Any = None, status_prefix: str = "") -> bool:
        """Set a tracked job's status (php's rule: only when the key exists); keeps ``started``."""
        key = self.keys.status(job_id, status_prefix)
        try:
            raw = self.store.get_status(key)
            current = wire.decode_status(raw) if raw is not None else None
        except InvalidStatus:
            current = None
        now = int(time.time())
        started = current.started if current and current.started is not None else now
        ttl = self.status_ttl if status in wire.FINAL_STATUSES else None
        return self.store.update_status(key, wire.encode_status(status, now, started, result), ttl)

    # -- inspection and maintenance ----------------------------------------------------------
    def queues(self) -> dict[str, int]:
        """Known queue names with their sizes, sorted by name."""
        return self.store.queue_sizes(self.store.queue_names())

    def size(self, queue: str) -> int:
        return self.store.queue_size(wire.validate_queue_name(queue))

    def peek(self, queue: str, start: int = 0, count: int = 10) -> list[QueuedJob]:
        wire.validate_queue_name(queue)
        return [_queued(start + i, raw) for i, raw in enumerate(self.store.peek(queue, start, count))]

    def remove(
        self,
        queue: str,
        job_class: str | None = None,
        args: Sequence[Any] | None = None,
        job_id: str | None = None,
    ) -> int:
        """Remove matching jobs from a queue; returns how many were removed.

        Matching compares decoded JSON, so a job written by php-resque (``\\/``, ``\\u00e9``)
        matches the same job written by Ruby. Each match is removed with an exact ``LREM``, so
        the queue never looks empty to workers meanwhile and a job a worker already took is
        simply not counted.
        """
        wire.validate_queue_name(queue)
        if job_class is None and args is None and job_id is None:
            raise ValueError("give a class, class and args, or a job id to match")
        target = lookup(job_class) if job_class is not None else None
        dequeue_hooks = target is not None and args is not None
        hook_args = list(args or ())
        if dequeue_hooks:  # Ruby runs them for Resque.dequeue(klass, *args); False aborts
            for hook in hooks.class_hooks(target, "before_dequeue"):
                if hook(*hook_args) is False:
                    return 0
        wanted_args = None if args is None else json.loads(json.dumps(list(args)))
        matches = []
        for raw in self.store.iter_queue(queue):
            try:
                job = wire.decode_payload(raw)
            except InvalidPayload:
                continue
            if job_class is not None and job["class"] != job_class:
                continue
            if job_id is not None and job.get("id") != job_id:
                continue
            if wanted_args is not None and job["args"] != wanted_args:
                continue
            matches.append(raw)
        removed = sum(self.store.remove_item(queue, raw) for raw in matches)
        if dequeue_hooks:
            for hook in hooks.class_hooks(target, "after_dequeue"):
                hook(*hook_args)
        return removed

    def delete_queue(self, queue: str) -> int:
        """Drop a queue and its jobs; returns how many jobs it held."""
        return self.store.delete_queue(wire.validate_queue_name(queue))

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    def ping(self) -> bool:
        return bool(self.redis.ping())


def _queued(index: int, raw: bytes) -> QueuedJob:
    try:
        return QueuedJob(index, raw, wire.decode_payload(raw))
    except InvalidPayload as exc:
        return QueuedJob(index, raw, None, str(exc))
