"""Routes for operators: queues, workers, failed jobs, delayed jobs, schedules, stats, pause.

Each route reads its input, calls the library function the matching CLI command calls
(``Resque.peek/remove/delete_queue``, ``admin.overview``, ``admin.failed.FailedJobs``,
``scheduling.delayed``, ``scheduling.listing``) and returns what it returned as JSON. Removals
that name their target and find nothing are a 404, as the CLI's are exit 1.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Body, Path, Query, Request

from ..admin import overview
from ..admin.failed import FailedJob, FailedJobs
from ..scheduling.delayed import DelayedJob, iter_delayed, remove_delayed
from ..scheduling.listing import list_schedules
from ..wire import payload as wire
from .errors import ApiError
from .jobs import check_queue, resque_of
from .models import BulkResult, FailedBulkIn, FailedDetail, FailedSummary, Paused, QueueInfo, QueuePage, Removed
from .models import DelayedJob as DelayedDoc

router = APIRouter()

#: Most items one listing returns: paging (``start``, ``count``/``limit``) reaches the rest.
MAX_PAGE = 1000

_QUEUE = Path(min_length=1, max_length=1000, description="Queue name")


def _args_query(text: str | None, job_class: str | None) -> list[Any] | None:
    """``args``: a JSON list, only with ``class`` (the CLI's ``--args``)."""
    if text is None:
        return None
    if job_class is None:
        raise ApiError(422, "invalid", "'args' goes with 'class'", "args")
    try:
        args = json.loads(text)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"'args' is not JSON: {exc}", "args") from None
    if not isinstance(args, list):
        raise ApiError(422, "invalid", "'args' must be a JSON list (the positional args)", "args")
    return args


# -- queues -----------------------------------------------------------------------------------
@router.get("/queues", response_model=List[QueueInfo], summary="Queues with size and latency (age of the oldest job)")
def queues(request: Request) -> Any:
    return [dataclasses.asdict(q) for q in overview.info(resque_of(request)).queues]


@router.get("/queues/{queue}/jobs", response_model=QueuePage, summary="Jobs waiting in a queue (peek, paged)")
def peek(request: Request, queue: str = _QUEUE, start: int = Query(0, ge=0, le=2**62),
         count: int = Query(20, ge=1, le=MAX_PAGE)) -> Any:
    resque = resque_of(request)
    check_queue(queue)
    jobs = [{"index": job.index, "payload": job.payload, "error": job.error,
             "raw": None if job.payload else job.raw.decode("utf-8", "backslashreplace")}
            for job in resque.peek(queue, start, count)]
    return {"queue": queue, "size": resque.size(queue), "start": start, "jobs": jobs}


@router.delete("/queues/{queue}/jobs/{job_id}", response_model=Removed, summary="Remove a waiting job by id")
def remove_by_id(request: Request, queue: str = _QUEUE, job_id: str = Path(min_length=1, max_length=200)) -> Any:
    check_queue(queue)
    removed = resque_of(request).remove(queue, job_id=job_id)
    if not removed:
        raise ApiError(404, "nothing_matched", f"no job with id {job_id} in {queue}", "job_id")
    return {"removed": removed}


@router.delete("/queues/{queue}/jobs", response_model=Removed, summary="Remove waiting jobs by class (and args)")
def remove_by_class(request: Request, queue: str = _QUEUE,
                    job_class: str = Query(alias="class", min_length=1, max_length=1000),
                    args: Optional[str] = Query(None, description="JSON list: only jobs with these args")) -> Any:
    check_queue(queue)
    removed = resque_of(request).remove(queue, job_class=job_class, args=_args_query(args, job_class))
    if not removed:
        raise ApiError(404, "nothing_matched", f"no job of class {job_class} in {queue}", "class")
    return {"removed": removed}


@router.delete("/queues/{queue}", response_model=Removed, summary="Clear a queue: remove it and all its jobs")
def clear_queue(request: Request, queue: str = _QUEUE) -> Any:
    check_queue(queue)
    return {"removed": resque_of(request).delete_queue(queue)}


# -- workers and stats ------------------------------------------------------------------------
@router.get("/workers", response_model=List[Dict[str, Any]], summary="Registered workers (php-resque, Ruby, pyresque)")
def workers(request: Request) -> Any:
    return [dataclasses.asdict(view) for view in overview.list_workers(resque_of(request))]


@router.get("/stats", response_model=Dict[str, Any], summary="Totals, queues, workers and delayed jobs (`pyresque info`)")
def stats(request: Request) -> Any:
    return dataclasses.asdict(overview.info(resque_of(request)))


def _pause(request: Request, paused: bool) -> dict[str, Any]:
    return {"paused": paused, "ignored_by": overview.set_paused(resque_of(request), paused)}


@router.post("/pause", response_model=Paused, summary="Pause every Ruby and pyresque worker (pause-all-workers)")
def pause(request: Request) -> Any:
    return _pause(request, True)


@router.post("/resume", response_model=Paused, summary="Resume the workers")
def resume(request: Request) -> Any:
    return _pause(request, False)


# -- failed jobs ------------------------------------------------------------------------------
def _summary(job: FailedJob) -> dict[str, Any]:
    return {"index": job.index, "digest": job.short_digest, "id": job.job_id, "queue": job.queue,
            "class": job.job_class, "exception": job.exception, "error": job.error, "failed_at": job.failed_at,
            "retried_at": job.retried_at}


def _detail(job: FailedJob) -> dict[str, Any]:
    doc = _summary(job)
    doc.update(attempt=job.attempt, retry_history=job.retry_history, record=job.record,
               raw=None if job.record is not None else wire.raw_payload_record(job.raw).get("raw"))
    return doc


_INDEX = Path(ge=0, le=2**62, description="Position in the failed list, 0 = oldest")
_DIGEST = Query(None, pattern=r"^[0-9a-fA-F]{6,40}$",
                description="The digest a listing showed: act on exactly that record, wherever it moved")


def _failed_target(request: Request, index: int, digest: str | None) -> tuple[FailedJobs, FailedJob]:
    jobs = FailedJobs(resque_of(request))
    if digest is None:
        return jobs, jobs.get(index)
    try:
        return jobs, jobs.find(index, digest)
    except ValueError as exc:  # an ambiguous digest
        raise ApiError(422, "ambiguous_digest", str(exc), "digest") from None


@router.get("/failed", response_model=List[FailedSummary], summary="Failed jobs, oldest first (filter, newest `limit`)")
def failed_list(request: Request, queue: Optional[str] = Query(None, max_length=1000),
                job_class: Optional[str] = Query(None, alias="class", max_length=1000),
                since: Optional[float] = Query(None, description="Unix seconds: failures since then"),
                job_id: Optional[str] = Query(None, alias="id", max_length=200),
                limit: int = Query(100, ge=1, le=MAX_PAGE)) -> Any:
    if queue is not None:
        check_queue(queue)
    found = FailedJobs(resque_of(request)).list(queue=queue, job_class=job_class, since=since, limit=limit,
                                                job_id=job_id)
    return [_summary(job) for job in found]


@router.get("/failed/{index}", response_model=FailedDetail, summary="One failed job: record, attempts, retries")
def failed_show(request: Request, index: int = _INDEX, digest: Optional[str] = _DIGEST) -> Any:
    return _detail(_failed_target(request, index, digest)[1])


@router.post("/failed/{index}/retry", response_model=FailedSummary, summary="Retry one failed job")
def failed_retry(request: Request, index: int = _INDEX, digest: Optional[str] = _DIGEST,
                 remove: Optional[bool] = Query(None, description="Move the record out (default: keep it, marked)"),
                 again: bool = Query(False, description="Retry a record retried before, once more")) -> Any:
    jobs, job = _failed_target(request, index, digest)
    return _summary(jobs.retry(job, remove=remove, again=again))


@router.delete("/failed/{index}", response_model=FailedSummary, summary="Remove one failed job")
def failed_remove(request: Request, index: int = _INDEX, digest: Optional[str] = _DIGEST) -> Any:
    jobs, job = _failed_target(request, index, digest)
    return _summary(jobs.remove(job))


@router.post("/jobs/{job_id}/retry", response_model=FailedSummary, summary="Retry a failed job by its id")
def job_retry(request: Request, job_id: str = Path(min_length=1, max_length=200),
              remove: Optional[bool] = Query(None, description="Move the record out (default: keep it, marked)"),
              again: bool = Query(False, description="Retry a record retried before, once more")) -> Any:
    """The newest failure record of that job (as `pyresque failed retry --id`); 404 when it has none."""
    jobs = FailedJobs(resque_of(request))
    return _summary(jobs.retry(jobs.by_id(job_id), remove=remove, again=again))


def _bulk_doc(result: Any) -> dict[str, Any]:
    return {"done": result.done, "gone": result.gone, "already_retried": result.already_retried,
            "skipped": [{"index": index, "reason": reason} for index, reason in result.skipped]}


@router.post("/failed/retry", response_model=BulkResult, summary="Retry every failed job matching a filter")
def failed_retry_all(request: Request, body: Optional[FailedBulkIn] = Body(None)) -> Any:
    """No filter retries them all (Ruby's `requeue_all`); records retried before are left alone
    unless `again`."""
    body = body or FailedBulkIn.model_validate({})
    if body.queue is not None:
        check_queue(body.queue)
    jobs = FailedJobs(resque_of(request))
    return _bulk_doc(jobs.retry_all(queue=body.queue, job_class=body.job_class, remove=body.remove, again=body.again))


@router.delete("/failed", response_model=BulkResult, summary="Remove failed jobs by queue and/or class (or all)")
def failed_remove_all(request: Request, queue: Optional[str] = Query(None, max_length=1000),
                      job_class: Optional[str] = Query(None, alias="class", max_length=1000),
                      all_records: bool = Query(False, alias="all", description="With no filter: clear the list")) -> Any:
    jobs = FailedJobs(resque_of(request))
    if queue is None and job_class is None:
        if not all_records:
            raise ApiError(422, "invalid", "give 'queue' and/or 'class', or all=true to clear the failed list", "all")
        return {"done": jobs.clear(), "gone": 0, "already_retried": 0, "skipped": []}
    if queue is not None:
        check_queue(queue)
    return _bulk_doc(jobs.remove_where(queue=queue, job_class=job_class))


# -- delayed jobs and schedules ---------------------------------------------------------------
def _delayed_doc(job: DelayedJob) -> dict[str, Any]:
    return {"timestamp": job.timestamp, "class": job.job_class, "args": job.args, "queue": job.queue,
            "id": job.job_id, "error": job.error}


@router.get("/delayed", response_model=List[DelayedDoc], summary="Delayed jobs, earliest first")
def delayed_list(request: Request, job_class: Optional[str] = Query(None, alias="class", max_length=1000),
                 queue: Optional[str] = Query(None, max_length=1000), limit: int = Query(100, ge=1, le=MAX_PAGE)) -> Any:
    shown = []
    for job in iter_delayed(resque_of(request)):
        if (job_class is not None and job.job_class != job_class) or (queue is not None and job.queue != queue):
            continue
        shown.append(_delayed_doc(job))
        if len(shown) >= limit:
            break
    return shown


@router.delete("/delayed", response_model=Removed, summary="Remove delayed jobs by id, or by class (args, queue)")
def delayed_remove(request: Request, job_id: Optional[str] = Query(None, alias="id", min_length=1, max_length=200),
                   job_class: Optional[str] = Query(None, alias="class", min_length=1, max_length=1000),
                   args: Optional[str] = Query(None, description="JSON list, with class"),
                   queue: Optional[str] = Query(None, max_length=1000)) -> Any:
    if job_id is None and job_class is None:
        raise ApiError(422, "invalid", "give 'id', or 'class' (with optional 'args'/'queue')", "id")
    removed = remove_delayed(resque_of(request), job_class=job_class, args=_args_query(args, job_class),
                             job_id=job_id, queue=queue)
    if not removed:
        what = f"with id {job_id}" if job_id is not None else f"of class {job_class}"
        raise ApiError(404, "nothing_matched", f"no delayed job {what}" + (f" for {queue}" if queue else ""))
    return {"removed": removed}


@router.get("/schedules", response_model=List[Dict[str, Any]], summary="Recurring schedules, with next run")
def schedules(request: Request) -> Any:
    return [listed.as_dict() for listed in list_schedules(resque_of(request))]

