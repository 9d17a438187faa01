"""The API's documents as pydantic models: they validate requests and write the OpenAPI document.

Requests are strict (no ``"1"`` taken for ``1``, no unknown fields: a typo such as ``"arg"`` is a
422, not a job without its arguments). Responses carry what was read from Redis, which anyone
may have written: fields that come from there are typed loosely (``Any``) so an odd record is
shown, never turned into a 500.
"""

from __future__ import annotations

from typing import Any, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class JobIn(_Strict):
    """One job to enqueue."""

    job_class: str = Field(alias="class", min_length=1, max_length=1000,
                           description="Job class name, as the worker resolves it (`PHP_Job`, `app.jobs.Send`).")
    args: List[Any] = Field(default_factory=list,
                            description="Positional arguments (php-resque: one object, `[{...}]`).")
    track: bool = Field(True, description="Write php-resque's status key, so `GET /jobs/{id}` follows the job.")
    at: Optional[Union[float, str]] = Field(
        None, description="Run at: unix seconds, or ISO-8601 (UTC unless it has an offset).")
    in_: Optional[Union[float, str]] = Field(
        None, alias="in", description="Run after: seconds, or a duration like `90s`, `5m`, `1h30m`.")
    shape: Literal["php", "ruby"] = Field(
        "php", description="`php`: with id, prefix, queue_time (Ruby ignores them); `ruby`: bare {class,args}, no id.")


class Enqueued(BaseModel):
    id: Optional[str] = Field(description="The job id (`null` for shape `ruby`, or when a hook cancelled it).")
    queue: str
    scheduled_at: Optional[float] = Field(None, description="Unix time it is due, when delayed.")


class EnqueuedMany(BaseModel):
    ids: List[Optional[str]]
    queue: str


class JobError(BaseModel):
    exception: Any = None
    message: Any = None
    failed_at: Any = None
    queue: Any = None
    worker: Any = None


class JobStatus(BaseModel):
    id: str
    status: str = Field(description="waiting, running, failed or complete")
    code: int = Field(description="php-resque's status code: 1 waiting, 2 running, 3 failed, 4 complete")
    final: bool
    updated: Optional[int] = None
    started: Optional[int] = None
    result: Any = None
    error: Optional[JobError] = Field(None, description="A failed job's exception class and message, when found.")
    ttl: Optional[int] = Field(None, description="Seconds the status key lives on (-1: no expiry).")


class QueueInfo(BaseModel):
    name: str
    size: int
    oldest_age: Optional[float] = Field(None, description="Latency: seconds since the oldest job was enqueued.")


class QueuedJob(BaseModel):
    index: int
    payload: Any = None
    error: Optional[str] = None
    raw: Optional[str] = Field(None, description="The item as stored, when it is not a readable payload.")


class QueuePage(BaseModel):
    queue: str
    size: int
    start: int
    jobs: List[QueuedJob]


class Removed(BaseModel):
    removed: int


class FailedSummary(BaseModel):
    index: int
    digest: str = Field(description="Short SHA-1 of the record: pass it back to act on exactly this record.")
    id: Optional[str] = None
    queue: Optional[str] = None
    job_class: Optional[str] = Field(None, alias="class")
    exception: Optional[str] = None
    error: Optional[str] = None
    failed_at: Optional[str] = None
    retried_at: Optional[str] = None

    model_config = ConfigDict(populate_by_name=True)


class FailedDetail(FailedSummary):
    attempt: int
    retry_history: List[Any]
    record: Any = Field(None, description="The whole record (null when it is not JSON: see raw).")
    raw: Optional[str] = None


class FailedBulkIn(_Strict):
    queue: Optional[str] = None
    job_class: Optional[str] = Field(None, alias="class")
    remove: Optional[bool] = Field(None, description="Move records out instead of marking them retried.")
    again: bool = Field(False, description="Retry records that were retried before, once more.")


class BulkResult(BaseModel):
    done: int
    gone: int
    already_retried: int
    skipped: List[Any]


class DelayedJob(BaseModel):
    timestamp: int
    job_class: Any = Field(None, alias="class")
    args: Any = None
    queue: Any = None
    id: Any = None
    error: Optional[str] = None

    model_config = ConfigDict(populate_by_name=True)


class Paused(BaseModel):
    paused: bool
    ignored_by: List[str] = Field(description="php-resque workers, which ignore the key (send them USR2/CONT).")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: Optional[str] = None


class ErrorBody(BaseModel):
    error: ErrorDetail
