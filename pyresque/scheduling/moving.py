"""Moving due delayed jobs to their queues: the scheduler's half of :mod:`.delayed`.

Each batch of a due bucket is planned here (pure Python: what to push, what fails and why, which
side payloads it consumes) and applied by one compare-and-move script
(:data:`pyresque.store.scheduler_store.MOVE_LUA`), so the plan and the script agree item by item.
Everything read is untrusted: an item or side payload that the strict reader refuses fails alone,
a key of the wrong type is noted and skipped, and the pass goes on to the next bucket.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from .. import defaults
from ..exceptions import InvalidPayload
from ..store.scheduler_store import (
    MOVE_CHANGED,
    MOVE_FAILED_NOT_LIST,
    MOVE_GONE,
    MOVE_QUEUES_NOT_LISTS,
    Action,
    SchedulerStore,
)
from ..wire import payload as wire
from ..wire import untrusted
from ..wire.keys import Keys

if TYPE_CHECKING:
    from ..queue import Resque


@dataclass
class MoveResult:
    moved: int = 0
    failed: int = 0
    retries: int = 0
    #: Due buckets left for the next pass: changing underneath, or broken (below).
    skipped: list[str] = field(default_factory=list)
    #: Of those, the ones that cannot move as they are: not a list, or no failed list to fail into.
    broken: list[str] = field(default_factory=list)
    #: Keys of the wrong type met on the way (the scheduler logs each once).
    problems: list[str] = field(default_factory=list)


def move_due(resque: Resque, now: float | None = None, batch: int = defaults.DELAYED_BATCH,
             worker: str = "scheduler") -> MoveResult:
    """Move every due item to its queue, oldest bucket first, one atomic batch at a time.

    An item that is not a job (not JSON, no class, no queue, NaN, too deep…) or whose queue is not a
    list fails alone, into the failed list with the reason; ``worker`` names the scheduler there. A
    bucket that cannot be read is left as it is and the others move.
    """
    store = SchedulerStore(resque.redis, resque.keys)
    result = MoveResult()
    stamp = int(time.time() if now is None else math.floor(now))
    left: set[bytes] = set()
    drained: set[bytes] = set()
    while True:
        due = [ts for ts in store.due_timestamps(stamp, len(left) + 1) if ts not in left]
        if not due:
            result.problems = store.take_problems()
            return result
        ts = due[0]
        if ts in drained:  # refilled since, or a member Redis keeps: the next pass sees it, this one ends
            left.add(ts)
            continue
        drained.add(ts)
        if not _drain_bucket(resque, store, ts, batch, worker, result):
            left.add(ts)
            result.skipped.append(_text(ts))


def _drain_bucket(resque: Resque, store: SchedulerStore, ts: bytes, batch: int, worker: str, result: MoveResult) -> bool:
    attempts = 0
    blocked: dict[str, str] = {}  # queue -> why no push can go there
    while True:
        items = store.bucket_head(ts, batch)
        if items is None:  # not a list: the store noted it
            result.broken.append(_text(ts))
            return False
        side_updates, actions = plan_moves(items, store.side_payloads(ts), worker, _text(ts), resque.keys, blocked)
        reply = store.move_batch(ts, items, side_updates, actions, resque.status_ttl)
        if reply.code == MOVE_QUEUES_NOT_LISTS:
            new = [queue for queue in reply.queues if queue not in blocked]
            if not new:  # cannot happen unless the names do not round-trip: leave the bucket
                result.broken.append(_text(ts))
                return False
            for queue in new:
                key = resque.keys.queue(queue)
                blocked[queue] = f"{key} is a {store.key_type(key)}, not a list"
                store.problems.append(f"{blocked[queue]}: delayed jobs for it are failed")
            continue
        if reply.code == MOVE_FAILED_NOT_LIST:
            result.broken.append(_text(ts))
            return False
        if reply.code == MOVE_CHANGED:
            attempts += 1
            result.retries += 1
            if attempts >= defaults.MOVE_ATTEMPTS:
                return False
            continue
        attempts = 0
        result.moved += sum(1 for action in actions if action.kind == "q")
        result.failed += sum(1 for action in actions if action.kind == "f")
        if reply.code == MOVE_GONE:
            return True


def plan_moves(items: list[bytes], side: dict[bytes, bytes], worker: str, ts: str, keys: Keys,
               blocked: Mapping[str, str] | None = None) -> tuple[list[tuple[bytes, bytes, str]], list[Action]]:
    """What to do with each item, and the side hash fields it consumes (pure: no Redis).

    Each copy of an item takes the next side payload of its bytes whatever becomes of it, so the
    side hash stays in step with the bucket. An item that cannot be read fails, with its tracked
    id's status (from its side payload) FAILED; so does one bound for a queue in ``blocked``.
    """
    blocked = blocked or {}
    waiting = {item: side_list(value) for item, value in side.items()}
    used: dict[bytes, int] = {}
    actions = []
    now = time.time()
    for raw in items:
        entry = None
        index = used.get(raw, 0)
        if index < len(waiting.get(raw, ())):
            used[raw] = index + 1
            entry = waiting[raw][index]
        try:
            job = decode_item(raw)
        except InvalidPayload as exc:
            actions.append(_unreadable(raw, entry, str(exc), ts, worker, keys, now))
            continue
        queue = job["queue"]
        full = None
        if entry is not None:
            try:
                full = side_payload(entry)
            except InvalidPayload as exc:
                tracked = _tracked(untrusted.lenient_loads(entry))
                if tracked:  # its status must not wait forever, nor the job run under no id: it fails
                    actions.append(_unreadable_side(job, tracked, str(exc), ts, worker, keys, now))
                    continue
        if full is not None and (full.get("class"), full.get("args")) != (job["class"], job["args"]):
            full = None  # a side payload for another job (forged, or a neighbour's edit): the item wins
        if full is None:  # no side payload (Ruby's, php's item) or an id-less damaged one: push as Ruby would
            full = {"class": job["class"], "args": job["args"]}
            data = wire.encode_ruby(full)
        else:
            data = wire.encode_payload(refreshed(full, now))
        if queue in blocked:
            actions.append(_unpushable(full, blocked[queue], queue, ts, worker, keys, now))
        else:
            actions.append(Action("q", queue, data))
    updates = []
    for raw, count in used.items():
        rest = waiting[raw][count:]
        updates.append((raw, side[raw], json.dumps(rest) if rest else ""))
    return updates, actions


def _unreadable(raw: bytes, entry: str | None, reason: str, ts: str, worker: str, keys: Keys, now: float) -> Action:
    """The failure of an item that is not a job: its raw text, and its side payload's id, if any."""
    payload = wire.readable_payload(raw, reason)
    tracked = _tracked(untrusted.lenient_loads(entry) if entry is not None else None)  # cjson's view of it
    if tracked:
        payload.update(id=tracked[0], prefix=tracked[1])
    record = wire.build_failure(payload, "pyresque.InvalidPayload", f"delayed item in delayed:{ts}: {reason}", [],
                                worker, _queue_hint(raw), now)
    return _failure(record, tracked, keys, now)


def _unreadable_side(job: dict[str, Any], tracked: tuple[str, str], reason: str, ts: str, worker: str, keys: Keys,
                     now: float) -> Action:
    """The failure of a readable item whose side payload is not: the item's job under its id."""
    payload = {"class": job["class"], "args": job["args"], "id": tracked[0], "prefix": tracked[1]}
    record = wire.build_failure(payload, "pyresque.InvalidPayload",
                                f"side payload of the delayed item in delayed:{ts}: {reason}", [], worker, job["queue"], now)
    return _failure(record, tracked, keys, now)


def _unpushable(payload: dict[str, Any], why: str, queue: str, ts: str, worker: str, keys: Keys, now: float) -> Action:
    """The failure of a job whose queue key holds something else: retried once the key is fixed."""
    record = wire.build_failure(payload, "pyresque.QueueNotAList", f"delayed job in delayed:{ts}: {why}", [],
                                worker, queue, now)
    return _failure(record, _tracked(payload), keys, now)


def _failure(record: dict[str, Any], tracked: tuple[str, str] | None, keys: Keys, now: float) -> Action:
    if tracked is None:
        return Action("f", "", wire.encode_failure(record))
    return Action("f", "", wire.encode_failure(record), keys.status(*tracked),
                  wire.encode_status(wire.FAILED, int(now), int(now)))


def _tracked(doc: Any) -> tuple[str, str] | None:
    """The (id, prefix) of the job a payload tracks, or ``None``."""
    if not isinstance(doc, dict):
        return None
    job_id, prefix = doc.get("id"), doc.get("prefix") or ""
    if not (isinstance(job_id, str) and job_id and isinstance(prefix, str)):
        return None
    if untrusted.encodable(job_id) != job_id or untrusted.encodable(prefix) != prefix:
        return None  # a lone surrogate: no key can be spelled with it
    return job_id, prefix


def decode_item(raw: bytes | str) -> dict[str, Any]:
    """A delayed item as a dict with a valid ``queue``, or :class:`InvalidPayload` saying why."""
    job = wire.decode_payload(raw)
    queue = job.get("queue")
    if not isinstance(queue, str):
        raise InvalidPayload("delayed item has no 'queue' string (pyresque cannot take it from a Ruby class)")
    try:
        wire.validate_queue_name(queue)
    except ValueError as exc:
        raise InvalidPayload(str(exc)) from None
    return job


def side_list(value: bytes) -> list[str]:
    """A side hash value: the JSON list of payload texts. One the strict reader refuses reads as
    none: its items are pushed as Ruby's scheduler would push them (the ids are lost)."""
    try:
        decoded = untrusted.loads(value, "side payload list")
    except InvalidPayload:
        return []
    return [v for v in decoded if isinstance(v, str)] if isinstance(decoded, list) else []


def side_payload(entry: str) -> dict[str, Any]:
    """One side payload, or :class:`InvalidPayload` saying why it is none."""
    payload = untrusted.loads(entry, "side payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("class"), str):
        raise InvalidPayload("side payload is not a payload object with a 'class' string")
    return payload


def _queue_hint(raw: bytes) -> str:
    doc = untrusted.lenient_loads(raw)
    queue = doc.get("queue") if isinstance(doc, dict) else None
    return untrusted.encodable(queue) if isinstance(queue, str) else ""


def refreshed(payload: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The payload as pushed when its delay ends: php-resque's ``queue_time`` is the push time."""
    if "queue_time" not in payload:
        return payload
    return {**payload, "queue_time": round(time.time() if now is None else now, 6)}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
