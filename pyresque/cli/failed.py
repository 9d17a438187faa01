"""``pyresque failed …``: list, show, retry, remove and clear failed jobs (see ``failure.py``).

Indices are positions in Resque's ``failed`` list (0 = oldest), as resque-web numbers them.
``failed list`` prints each record's digest and job id; ``--digest`` on ``retry``/``remove``/``show``
makes the command act on that record even if the list shifted since it was listed, and refuse if
the record is gone or was changed; ``--id`` names the newest record of a php-resque job id instead.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any

import click

from ..admin.failed import RETRY_MODE_ENV, BulkResult, FailedJob, FailedJobs
from ..wire import payload as wire
from .common import Failure, UsageProblem, connection_options, echo, handle_errors, json_line, open_resque


class _OneLineCommand(click.Command):
    """Reports bad options and arguments as one ``Error:`` line, exit 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise UsageProblem(f"{exc.format_message().rstrip('.')} (see '{ctx.command_path} --help')") from None


class _OneLineGroup(click.Group):
    command_class = _OneLineCommand

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise UsageProblem(f"{exc.format_message().rstrip('.')} (see '{ctx.command_path} --help')") from None


@click.group(cls=_OneLineGroup)
def failed() -> None:
    """Inspect and act on failed jobs (Resque's 'failed' list), safely while workers run.

    INDEX is a position in the list, 0 = oldest, as in resque-web. Add --digest (shown by
    'failed list') to act on exactly the record you saw even if the list shifted meanwhile.
    """


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """``2h``, ``30m``, ``1d`` (ago), an ISO date or date-time (UTC unless it has an offset), or a
    Resque time such as ``2026/11/22 04:58:06 UTC``; returns a Unix time."""
    relative = _RELATIVE.match(text)
    if relative:
        amount = float(relative.group(1)) * _UNIT_SECONDS[relative.group(2).lower()]
        return (time.time() if now is None else now) - amount
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        when = wire.parse_time(text) if text.strip() else None
        if when is None:
            raise UsageProblem(f"--since {text!r} is neither a time like 2h, 30m, 1d nor an ISO date/time") from None
        return when
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_index(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise UsageProblem(f"INDEX must be a non-negative integer (a position in the failed list), got {text!r}")
    return int(text)


#: What ``failed show`` prints of a long field (args, error, backtrace) without ``--full``, in bytes.
SHOW_LIMIT = 2000


def _clip(text: str, full: bool, limit: int = SHOW_LIMIT) -> tuple[str, str]:
    """``text`` cut to ``limit`` UTF-8 bytes (on a character boundary), and the note that says so."""
    data = text.encode("utf-8", "surrogateescape")
    if full or len(data) <= limit:
        return text, ""
    shown = data[:limit].decode("utf-8", "ignore")
    rest = len(data) - len(shown.encode("utf-8", "surrogateescape"))
    return shown, f"({rest} more bytes; --full shows all)"


def _check_digest(digest: str | None, index: int | None) -> None:
    if digest is None:
        return
    if index is None:
        raise UsageProblem("--digest goes with an INDEX")
    if not re.fullmatch(r"[0-9a-fA-F]{6,40}", digest.strip()):
        raise UsageProblem(f"--digest must be 6 to 40 hex characters (as 'failed list' shows), got {digest!r}")


def _position(index: str | None, job_id: str | None, digest: str | None, required: bool = True) -> int | None:
    """INDEX (with its --digest) or --id: one of them names the record."""
    if index is not None and job_id is not None:
        raise UsageProblem("give INDEX or --id, not both")
    if job_id is not None and digest is not None:
        raise UsageProblem("--digest goes with an INDEX, not with --id")
    if job_id is not None and not job_id.strip():
        raise UsageProblem("--id needs a job id")
    if required and index is None and job_id is None:
        raise UsageProblem("give INDEX or --id")
    position = None if index is None else parse_index(index)
    _check_digest(digest, position)
    return position


def _target(jobs: FailedJobs, position: int | None, digest: str | None, job_id: str | None) -> FailedJob:
    if job_id is not None:
        return jobs.by_id(job_id)
    assert position is not None
    return _locate(jobs, position, digest)


def _locate(jobs: FailedJobs, index: int, digest: str | None) -> FailedJob:
    if digest is None:
        return jobs.get(index)
    try:
        return jobs.find(index, digest)
    except ValueError as exc:  # an ambiguous digest
        raise UsageProblem(str(exc)) from None


def _moved(job: FailedJob, index: int | None) -> str:
    return "" if index is None or job.index == index else f" (it had moved from index {index} to {job.index})"


def _when(job: FailedJob) -> str:
    when = job.failed_time
    if when is not None:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
    return job.failed_at or "-"


def _doc(job: FailedJob) -> dict[str, Any]:
    doc: dict[str, Any] = {"index": job.index, "digest": job.short_digest, "id": job.job_id, "record": job.record}
    if job.record is None:
        doc.update(wire.raw_payload_record(job.raw))  # "raw", and "raw_base64" when not UTF-8
    return doc


def _one_line(job: FailedJob) -> str:
    head = f"{job.index:>4}  {job.short_digest}  {job.job_id or '-'}"
    if job.record is None:
        return f"{head}  (not JSON) {job.raw[:160]!r}"
    error = (job.error or "").splitlines()[0] if job.error else ""
    if len(error) > 100:
        error = error[:97] + "..."
    line = f"{head}  {_when(job)}  {job.queue or '-'}  {job.job_class or '-'}  {job.exception or '-'}: {error}"
    if job.retried_at:
        line += f"  [retried {job.retried_at}]"
    return line


def _bulk_summary(verb: str, result: BulkResult) -> None:
    echo(f"{verb} {result.done} failed job{'s' if result.done != 1 else ''}")
    if result.already_retried:
        many = result.already_retried != 1
        echo(f"left {result.already_retried} failed job{'s' if many else ''} alone: {'they were' if many else 'it was'} "
             f"retried before (--again retries {'them' if many else 'it'} once more)")
    if result.gone:
        echo(f"{result.gone} matching record{'s were' if result.gone != 1 else ' was'} removed or changed "
                   f"by someone else meanwhile and left alone")
    for index, reason in result.skipped:
        echo(f"skipped {index}: {reason}")


def _bulk_selectors(index: int | None, selected: bool, what: str) -> None:
    if index is not None and selected:
        raise UsageProblem(f"give INDEX or {what}, not both")
    if index is None and not selected:
        raise UsageProblem(f"give INDEX or {what}")


@failed.command("list")
@click.option("-q", "--queue", default=None, help="Only failures from this queue.")
@click.option("--class", "job_class", default=None, help="Only failures of this job class.")
@click.option("--since", default=None, help="Only failures since a time: 2h, 30m, 1d, or an ISO date/time (UTC).")
@click.option("-n", "--limit", default=None, type=click.IntRange(min=1), help="Only the newest N matches.")
@click.option("--id", "job_id", default=None, help="Only the failures of the job with this id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per record.")
@connection_options
@handle_errors
def list_failed(queue: str | None, job_class: str | None, since: str | None, limit: int | None, job_id: str | None,
                as_json: bool, redis_url: str | None, prefix: str | None) -> None:
    """List failed jobs, oldest first: index, digest, job id, time, queue, class, exception: error."""
    since_ts = parse_since(since) if since is not None else None
    if queue is not None:
        wire.validate_queue_name(queue)
    jobs = FailedJobs(open_resque(redis_url, prefix)).list(queue=queue, job_class=job_class, since=since_ts, limit=limit,
                                                           job_id=job_id)
    for job in jobs:
        echo(json_line(_doc(job)) if as_json else _one_line(job))
    if not jobs and not as_json:
        echo("(no failed jobs)")


@failed.command()
@click.argument("index", required=False, metavar="[INDEX]")
@click.option("--id", "job_id", default=None, help="The newest failure of the job with this id, instead of INDEX.")
@click.option("--digest", default=None, help="The record's digest from 'failed list'; follow it if it moved.")
@click.option("--full", is_flag=True, help=f"Print long fields whole (else each is cut at {SHOW_LIMIT} bytes).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (always whole).")
@connection_options
@handle_errors
def show(index: str | None, job_id: str | None, digest: str | None, full: bool, as_json: bool,
         redis_url: str | None, prefix: str | None) -> None:
    """Show one failed job: its error, backtrace, attempts and retries."""
    position = _position(index, job_id, digest)
    job = _target(FailedJobs(open_resque(redis_url, prefix)), position, digest, job_id)
    if as_json:
        echo(json_line(_doc(job)))
        return
    echo(f"index:      {job.index}{_moved(job, position)}")
    echo(f"digest:     {job.digest}")
    if job.record is None:
        shown, note = _clip(repr(job.raw), full)
        echo(f"raw:        {shown}{' ' + note if note else ''} (not JSON: it can only be removed)")
        return
    args = None if job.args is None else json.dumps(job.args, ensure_ascii=False)
    rows = [("failed_at", job.failed_at), ("queue", job.queue), ("class", job.job_class), ("args", args),
            ("id", job.job_id), ("exception", job.exception), ("error", job.error), ("worker", job.worker)]
    for name, value in rows:
        if value is not None:
            shown, note = _clip(value, full)
            echo(f"{name + ':':<11} {shown}" + (f" {note}" if note else ""))
    _show_attempts(job, full)
    backtrace, note = _clip("\n".join(job.backtrace), full)
    echo("backtrace:" + ("" if job.backtrace else " (none)"))
    for frame in backtrace.splitlines() if job.backtrace else []:
        echo(f"  {frame}")
    if note:
        echo(f"  {note}")


def _show_attempts(job: FailedJob, full: bool) -> None:
    """The runs before this failure (``@retry``'s history in the payload) and the record's retries."""
    history = job.retry_history
    echo(f"attempts:   {job.attempt}" + (f" (this failure is run {job.attempt}; earlier runs:)" if history else ""))
    for entry in history:
        error, note = _clip(f"{entry.get('exception', '-')}: {entry.get('error', '')}", full, SHOW_LIMIT // 4)
        echo(f"  attempt {entry.get('attempt', '?')}  {entry.get('failed_at', '-')}  {error}" + (f" {note}" if note else ""))
    retries = job.retried_before + ([job.retried_at] if job.retried_at else [])
    if not retries:
        echo("retried:    never")
        return
    echo(f"retried:    {len(retries)} time{'s' if len(retries) != 1 else ''}, last at {retries[-1]}"
         + (f" (before: {', '.join(retries[:-1])})" if len(retries) > 1 else ""))


@failed.command()
@click.argument("index", required=False, metavar="[INDEX]")
@click.option("--id", "job_id", default=None, help="Retry the newest failure of the job with this id.")
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed job.")
@click.option("--class", "job_class", default=None, help="Retry every failed job of this class.")
@click.option("-q", "--queue", default=None, help="Retry every failed job from this queue.")
@click.option("--digest", default=None, help="With INDEX: the record's digest from 'failed list'.")
@click.option("--remove/--keep", "remove", default=None,
              help=f"Delete the record as its job is pushed, or keep it marked retried_at (env {RETRY_MODE_ENV}="
                   "remove|keep; default keep, as Ruby).")
@click.option("--again", is_flag=True, help="Also retry records that were retried before (their jobs run once more).")
@connection_options
@handle_errors
def retry(index: str | None, job_id: str | None, retry_all: bool, job_class: str | None, queue: str | None,
          digest: str | None, remove: bool | None, again: bool, redis_url: str | None, prefix: str | None) -> None:
    """Push failed jobs again; each record stays, marked retried_at (as Ruby's requeue), or with
    --remove is deleted in the same step.

    A php-resque job keeps its id and its status goes back to waiting; a job without an id is
    pushed as Ruby's {"class","args"}. A record retried before (retried_at) is refused (one
    record: exit 1; --all/--class/--queue: left alone and counted) unless --again is given.
    """
    bulk = retry_all or job_class is not None or queue is not None
    if job_id is not None and bulk:
        raise UsageProblem("give --id or --all/--class/--queue, not both")
    position = _position(index, job_id, digest, required=False)
    if job_id is None:
        _bulk_selectors(position, bulk, "--id/--all/--class/--queue")
    if queue is not None:
        wire.validate_queue_name(queue)
    failed_jobs = FailedJobs(open_resque(redis_url, prefix))
    if position is None and job_id is None:
        _bulk_summary("Retried", failed_jobs.retry_all(queue=queue, job_class=job_class, remove=remove, again=again))
        return
    found = _target(failed_jobs, position, digest, job_id)
    job = failed_jobs.retry(found, remove=remove, again=again)
    line = f"Retried failed job {job.index} ({job.job_class}) on {job.queue}"
    if job.job_id:
        line += f" as job {job.job_id}"
    if job.raw == found.raw:  # moved out (a kept record is rewritten with its retried_at)
        line += "; its record was removed"
    echo(line + _moved(job, position))


@failed.command()
@click.argument("index", required=False, metavar="[INDEX]")
@click.option("--id", "job_id", default=None, help="Remove the newest failure of the job with this id.")
@click.option("--class", "job_class", default=None, help="Remove every failed job of this class.")
@click.option("-q", "--queue", default=None, help="Remove every failed job from this queue.")
@click.option("--digest", default=None, help="With INDEX: the record's digest from 'failed list'.")
@connection_options
@handle_errors
def remove(index: str | None, job_id: str | None, job_class: str | None, queue: str | None, digest: str | None,
           redis_url: str | None, prefix: str | None) -> None:
    """Delete failed jobs: one by INDEX or --id, or all of a class and/or queue ('failed clear' for all)."""
    bulk = job_class is not None or queue is not None
    if job_id is not None and bulk:
        raise UsageProblem("give --id or --class/--queue, not both")
    position = _position(index, job_id, digest, required=False)
    if job_id is None:
        _bulk_selectors(position, bulk, "--id/--class/--queue")
    if queue is not None:
        wire.validate_queue_name(queue)
    failed_jobs = FailedJobs(open_resque(redis_url, prefix))
    if position is None and job_id is None:
        result = failed_jobs.remove_where(queue=queue, job_class=job_class)
        if not result.done and not result.gone:  # the exit-code rule (cli/main.py)
            raise Failure("nothing matched: no failed job" + (f" of class {job_class}" if job_class else "")
                          + (f" from {queue}" if queue else ""))
        _bulk_summary("Removed", result)
        return
    job = failed_jobs.remove(_target(failed_jobs, position, digest, job_id))
    what = "not JSON" if job.record is None else f"{job.job_class or 'no class'} on {job.queue or 'no queue'}"
    echo(f"Removed failed job {job.index} ({what}){_moved(job, position)}")


@failed.command()
@click.option("-q", "--queue", default=None, help="Only the failures from this queue.")
@connection_options
@handle_errors
def clear(queue: str | None, redis_url: str | None, prefix: str | None) -> None:
    """Delete every failed job (DEL failed), or only one queue's."""
    if queue is not None:
        wire.validate_queue_name(queue)
    removed = FailedJobs(open_resque(redis_url, prefix)).clear(queue)
    echo(f"Removed {removed} failed job{'s' if removed != 1 else ''}" + (f" from {queue}" if queue else ""))


@failed.command()
@connection_options
@handle_errors
def count(redis_url: str | None, prefix: str | None) -> None:
    """Print how many failed jobs there are (LLEN failed, the number resque-web shows)."""
    echo(str(FailedJobs(open_resque(redis_url, prefix)).count()))


__all__ = ["failed", "parse_since"]
