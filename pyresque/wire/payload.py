"""Every JSON document on the wire, and the time formats inside them.

Writers produce the exact bytes the vectors in ``shared/compat`` show: php-resque v1.3.6's job
payload (``class, args, id, prefix, queue_time`` in that order, ``json_encode`` escaping) and
Ruby Resque's worker keys and failure records. Readers accept every shape the vectors contain:
Ruby payloads without ``id``, chrisboulton payloads without ``prefix``, ``"args":[null]``,
``\\/`` and ``\\uXXXX`` escapes, and status packets without ``started``/``result``.

Where php-resque and Ruby differ, pyresque writes Ruby's format for the worker keys and failure
records, because resque-web (a Ruby program) is their only reader and php-resque never parses
them; and php-resque's format for job payloads and status packets, because php-resque's status
API is their main consumer and Ruby ignores the extra keys.
"""

from __future__ import annotations

import binascii
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple, Sequence

from ..exceptions import InvalidPayload, InvalidQueueName, InvalidStatus
from . import untrusted

# -- status codes (php-resque's Resque_Job_Status constants) ---------------------------------
WAITING = 1
RUNNING = 2
FAILED = 3
COMPLETE = 4
STATUS_NAMES = {WAITING: "waiting", RUNNING: "running", FAILED: "failed", COMPLETE: "complete"}
FINAL_STATUSES = (FAILED, COMPLETE)

_COMPACT = (",", ":")
# Built once: json.dumps with non-default options builds a new encoder on every call.
_PHP_ENCODER = json.JSONEncoder(separators=_COMPACT, ensure_ascii=True, allow_nan=False)
_RUBY_ENCODER = json.JSONEncoder(separators=_COMPACT, ensure_ascii=False, allow_nan=False)


# -- JSON encoders ----------------------------------------------------------------------------
def encode_php(obj: Any) -> str:
    """Encode like PHP's ``json_encode``: compact, ``\\uXXXX`` for non-ASCII, ``/`` as ``\\/``.

    ``/`` only ever occurs inside JSON strings, so replacing it in the output is exact.
    """
    return _PHP_ENCODER.encode(obj).replace("/", "\\/")


def encode_ruby(obj: Any) -> str:
    """Encode like Ruby's JSON/MultiJson: compact, raw UTF-8, ``/`` unescaped."""
    return _RUBY_ENCODER.encode(obj)


def new_job_id() -> str:
    """A php-resque-shaped id: 32 lowercase hex characters."""
    return binascii.hexlify(os.urandom(16)).decode("ascii")


def validate_queue_name(name: Any) -> str:
    """Return ``name`` if Resque's key layout can carry it, else raise :class:`InvalidQueueName`."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidQueueName(f"invalid queue name {name!r}: it must be a non-empty string")
    if name != name.strip():
        raise InvalidQueueName(f"invalid queue name {name!r}: leading or trailing whitespace")
    if "," in name:
        raise InvalidQueueName(f"invalid queue name {name!r}: ',' separates queues in worker ids")
    if any(ord(ch) < 32 for ch in name):
        raise InvalidQueueName(f"invalid queue name {name!r}: control characters")
    return name


# -- job payload ------------------------------------------------------------------------------
def build_payload(
    job_class: str,
    args: Sequence[Any],
    job_id: str | None,
    status_prefix: str = "",
    queue_time: float | None = None,
) -> dict[str, Any]:
    """The php-resque v1.3.6 payload, keys in its order. ``job_id=None`` gives Ruby's shape."""
    if not isinstance(job_class, str) or not job_class:
        raise InvalidPayload(f"job class must be a non-empty string, got {job_class!r}")
    if job_id is None:
        return {"class": job_class, "args": list(args)}
    return {
        "class": job_class,
        "args": list(args),
        "id": job_id,
        "prefix": status_prefix,
        "queue_time": round(time.time() if queue_time is None else queue_time, 6),
    }


def encode_payload(payload: dict[str, Any]) -> str:
    try:
        text = encode_php(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidPayload(f"job arguments are not JSON-serialisable: {exc}") from None
    if untrusted.has_lone_surrogate(text):  # a worker would refuse it: refuse it here, at once
        raise InvalidPayload("job class or arguments hold a lone UTF-16 surrogate, which UTF-8 cannot carry")
    return text


def decode_payload(raw: bytes | str) -> dict[str, Any]:
    """Parse a queue item, raising :class:`InvalidPayload` with the precise reason."""
    payload = untrusted.loads(raw, "payload")
    if not isinstance(payload, dict):
        raise InvalidPayload(f"payload is a JSON {type(payload).__name__}, not an object")
    job_class = payload.get("class")
    if not isinstance(job_class, str) or not job_class:
        raise InvalidPayload("payload has no 'class' string")
    if job_class == UNREADABLE_JOB:
        raise InvalidPayload("an unreadable item retried from the failed list: it cannot run "
                             "(its original bytes are its first argument)")
    args = payload.get("args")
    if args is None:
        payload["args"] = []  # Ruby: missing or nil args become []
    elif not isinstance(args, list):
        raise InvalidPayload(f"payload 'args' is a JSON {type(args).__name__}, not a list")
    return payload


def raw_payload_record(raw: bytes | str) -> dict[str, Any]:
    """What a failure record keeps of an item that is not a payload: its exact content."""
    if isinstance(raw, str):
        return {"raw": raw}
    try:
        return {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw": raw.decode("utf-8", "backslashreplace"), "raw_base64": binascii.b2a_base64(raw, newline=False).decode()}


#: The job class in the failure record of an item that is not a runnable job. Ruby's requeue and
#: resque-web's Retry need a ``class`` and ``args``: they push ``{class: this, args: [raw]}``,
#: which a pyresque worker fails again with a clear reason instead of running anything.
UNREADABLE_JOB = "Pyresque::UnreadableItem"


def readable_payload(item: bytes | str, reason: str = "") -> dict[str, Any]:
    """What a failure record keeps of an item a worker could not run: its raw content, why, and
    its php-resque ``id``/``prefix`` when they can be read (so its status is finalised too)."""
    record: dict[str, Any] = {"class": UNREADABLE_JOB, "args": [], **raw_payload_record(item)}
    record["args"] = [record["raw"]]
    if reason:
        record["reason"] = untrusted.encodable(reason)
    doc = untrusted.lenient_loads(item)  # the strict reader refused it; Redis' cjson may not have
    if isinstance(doc, dict):
        for key, into in (("class", "item_class"), ("id", "id"), ("prefix", "prefix")):
            if isinstance(doc.get(key), str):
                record[into] = untrusted.encodable(doc[key])
    return record


def attempt_of(payload: dict[str, Any]) -> int:
    """Which run of the job this is (1 for the first); pyresque's ``attempt`` key."""
    value = payload.get("attempt")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def for_retry(
    payload: dict[str, Any], failed_attempt: int, exception: str, error: str, when: float | None = None
) -> dict[str, Any]:
    """The payload of the next run: ``attempt`` + 1 and the failure appended to ``retry_history``.

    Both keys come after php-resque's, which php-resque and Ruby ignore (Ruby's requeue drops them).
    """
    history = payload.get("retry_history")
    history = list(history) if isinstance(history, list) else []
    history.append({"attempt": failed_attempt, "failed_at": failed_at(when), "exception": exception, "error": error})
    nxt = {k: v for k, v in payload.items() if k not in ("attempt", "retry_history")}
    nxt["attempt"] = failed_attempt + 1
    nxt["retry_history"] = history
    return nxt


def php_args(args: list[Any]) -> Any:
    """What php-resque hands a job as ``$this->args``: the single argument, else the whole list."""
    if len(args) == 1:
        return args[0]
    return args


# -- status packet ----------------------------------------------------------------------------
class JobError(NamedTuple):
    """Why a job failed, from its failure record: ``str()`` gives ``Exception: message``."""

    exception: str
    message: str
    failed_at: str | None = None
    queue: str | None = None
    worker: str | None = None

    def __str__(self) -> str:
        return f"{self.exception}: {self.message}" if self.message else self.exception

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


class StatusPacket(NamedTuple):
    """php-resque's packet as read; ``error`` is not in the packet (php-resque's bytes stay
    php-resque's): :meth:`Resque.status <pyresque.Resque.status>` fills it for a FAILED job."""

    status: int
    updated: int | None
    started: int | None
    result: Any
    error: JobError | None = None

    @property
    def name(self) -> str:
        return STATUS_NAMES.get(self.status, f"unknown({self.status})")

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def encode_status(status: int, updated: int, started: int | None, result: Any = None) -> str:
    """php-resque v1.3.6's packet ``{"status","updated","started","result"}`` in that order."""
    return encode_status_json(status, updated, started, encode_result(result))


def encode_status_json(status: int, updated: int, started: int | None, result_json: str) -> str:
    """The same packet with the result already encoded (the child encodes it, the parent writes)."""
    return (
        f'{{"status":{int(status)},"updated":{int(updated)},'
        f'"started":{"null" if started is None else int(started)},"result":{result_json}}}'
    )


def encode_result(result: Any) -> str:
    """JSON for a ``perform()`` return value; anything JSON cannot carry is stored as its repr."""
    try:
        text = encode_php(result)
        return text if not untrusted.has_lone_surrogate(text) else encode_php(untrusted.encodable(result))
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(result)
        except Exception as exc:  # a broken __repr__ must not lose the status update
            text = f"<unrepresentable {type(result).__name__}: {type(exc).__name__}>"
        return encode_php({"unserialisable": type(result).__name__, "repr": text[:2000]})


def decode_status(raw: bytes | str) -> StatusPacket:
    try:
        data = untrusted.loads(raw, "status packet")
    except InvalidPayload as exc:
        raise InvalidStatus(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("status"), int) or isinstance(data.get("status"), bool):
        raise InvalidStatus(f"status packet has no integer 'status': {raw[:200]!r}")
    return StatusPacket(data["status"], _int_or_none(data.get("updated")), _int_or_none(data.get("started")), data.get("result"))


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None  # finite: loads


# -- worker ids -------------------------------------------------------------------------------
#: php-resque v1.3.6's DirtyExit message for a job killed by a signal (vectors s_signal_term)
DIRTY_EXIT_ABNORMAL = "Job exited abnormally"

#: marks a thread slot on a worker id's host part (``host@3:pid:q1,q2``)
SLOT_MARK = "@"


class WorkerId(NamedTuple):
    """``host:pid:q1,q2``, and for one slot of a threaded worker ``host@<slot>:pid:q1,q2``.

    Resque's ids are one per process; a threaded worker registers one id per slot. The slot
    rides on the host part: in the queue list (pyresque's first form, ``q1,q2,@3``, still read)
    resque-web showed it as a queue. php-resque and Ruby take ``host@3`` for another host, so
    they leave slots to the heartbeat rule (Ruby's expiry; each slot beats); pyresque reads the
    real host back and prunes the slots of a dead process by its pid at once.
    """

    host: str
    pid: int
    queues: tuple[str, ...]
    slot: int | None = None

    def __str__(self) -> str:
        host = self.host if self.slot is None else f"{self.host}{SLOT_MARK}{self.slot}"
        return f"{host}:{self.pid}:{','.join(self.queues)}"


def tagged_worker_id(worker_id: str) -> str:
    """The id with a random tag on its host part (``host+3f9a1c:pid:queues``), for a worker whose
    id a live worker already holds. php's and Ruby's prunes match the host before the pid, so they
    leave a tagged id to the heartbeat rule, as pyresque's does."""
    tag = os.urandom(3).hex()
    parsed = parse_worker_id(worker_id)
    if parsed is None:
        host, _, rest = worker_id.partition(":")
        return f"{host}+{tag}:{rest}"
    return str(parsed._replace(host=f"{parsed.host}+{tag}"))


def parse_worker_id(worker_id: str) -> WorkerId | None:
    """Split ``host:pid:q1,q2`` as Resque does (``split(':', 3)``); ``None`` if it is not one."""
    parts = worker_id.split(":", 2)
    pid = parts[1] if len(parts) == 3 else ""
    if not (pid.isascii() and pid.isdigit() and len(pid) <= 10):  # not '²', not 5,000 digits
        return None
    host, queues, slot = parts[0], parts[2].split(","), None
    base, mark, number = host.rpartition(SLOT_MARK)
    if mark and base and number.isascii() and number.isdigit() and len(number) <= 6:
        host, slot = base, int(number)
    last = queues[-1]
    if slot is None and len(queues) > 1 and last.startswith(SLOT_MARK) and last[1:].isdigit() and len(last) <= 7:
        slot = int(last[1:])  # the first form: a slot at the end of the queue list
        queues.pop()
    return WorkerId(host, int(parts[1]), tuple(queues), slot)


# -- counters ---------------------------------------------------------------------------------
_LEADING_INTEGER = re.compile(rb"\s*[-+]?[0-9]+")


def parse_counter(raw: bytes | str | None) -> int:
    """A ``stat:*`` value as Ruby's ``Resque::Stat`` reads it (``String#to_i``): the leading
    integer, else 0. Anyone can ``SET`` or ``INCRBYFLOAT`` them; ``1.5e3`` is 1, ``nan`` is 0."""
    if raw is None:
        return 0
    found = _LEADING_INTEGER.match(raw.encode("utf-8", "replace") if isinstance(raw, str) else raw)
    return int(found.group()) if found else 0


# -- times ------------------------------------------------------------------------------------
def _utc(t: float | None) -> datetime:
    return datetime.fromtimestamp(time.time() if t is None else t, tz=timezone.utc)


def ruby_time(t: float | None = None) -> str:
    """Ruby's ``Time#to_s`` in UTC, used for ``worker:<id>:started``: ``2026-11-22 04:39:03 +0000``."""
    return _utc(t).strftime("%Y-%m-%d %H:%M:%S +0000")


def iso_z(t: float | None = None) -> str:
    """``Time.now.utc.iso8601`` for ``run_at``: ``2026-11-22T04:39:10Z``."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(t: float | None = None) -> str:
    """``Time#iso8601`` with an offset, for heartbeats: ``2026-11-22T04:39:03+00:00``."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def failed_at(t: float | None = None) -> str:
    """Ruby's failure time ``%Y/%m/%d %H:%M:%S UTC``; resque-web and Ruby's requeue use it too."""
    return _utc(t).strftime("%Y/%m/%d %H:%M:%S UTC")


_TIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S %Z",  # Ruby failed_at / retried_at
    "%Y/%m/%d %H:%M:%S",  # RedisMultiQueue / resque-retry (no zone)
    "%Y-%m-%d %H:%M:%S %z",  # Ruby Time#to_s
    "%a %b %d %H:%M:%S %Z %Y",  # chrisboulton strftime
)


def parse_time(text: str) -> float | None:
    """Read any time format the vectors contain; ``None`` if it is none of them."""
    text = text.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    for fmt in _TIME_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return None


# -- worker records ---------------------------------------------------------------------------
def expected_working_on(queue: str, run_at: str, item: bytes) -> str:
    """The record the reserve script writes for a JSON item (it embeds the item's bytes)."""
    try:
        json.loads(item.decode("utf-8"))  # the reserve script's test (cjson): plain JSON, any depth
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""  # the script wrote it as a JSON string: let the retry guard fall back to existence
    return encode_working_on(queue, run_at, item.decode("utf-8"))


def encode_working_on(queue: str, run_at: str, raw_payload: str) -> str:
    """``worker:<id>`` = ``{"queue","run_at","payload"}`` with the payload's bytes kept as popped."""
    return f'{{"queue":{encode_ruby(queue)},"run_at":{encode_ruby(run_at)},"payload":{raw_payload}}}'


@dataclass
class WorkingOn:
    queue: str
    run_at: str
    payload: Any


def decode_working_on(raw: bytes | str) -> WorkingOn | None:
    """A worker's record of its job, or ``None`` when it is not one (a forged or broken value)."""
    try:
        data = untrusted.loads(raw, "working-on record")
    except InvalidPayload:
        return None
    if not isinstance(data, dict):
        return None
    queue, run_at = data.get("queue", ""), data.get("run_at", "")
    return WorkingOn(queue if isinstance(queue, str) else str(untrusted.encodable(queue)),
                     run_at if isinstance(run_at, str) else "", data.get("payload"))


@dataclass
class InFlight:
    """A dead (or stopping) worker's job as its record tells it, whatever the record holds."""

    queue: str
    payload: dict[str, Any]  # the job's payload, or :func:`readable_payload` of what was there
    readable: bool  # the payload is a job pyresque could have run (it may be requeued)


def in_flight(raw: bytes | str) -> InFlight:
    """The job in a ``worker:<id>`` record, for failing (or requeueing) it: never ``None``, so a
    record that is not readable is failed with its raw bytes instead of disappearing."""
    record = decode_working_on(raw)
    if record is not None and isinstance(record.payload, dict):
        return InFlight(record.queue, record.payload, True)
    if record is not None:  # the reserve script stores an item that is not JSON as a string
        item = record.payload if isinstance(record.payload, str) else encode_ruby(untrusted.encodable(record.payload))
        return InFlight(record.queue, readable_payload(item, "the job's payload is not a JSON object"), False)
    try:
        untrusted.loads(raw, "working-on record")
        reason = "the working-on record is not a JSON object"
    except InvalidPayload as exc:
        reason = str(exc)
    doc = untrusted.lenient_loads(raw)  # read what can be read: the queue, the job's id
    queue = doc.get("queue") if isinstance(doc, dict) else None
    inner = doc.get("payload") if isinstance(doc, dict) else None
    payload = readable_payload(raw, reason)
    if isinstance(inner, dict):
        payload.update({k: untrusted.encodable(v) for k, v in inner.items() if k in ("id", "prefix") and isinstance(v, str)})
        if isinstance(inner.get("class"), str):
            payload["item_class"] = untrusted.encodable(inner["class"])
    return InFlight(untrusted.encodable(queue) if isinstance(queue, str) else "", payload, False)


# -- failure records --------------------------------------------------------------------------
def build_failure(
    payload: Any,
    exception: str,
    error: str,
    backtrace: Sequence[str],
    worker: str,
    queue: str,
    when: float | None = None,
) -> dict[str, Any]:
    """Resque's failure record, keys in the order every implementation writes them."""
    return {
        "failed_at": failed_at(when),
        "payload": payload,
        "exception": exception,
        "error": error,
        "backtrace": [str(line) for line in backtrace],
        "worker": worker,
        "queue": queue,
    }


def encode_failure(record: dict[str, Any]) -> str:
    """Ruby's JSON of a failure record; what JSON or UTF-8 cannot carry is escaped, never dropped."""
    try:
        text = encode_ruby(record)
        text.encode("utf-8")
        return text
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        return encode_ruby(untrusted.encodable(record))


def job_error(record: dict[str, Any]) -> JobError:
    """The :class:`JobError` a failure record (any implementation's) tells of."""
    def text(name: str) -> str | None:
        value = record.get(name)
        return None if value is None else value if isinstance(value, str) else encode_ruby(untrusted.encodable(value))

    return JobError(text("exception") or "(no exception class recorded)", text("error") or "",
                    text("failed_at"), text("queue"), text("worker"))


def failure_of_job(record: dict[str, Any] | None, job_id: str, status_prefix: str = "") -> bool:
    """Whether a decoded failure record is that tracked job's (its payload's ``id`` and ``prefix``)."""
    payload = record.get("payload") if record else None
    if not isinstance(payload, dict) or payload.get("id") != job_id:
        return False
    prefix = payload.get("prefix")
    return (prefix if isinstance(prefix, str) else "") == status_prefix


def encode_failure_summary(failure_record: str, status_packet: str) -> str:
    """The side key's JSON for a failure record written with a FAILED status packet: the
    failure's words and the packet's ``updated``, which ties the two together; '' if either
    cannot be read (the reader then falls back to the failed list)."""
    try:
        record = json.loads(failure_record)
        updated = json.loads(status_packet).get("updated")
    except (ValueError, RecursionError, AttributeError):
        return ""
    if not isinstance(record, dict):
        return ""
    found = job_error(record)
    return encode_ruby({"exception": found.exception, "error": found.message, "failed_at": found.failed_at,
                        "queue": found.queue, "worker": found.worker, "updated": updated})


def decode_failure_summary(raw: bytes | str | None, updated: int | None) -> JobError | None:
    """The side key's :class:`JobError`, if it is one and belongs to the packet ``updated`` at that time."""
    if raw is None:
        return None
    try:
        doc = untrusted.loads(raw, "failure summary")
    except InvalidPayload:
        return None
    if not isinstance(doc, dict) or doc.get("updated") != updated or not isinstance(doc.get("exception"), str):
        return None
    return job_error(doc)


def decode_failure(raw: bytes | str) -> dict[str, Any] | None:
    """A failure record as a dict, or ``None`` when it is not a JSON object (listed as raw)."""
    try:
        data = untrusted.loads(raw, "failure record")
    except InvalidPayload:
        return None
    return data if isinstance(data, dict) else None


# -- the running scheduler's loaded schedules (pyresque's own key) --------------------------------
class LoadedSchedule(NamedTuple):
    """One entry of ``pyresque_scheduler:loaded``: what a master scheduler runs, and from where."""

    source: str  # "file" or "redis" (persistent_schedules)
    config: dict[str, Any]
    anchor: float  # when the scheduler first saw it: an ``every`` never fired counts from here
    scheduler: str  # the master's lock value, host:pid
    file: str | None = None


def encode_loaded_schedule(entry: LoadedSchedule) -> str:
    return json.dumps({"source": entry.source, "config": entry.config, "anchor": entry.anchor,
                       "scheduler": entry.scheduler, "file": entry.file}, separators=(",", ":"), default=str)


def decode_loaded_schedule(raw: bytes | str) -> LoadedSchedule:
    """An entry as read (any program may write any key): :class:`InvalidPayload` says why not."""
    doc = untrusted.loads(raw, "loaded schedule")
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise InvalidPayload("loaded schedule is not an object with a config object")
    anchor, source, scheduler, file = doc.get("anchor"), doc.get("source"), doc.get("scheduler"), doc.get("file")
    if not isinstance(anchor, (int, float)) or isinstance(anchor, bool) or source not in ("file", "redis"):
        raise InvalidPayload("loaded schedule has no numeric anchor or no source file/redis")
    return LoadedSchedule(source, doc["config"], float(anchor), scheduler if isinstance(scheduler, str) else "?",
                          file if isinstance(file, str) else None)
