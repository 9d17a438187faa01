"""Routes for producers: enqueue (one job or many, now or later), a job's status, and waiting for it.

Enqueuing goes through the producer API the CLI uses (``Resque.enqueue`` / ``enqueue_many``,
``scheduling.delayed.enqueue_at``), so an HTTP job is byte for byte what ``pyresque enqueue``
writes. A bulk request pushes each run of consecutive jobs of one class and shape in one
pipeline (``enqueue_many``), in order; delayed jobs of a bulk go to the delayed queue one by one.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Union

from fastapi import APIRouter, Path, Query, Request
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from ..exceptions import InvalidPayload, InvalidQueueName, InvalidStatus
from ..queue import Resque
from ..scheduling.delayed import enqueue_at
from ..scheduling.schedules import parse_duration
from ..wire import payload as wire
from ..wire import untrusted
from .errors import ApiError, StrictJSONResponse, field_of
from .idempotency import HEADER, Claim, Idempotency, Replay, fingerprint
from .models import Enqueued, EnqueuedMany, JobIn, JobStatus

router = APIRouter()

#: Most jobs one bulk request may carry (the body limit bounds it too).
MAX_BULK = 10_000

#: Longest ``/wait`` a client may ask for: a long-poll is renewed by the client, not held open.
MAX_WAIT = 60.0

#: ``/wait``'s polling of the status key: from every 5 ms up to every 250 ms (as ``Resque.wait``).
POLL_START, POLL_CAP = 0.005, 0.25

#: Latest time a job may be delayed to (9999-12-31 UTC): past it Redis cannot expire the delayed
#: job's keys, and no clock will reach it anyway.
MAX_TIME = 253402300799.0

_ONE = TypeAdapter(JobIn)


def resque_of(request: Request) -> Resque:
    resque: Resque = request.app.state.resque
    return resque


def check_queue(queue: str) -> str:
    try:
        return wire.validate_queue_name(queue)
    except InvalidQueueName as exc:
        raise ApiError(422, "invalid_queue", str(exc), "queue") from None


def _parse_jobs(body: bytes) -> tuple[list[JobIn], bool]:
    """The body as jobs, and whether it was a list; 400 for what is not JSON, 422 for bad jobs."""
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty: send a job object or a list of them")
    try:
        doc = untrusted.loads(body, "request body")
    except InvalidPayload as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    many = isinstance(doc, list)
    items = doc if many else [doc]
    if many and not items:
        raise ApiError(422, "invalid", "the list of jobs is empty", None)
    if len(items) > MAX_BULK:
        raise ApiError(413, "too_many_jobs", f"{len(items)} jobs in one request; at most {MAX_BULK}")
    jobs = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(422, "invalid", f"a job is a JSON object with 'class' and 'args', got {type(item).__name__}",
                           f"[{position}]" if many else None)
        try:
            jobs.append(_ONE.validate_python(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = tuple(first.get("loc", ()))
            field = field_of(((position,) if many else ()) + loc)
            raise ApiError(422, "invalid", f"{field or 'job'}: {first.get('msg')}", field) from None
    return jobs, many


def due_time(job: JobIn, where: str) -> float | None:
    """``at`` / ``in`` as a unix time; ``None`` to enqueue now."""
    if job.at is not None and job.in_ is not None:
        raise ApiError(422, "invalid_delay", "give 'at' or 'in', not both", f"{where}at")
    if job.in_ is not None:
        try:
            seconds = parse_duration(job.in_)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            raise ApiError(422, "invalid_delay", f"'in' {job.in_!r}: expected seconds >= 0 or a duration like "
                           "90s, 5m, 1h30m", f"{where}in")
        if time.time() + seconds > MAX_TIME:
            raise ApiError(422, "invalid_delay", f"'in' {job.in_!r} is past the year 9999", f"{where}in")
        return time.time() + seconds
    if job.at is not None:
        when = float(job.at) if isinstance(job.at, (int, float)) else _parse_at(job.at)
        if when is None or not math.isfinite(when):
            raise ApiError(422, "invalid_delay", f"'at' {job.at!r}: expected unix seconds or an ISO-8601 time",
                           f"{where}at")
        if when > MAX_TIME:
            raise ApiError(422, "invalid_delay", f"'at' {job.at!r} is past the year 9999", f"{where}at")
        return when
    return None


def _parse_at(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return wire.parse_time(text.strip()) if text.strip() else None


def _enqueue_all(resque: Resque, queue: str, jobs: list[JobIn], many: bool) -> tuple[list[str | None], list[float | None]]:
    plan = [(job, due_time(job, f"[{i}]." if many else "")) for i, job in enumerate(jobs)]
    now = time.time()
    for i, (job, _) in enumerate(plan):  # every job checked before any is pushed: all or nothing
        try:
            wire.encode_payload(wire.build_payload(job.job_class, job.args, "0" * 32))
        except InvalidPayload as exc:
            raise ApiError(422, "invalid_job", str(exc), f"[{i}]" if many else None) from None
    ids: list[str | None] = []
    due: list[float | None] = []
    run: list[JobIn] = []

    def flush() -> None:
        if run:
            ids.extend(resque.enqueue_many(queue, run[0].job_class, [j.args for j in run],
                                           track=run[0].track and run[0].shape == "php", shape=run[0].shape))
            due.extend([None] * len(run))
            run.clear()

    for job, when in plan:
        options: dict[str, Any] = dict(track=job.track and job.shape == "php", shape=job.shape)
        if when is not None and when > now:
            flush()
            ids.append(enqueue_at(resque, when, queue, job.job_class, *job.args, **options))
            due.append(when)
        elif not many:
            ids.append(resque.enqueue(queue, job.job_class, *job.args, **options))
            due.append(None)
        else:
            if run and (run[0].job_class, run[0].track, run[0].shape) != (job.job_class, job.track, job.shape):
                flush()
            run.append(job)
    flush()
    return ids, due


@router.post("/queues/{queue}/jobs", status_code=201, response_model=Union[Enqueued, EnqueuedMany],
             summary="Enqueue one job or a list of jobs",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "anyOf": [{"$ref": "#/components/schemas/JobIn"},
                           {"type": "array", "items": {"$ref": "#/components/schemas/JobIn"},
                            "minItems": 1, "maxItems": MAX_BULK}]}}}},
                 "parameters": [{"name": HEADER, "in": "header", "required": False,
                                 "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                                 "description": "Makes a retried request enqueue once (answers kept 24 h)."}]})
async def enqueue(request: Request, queue: str = Path(description="Queue name")) -> Any:
    """One job object → `{"id"}`; a list → `{"ids"}` in order. `at`/`in` delay a job (the workers or
    a scheduler move it when due). With `Idempotency-Key`, a retry of the same request gets the
    first answer and enqueues nothing more."""
    check_queue(queue)
    body = await request.body()
    key = request.headers.get(HEADER)
    claim: Claim | None = None
    if key is not None:
        begun = await Idempotency(resque_of(request)).begin(key, fingerprint("POST", request.url.path, body))
        if isinstance(begun, Replay):
            return StrictJSONResponse(begun.body, status_code=begun.status, headers={"Idempotent-Replayed": "true"})
        claim = begun
    status, doc = 500, None
    try:
        jobs, many = _parse_jobs(body)
        ids, due = await run_in_threadpool(_enqueue_all, resque_of(request), queue, jobs, many)
        doc = {"ids": ids, "queue": queue} if many else {"id": ids[0], "queue": queue, "scheduled_at": due[0]}
        status = 201
        return StrictJSONResponse(doc, status_code=201)
    finally:
        if claim is not None:
            await Idempotency(resque_of(request)).finish(claim, status, doc)


def status_doc(resque: Resque, job_id: str) -> dict[str, Any]:
    try:
        packet = resque.status(job_id)
    except InvalidStatus as exc:
        raise ApiError(409, "unreadable_status", f"job {job_id}: {exc}", "id") from None
    if packet is None:
        raise ApiError(404, "unknown_job", f"job {job_id} is not tracked: unknown id, enqueued without tracking, "
                       "or its status expired", "id")
    return {"id": job_id, "status": packet.name, "code": packet.status, "final": packet.final,
            "updated": packet.updated, "started": packet.started, "result": packet.result,
            "error": packet.error.as_dict() if packet.error else None,
            "ttl": resque.store.status_ttl(resque.keys.status(job_id))}


_JOB_ID = Path(min_length=1, max_length=200, description="The job id enqueue returned")


@router.get("/jobs/{job_id}", response_model=JobStatus, summary="A job's status, result or failure")
def job_status(request: Request, job_id: str = _JOB_ID) -> Any:
    return status_doc(resque_of(request), job_id)


@router.get("/jobs/{job_id}/wait", response_model=JobStatus, summary="Wait until the job is failed or complete")
async def job_wait(request: Request, job_id: str = _JOB_ID,
                   timeout: float = Query(30.0, ge=0, le=MAX_WAIT, description=f"Seconds, at most {MAX_WAIT:g}")) -> Any:
    """Long-poll: answers as soon as the job is final, or after `timeout` with its current status
    (`final: false`: ask again)."""
    resque = resque_of(request)
    deadline = time.monotonic() + timeout
    pause = POLL_START
    while True:
        doc = await run_in_threadpool(status_doc, resque, job_id)
        left = deadline - time.monotonic()
        if doc["final"] or left <= 0:
            return doc
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, POLL_CAP)


__all__ = ["router", "check_queue", "resque_of"]
