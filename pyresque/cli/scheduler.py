"""``pyresque scheduler`` / ``pyresque-scheduler``, ``pyresque delayed …`` and ``pyresque schedule …``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from .. import defaults, log
from ..exceptions import ConfigurationError
from ..scheduling.delayed import DelayedJob, InvalidDelay, count_delayed, iter_delayed, remove_delayed
from ..scheduling.listing import list_schedules
from ..scheduling.scheduler import Scheduler, SchedulerOptions
from ..scheduling.schedules import (
    InvalidSchedule,
    config_for,
    parse_duration,
    remove_schedule,
    set_schedule,
)
from ..wire import payload as wire
from .common import (
    EnvNamingCommand,
    Failure,
    UsageProblem,
    connection_options,
    echo,
    handle_errors,
    json_line,
    open_resque,
    parse_args_option,
    parse_log_format,
    version_option,
)

_OFF = ("", "0", "false", "no", "off")


def parse_when(at: str | None, delay: str | None) -> float | None:
    """``--at`` / ``--in`` as a unix time (``None`` when neither is given); bad input exits 2."""
    if at is not None and delay is not None:
        raise UsageProblem("give --at or --in, not both")
    if delay is not None:
        try:
            seconds = parse_duration(delay.strip())
        except ValueError:
            raise UsageProblem(f"--in {delay!r}: expected seconds >= 0 or a duration like 90s, 5m, 1h30m") from None
        return time.time() + seconds
    if at is not None:
        text = at.strip()
        try:
            return float(text)
        except ValueError:
            pass
        parsed = wire.parse_time(text)
        if parsed is None:
            raise UsageProblem(f"--at {at!r}: expected unix seconds or an ISO-8601 time (UTC unless it has an offset)")
        return parsed
    return None


def _iso(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    except (OverflowError, OSError, ValueError):  # a bucket named by a number no clock reaches
        return f"@{t}"


# -- the scheduler process --------------------------------------------------------------------
@click.command(cls=EnvNamingCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--schedule", "schedule_file", envvar="PYRESQUE_SCHEDULE", default=None,
              help="Schedule file (resque-scheduler's YAML, or JSON): name -> {class, queue, cron|every, args}.")
@click.option("--interval", envvar="RESQUE_SCHEDULER_INTERVAL", type=click.FloatRange(min=0.05),
              default=defaults.SCHEDULER_INTERVAL, show_default=True,
              help="Seconds between passes (env RESQUE_SCHEDULER_INTERVAL, as resque-scheduler).")
@click.option("--lock-timeout", envvar="LOCK_TIMEOUT", type=click.IntRange(min=1), default=defaults.SCHEDULER_LOCK_TTL,
              show_default=True, help="Master lock TTL in seconds: how long a dead master blocks the others (env LOCK_TIMEOUT).")
@click.option("--batch-size", envvar="DELAYED_REQUEUE_BATCH_SIZE", type=click.IntRange(min=1),
              default=defaults.DELAYED_BATCH, show_default=True,
              help="Delayed items moved per atomic step (env DELAYED_REQUEUE_BATCH_SIZE).")
@click.option("--dynamic/--no-dynamic", envvar="DYNAMIC_SCHEDULE", default=True, show_default=True,
              help="Also run the schedules persisted in Redis (persistent_schedules) (env DYNAMIC_SCHEDULE).")
@click.option("--pidfile", envvar="PIDFILE", default=None, help="Write the scheduler's pid here (env PIDFILE).")
@click.option("--logging", "log_format", envvar="LOGGING", default="console", help="console or json (env LOGGING).")
@click.option("--vverbose", envvar="VVERBOSE", default=None, help="Debug logging (env VVERBOSE).")
@connection_options
@version_option
@handle_errors
def scheduler(schedule_file: str | None, interval: float, lock_timeout: int, batch_size: int, dynamic: bool,
              pidfile: str | None, log_format: str, vverbose: str | None, redis_url: str | None,
              prefix: str | None) -> None:
    """Move due delayed jobs to their queues and fire recurring schedules.

    Takes resque-scheduler's master lock, so it runs alongside Ruby's and other pyresque
    schedulers: only one of them works at a time. QUIT/TERM/INT stop it (releasing the lock),
    USR1 logs the schedules, USR2 reloads them.
    """
    if lock_timeout <= interval:
        raise UsageProblem(f"--lock-timeout ({lock_timeout}s) must be longer than --interval ({interval}s), "
                           "or the lock expires between passes")
    log.configure(parse_log_format(log_format),
                  "debug" if vverbose and vverbose.strip().lower() not in _OFF else "info")
    resque = open_resque(redis_url, prefix)
    options = SchedulerOptions(interval=interval, lock_ttl=lock_timeout, batch=batch_size,
                               schedule_file=schedule_file, dynamic=dynamic, pidfile=pidfile)
    try:
        code = Scheduler(resque, options).run()
    except InvalidSchedule as exc:
        raise UsageProblem(str(exc)) from None
    except ConfigurationError as exc:
        raise UsageProblem(str(exc)) from None
    sys.exit(code)


def scheduler_main(*args: Any) -> Any:
    """Entry point of ``pyresque-scheduler``."""
    return scheduler(prog_name="pyresque-scheduler")


# -- delayed jobs -----------------------------------------------------------------------------
@click.group()
def delayed() -> None:
    """Inspect and remove delayed jobs (resque-scheduler's delayed queue)."""


def _delayed_doc(job: DelayedJob) -> dict[str, Any]:
    return {"timestamp": job.timestamp, "at": _iso(job.timestamp), "class": job.job_class, "args": job.args,
            "queue": job.queue, "id": job.job_id, "error": job.error,
            "raw": None if job.item else job.raw.decode("utf-8", "backslashreplace")}


def _delayed_line(job: DelayedJob) -> str:
    """One row: a job, or what is broken (an item that is not one, a key of the wrong type)."""
    when = _iso(job.timestamp) if job.member else "-"
    if job.item is None:
        raw = f" {job.raw[:200]!r}" if job.raw else ""
        return f"{when}  (broken: {job.error}){raw}"
    line = f"{when}  {job.queue}  {job.job_class} {json.dumps(job.args)} id={job.job_id or '-'}"
    if job.error:  # its side payload: the job is listed, its id cannot be read
        line += f"  (broken: {job.error})"
    return line


@delayed.command("list")
@click.option("--class", "job_class", default=None, help="Only jobs of this class.")
@click.option("--queue", default=None, help="Only jobs for this queue.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per job.")
@connection_options
@handle_errors
def delayed_list(job_class: str | None, queue: str | None, limit: int | None, as_json: bool,
                 redis_url: str | None, prefix: str | None) -> None:
    """List delayed jobs, earliest first (ids shown for jobs that keep one); what cannot be read
    is listed as broken, one line each, and the rest is listed all the same."""
    shown = 0
    for job in iter_delayed(open_resque(redis_url, prefix)):
        if (job_class is not None and job.job_class != job_class) or (queue is not None and job.queue != queue):
            continue
        echo(json_line(_delayed_doc(job)) if as_json else _delayed_line(job))
        shown += 1
        if limit is not None and shown >= limit:
            break
    if not shown and not as_json:
        echo("(no delayed jobs)")


@delayed.command("count")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@handle_errors
def delayed_count(as_json: bool, redis_url: str | None, prefix: str | None) -> None:
    """Count delayed jobs and the timestamps they wait for."""
    timestamps, jobs, broken = count_delayed(open_resque(redis_url, prefix))
    if as_json:
        echo(json_line({"jobs": jobs, "timestamps": timestamps, **({"broken": broken} if broken else {})}))
        return
    echo(f"{jobs} delayed job{'s' if jobs != 1 else ''} at {timestamps} timestamp{'s' if timestamps != 1 else ''}")
    for problem in broken:
        echo(f"(broken: {problem})")


@delayed.command("remove")
@click.option("--class", "job_class", default=None, help="Remove delayed jobs of this class.")
@click.option("--args", "args_json", default=None, help="With --class: only jobs whose args equal this JSON list.")
@click.option("--queue", default=None, help="With --class: only jobs for this queue.")
@click.option("--id", "job_id", default=None, help="Remove the delayed job with this id.")
@connection_options
@handle_errors
def delayed_remove(job_class: str | None, args_json: str | None, queue: str | None, job_id: str | None,
                   redis_url: str | None, prefix: str | None) -> None:
    """Remove delayed jobs by class (and args, queue) or by id; their status keys go too."""
    args = parse_args_option(args_json, job_class)
    if job_class is None and job_id is None:
        raise UsageProblem("give --class (with optional --args/--queue) or --id")
    removed = remove_delayed(open_resque(redis_url, prefix), job_class=job_class, args=args, job_id=job_id, queue=queue)
    if not removed:  # the exit-code rule (cli/main.py): a removal that matched nothing failed
        what = f"with id {job_id}" if job_id is not None else f"of class {job_class}"
        raise Failure(f"nothing matched: no delayed job {what}" + (f" for {queue}" if queue else ""))
    echo(f"Removed {removed} delayed job{'s' if removed != 1 else ''}")


# -- recurring schedules ----------------------------------------------------------------------
@click.group()
def schedule() -> None:
    """Recurring schedules persisted in Redis (resque-scheduler's persistent_schedules)."""


@schedule.command("list")
@click.option("--file", "schedule_file", default=None, help="Also show (and check) the schedules of this file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per schedule.")
@connection_options
@handle_errors
def schedule_list(schedule_file: str | None, as_json: bool, redis_url: str | None, prefix: str | None) -> None:
    """List schedules: persisted ones, a file's (--file) and those the running scheduler loaded,
    each with its source, last enqueue and next run."""
    try:
        rows = [listed.as_dict() for listed in list_schedules(open_resque(redis_url, prefix), schedule_file)]
    except InvalidSchedule as exc:
        raise UsageProblem(str(exc)) from None
    for row in rows:
        echo(json_line(row) if as_json else _schedule_line(row))
    if not rows and not as_json:
        echo("(no schedules)")


def _schedule_line(row: dict[str, Any]) -> str:
    if row["error"]:
        return f"{row['name']}  (broken: {row['error']})"
    config = row["config"]
    interval = next((f"{k}: {config[k]}" for k in ("cron", "every") if config.get(k) is not None), "manual only")
    line = f"{row['name']}  {interval}  {config.get('class', row['name'])} {json.dumps(config.get('args', []), default=str)} " \
           f"-> {config.get('queue')}"
    if row["source"] == "file":
        line += f"  (file {row['file']})" if row["file"] and row["loaded_by"] else "  (file)"
    if row["last_enqueued_at"]:
        line += f"  last enqueued {row['last_enqueued_at']}"
    if row["next_run"] is not None:
        line += f"  next run {_iso(row['next_run'])}"
    if row["loaded_by"]:
        line += f"  [running: scheduler {row['loaded_by']}]"
    return line


@schedule.command("add")
@click.argument("name")
@click.option("--class", "job_class", required=True, help="Job class to enqueue.")
@click.option("-q", "--queue", required=True, help="Queue to push to (always stored: resque-web needs it).")
@click.option("--cron", default=None, help="rufus cron line: 5 fields, or 6 with seconds first, optional time zone.")
@click.option("--every", default=None, help="Interval: seconds or a duration like 30s, 5m, 1h30m, 1d.")
@click.option("--args", "args_json", default=None, help="JSON: a list is the argument list, anything else one argument.")
@click.option("--description", default=None, help="Shown by resque-web.")
@connection_options
@handle_errors
def schedule_add(name: str, job_class: str, queue: str, cron: str | None, every: str | None, args_json: str | None,
                 description: str | None, redis_url: str | None, prefix: str | None) -> None:
    """Add or replace the recurring schedule NAME (the master scheduler picks it up)."""
    if (cron is None) == (every is None):
        raise UsageProblem("give --cron or --every (one of them)")
    args = None
    if args_json is not None:
        try:
            args = json.loads(args_json)
        except ValueError as exc:
            raise UsageProblem(f"--args is not JSON: {exc}") from None
    try:
        set_schedule(open_resque(redis_url, prefix), name,
                     config_for(job_class, queue, cron=cron, every=every, args=args, description=description))
    except InvalidSchedule as exc:
        raise UsageProblem(str(exc)) from None
    echo(f"Schedule {name}: {'cron ' + cron if cron else 'every ' + str(every)} {job_class} -> {queue}")


@schedule.command("remove")
@click.argument("name")
@connection_options
@handle_errors
def schedule_remove(name: str, redis_url: str | None, prefix: str | None) -> None:
    """Remove the persisted schedule NAME."""
    if not remove_schedule(open_resque(redis_url, prefix), name):
        raise Failure(f"no persisted schedule named {name!r}")
    echo(f"Removed schedule {name}")


__all__ = ["delayed", "parse_when", "schedule", "scheduler", "scheduler_main", "InvalidDelay"]
