"""The only place Redis key names are spelled.

Every key Resque, php-resque and resque-scheduler share is built here, with the namespace
applied as both of them apply it: ``PREFIX=myapp`` and ``PREFIX=myapp:`` both give ``myapp:``,
and an empty prefix gives bare keys (php-resque's ``Resque_Redis::prefix``).
"""

from __future__ import annotations

from typing import overload

from .. import defaults

#: The prefix of keys only pyresque uses. Not ``pyresque:``: resque-web strips ``resque:`` from key
#: names a second time after the namespace, and listed ``resque:pyresque:delayed:<ts>`` as a
#: key of type none (see ``prune_horizons`` too).
OWN = "pyresque_"

#: Upper bounds (milliseconds, inclusive) of the execution-time histogram that workers record
#: per job class: hash field ``<class>|b<i>`` counts the runs that took more than bound ``i - 1``
#: and at most bound ``i``; ``b<len(METRIC_BUCKETS_MS)>`` counts the longer ones (``+Inf``).
#: Fixed: a reader sums fields written by workers of any version, so changing them mixes scales.
METRIC_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)

#: Seconds a per-minute metrics hash is kept (Sidekiq's Metrics keep 8 hours too).
METRICS_RETENTION = 8 * 3600

#: The fields of a metrics hash, per job class: ``<class>|p`` runs, ``<class>|f`` failed runs,
#: ``<class>|us`` their total microseconds (an integer: HINCRBYFLOAT costs Redis 4x HINCRBY),
#: ``<class>|b<i>`` the histogram's buckets.
METRIC_PROCESSED, METRIC_FAILED, METRIC_MICROS, METRIC_BUCKET = "p", "f", "us", "b"


def metric_field(job_class: str, kind: str) -> str:
    """A metrics hash field: ``<class>|<kind>`` (a class name may hold ``|``: split on the last)."""
    return f"{job_class}|{kind}"


def split_metric_field(field: str) -> tuple[str, str] | None:
    """Invert :func:`metric_field`; ``None`` for a field no worker writes."""
    job_class, bar, kind = field.rpartition("|")
    return (job_class, kind) if bar and job_class else None


def normalise_namespace(prefix: str | None) -> str:
    """Return the physical key prefix for a configured namespace."""
    if prefix is None:
        prefix = defaults.NAMESPACE
    if prefix == "" or prefix.endswith(":"):
        return prefix
    return prefix + ":"


class Keys:
    """Key names under one namespace (``resque:`` unless configured otherwise)."""

    __slots__ = ("ns",)

    def __init__(self, prefix: str | None = None) -> None:
        self.ns = normalise_namespace(prefix)

    def __repr__(self) -> str:
        return f"Keys({self.ns!r})"

    # -- queues -----------------------------------------------------------------------------
    @property
    def queues(self) -> str:
        """Set of known queue names (never pruned when a queue empties, as in Resque)."""
        return self.ns + "queues"

    def queue(self, name: str) -> str:
        return f"{self.ns}queue:{name}"

    def queue_name_from_key(self, key: str) -> str:
        """Invert :meth:`queue` (BLPOP answers with the physical key)."""
        return key[len(self.ns) + len("queue:"):]

    # -- php-resque job status ---------------------------------------------------------------
    def status(self, job_id: str, status_prefix: str = "") -> str:
        """php-resque's ``job:<id>:status``; ``job:<prefix>_<id>:status`` when the payload has one."""
        if status_prefix:
            return f"{self.ns}job:{status_prefix}_{job_id}:status"
        return f"{self.ns}job:{job_id}:status"

    def job_failure(self, job_id: str, status_prefix: str = "") -> str:
        """pyresque's side key beside a FAILED status: ``{"exception","error","failed_at","queue",
        "worker","updated"}`` of that failure, expiring with the status, so ``status`` can say why
        without scanning the failed list. php-resque's packet itself stays as php-resque writes it."""
        return self.job_failure_of(self.status(job_id, status_prefix))

    def job_failure_of(self, status_key: str) -> str:
        """:meth:`job_failure` for a status key (``job:<prefix>_<id>:status`` -> ``…failure:<prefix>_<id>``)."""
        head, tail = f"{self.ns}job:", ":status"
        if not (status_key.startswith(head) and status_key.endswith(tail)):
            raise ValueError(f"not a status key of namespace {self.ns!r}: {status_key!r}")
        return f"{self.ns}{OWN}failure:{status_key[len(head):-len(tail)]}"

    def job_pid(self, job_id: str) -> str:
        """php-resque v1.3.6's ``job:<id>:pid`` (we clean it up; we never need to write it)."""
        return f"{self.ns}job:{job_id}:pid"

    # -- workers -----------------------------------------------------------------------------
    @property
    def workers(self) -> str:
        return self.ns + "workers"

    def worker(self, worker_id: str) -> str:
        """The working-on record, present only while the worker runs a job."""
        return f"{self.ns}worker:{worker_id}"

    def worker_started(self, worker_id: str) -> str:
        return f"{self.ns}worker:{worker_id}:started"

    @property
    def heartbeats(self) -> str:
        """Ruby's ``workers:heartbeat`` hash: worker id -> ISO-8601 of Redis ``TIME``."""
        return self.ns + "workers:heartbeat"

    @property
    def prune_horizons(self) -> str:
        """pyresque's hash: worker id -> seconds without a heartbeat after which it is dead (its
        own prune interval), so a neighbour pruning sooner never takes a slower beater for dead.
        Named without ``resque:`` inside it, which resque-web would strip a second time."""
        return f"{self.ns}{OWN}prune_horizons"

    @property
    def reservations(self) -> str:
        """pyresque's hash: worker id -> JSON list of the queues it waits on, each with a BLMOVE
        into its own :meth:`reserved` list, so that a prune can put back what a killed waiter held."""
        return f"{self.ns}{OWN}reservations"

    def reserved(self, worker_id: str, queue: str) -> str:
        """Where a waiting worker's BLMOVE parks a job that arrived on ``queue`` until the worker's
        reserve takes it, milliseconds later (:mod:`pyresque.store.waiting`)."""
        return f"{self.ns}{OWN}reserved:{worker_id}:{queue}"

    @property
    def prune_lock(self) -> str:
        return self.ns + "pruning_dead_workers_in_progress"

    @property
    def pause_all(self) -> str:
        """Ruby's ``pause-all-workers`` flag (``"true"`` pauses every worker)."""
        return self.ns + "pause-all-workers"

    # -- stats and failures ------------------------------------------------------------------
    def metrics_minute(self, minute: int) -> str:
        """pyresque's hash of one minute's per-class metrics (fields: :func:`metric_field`), named
        by the epoch second the minute starts at; it expires :data:`METRICS_RETENTION` later."""
        return f"{self.ns}{OWN}metrics:{minute - minute % 60}"

    @property
    def metrics_total(self) -> str:
        """pyresque's hash of the same fields summed since the first job: counters that never go
        down as minutes expire (what Prometheus' counters and histograms need)."""
        return f"{self.ns}{OWN}metrics_total"

    def stat(self, name: str) -> str:
        return f"{self.ns}stat:{name}"

    def worker_stat(self, name: str, worker_id: str) -> str:
        return f"{self.ns}stat:{name}:{worker_id}"

    @property
    def failed(self) -> str:
        return self.ns + "failed"

    # -- resque-scheduler --------------------------------------------------------------------
    @property
    def delayed_schedule(self) -> str:
        """Zset of due times: member = score = the integer epoch second, as a string."""
        return self.ns + "delayed_queue_schedule"

    @overload
    def delayed(self, timestamp: int | str) -> str: ...
    @overload
    def delayed(self, timestamp: bytes) -> bytes: ...

    def delayed(self, timestamp: int | str | bytes) -> str | bytes:
        """List of ``{"class","args","queue"}`` items due at ``timestamp`` (RPUSH order).

        Given a zset member as read (bytes), the key is built from those exact bytes: a member
        that is not UTF-8 still names its own bucket, not a look-alike."""
        return self._under("delayed:", timestamp)

    def delayed_member(self, timestamp: int | str) -> str:
        """The member resque-scheduler stores in ``timestamps:<json>`` sets (no namespace)."""
        return f"delayed:{timestamp}"

    @overload
    def delayed_payloads(self, timestamp: int | str) -> str: ...
    @overload
    def delayed_payloads(self, timestamp: bytes) -> bytes: ...

    def delayed_payloads(self, timestamp: int | str | bytes) -> str | bytes:
        """pyresque's side hash for the bucket ``delayed:<ts>``: exact item bytes -> JSON list of the
        full payloads (with ``id``) to push for the copies of that item, oldest first.

        Not under ``delayed:`` on purpose: php-resque's ``removeDelayed`` runs ``LREM`` on every
        ``delayed:*`` key and would fail with WRONGTYPE on a hash there.
        """
        return self._under(f"{OWN}delayed:", timestamp)

    @property
    def last_enqueued_at(self) -> str:
        """Hash schedule name -> Ruby ``Time#to_s`` of its last recurring enqueue."""
        return self.ns + "delayed:last_enqueued_at"

    @property
    def persistent_schedules(self) -> str:
        """Hash schedule name -> JSON config (``class``, ``queue``, ``cron``/``every``, ``args``)."""
        return self.ns + "persistent_schedules"

    @property
    def schedules_changed(self) -> str:
        """Set of schedule names changed since the master scheduler last reloaded them."""
        return self.ns + "schedules_changed"

    @property
    def scheduler_loaded(self) -> str:
        """pyresque's own: hash schedule name -> JSON (:func:`payload.encode_loaded_schedule`) of
        what the running master scheduler loaded, file and persisted. It expires with the master
        lock's TTL unless refreshed each pass, so a dead scheduler's copy goes away. Ruby's
        scheduler keeps its loaded schedules in memory only, and reads nothing here."""
        return self.ns + "pyresque_scheduler:loaded"

    @overload
    def timestamps(self, encoded_item: str) -> str: ...
    @overload
    def timestamps(self, encoded_item: bytes) -> bytes: ...

    def timestamps(self, encoded_item: str | bytes) -> str | bytes:
        """Set of ``delayed:<ts>`` members holding that exact item (bytes in, bytes out)."""
        return self._under("timestamps:", encoded_item)

    def _under(self, kind: str, tail: int | str | bytes) -> str | bytes:
        if isinstance(tail, bytes):
            return (self.ns + kind).encode() + tail
        return f"{self.ns}{kind}{tail}"

    @property
    def scheduler_lock(self) -> str:
        """resque-scheduler's master lock: the namespace really does appear twice."""
        return self.ns + "resque:resque_scheduler_master_lock"

    # -- pyresque's job policies (no Resque equivalent) -------------------------------------
    def unique_lock(self, digest: str) -> str:
        """Held from enqueue until the job's final outcome (or its TTL) for ``@unique`` classes."""
        return f"{self.ns}{OWN}unique:{digest}"

    def concurrency_slots(self, class_name: str) -> str:
        """Zset of running jobs of a ``@limit_concurrency`` class: member = worker id, score = lease end.
        ``class_name`` is the class's canonical name (``jobs.resolver.canonical_name``), never a
        payload's, which may be any of its aliases."""
        return f"{self.ns}{OWN}concurrency:{class_name}"

    # -- pyresque web (no Resque equivalent) -----------------------------------------------
    def idempotency(self, key_digest: str) -> str:
        """What ``pyresque web`` answered to a request sent with this ``Idempotency-Key``
        (``key_digest``: the SHA-256 hex of the header), so that a retried request enqueues once."""
        return f"{self.ns}{OWN}idempotency:{key_digest}"
