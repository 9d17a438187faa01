"""The ``pyresque`` command: parse options, delegate to the API, print results.

Exit codes: 0 success; 1 the operation failed (Redis unreachable, unknown job id, job failed
under ``status --watch``, a removal by id, class or index that matched nothing); 2 bad input
(an option, an argument, a queue name); 130 a ``--watch`` stopped by Ctrl-C. Emptying commands
(``dequeue --all``, ``failed clear``) exit 0 on something already empty: what they promise, an
empty queue, holds.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from ..exceptions import InvalidStatus
from ..queue import Resque
from ..wire import payload as wire
from ..wire.terminal import escape
from .common import (
    SHOWN_CHARS,
    Failure,
    UsageProblem,
    connection_options,
    echo,
    exit_130_on_ctrl_c,
    handle_errors,
    json_line,
    open_resque,
    parse_args_option,
    parse_json_args,
    shorten,
    version_option,
)

# Sub-commands in their own modules load only when used: a worker process carries neither the
# scheduler's cron parser nor the operator views, so it forks smaller children.
_LAZY_COMMANDS = {
    "worker": "worker:worker",
    "failed": "failed:failed",
    "scheduler": "scheduler:scheduler",
    "delayed": "scheduler:delayed",
    "schedule": "scheduler:schedule",
    "pool": "pool:pool",
    "workers": "ops:workers",
    "info": "ops:info",
    "stats": "ops:info",
    "pause": "ops:pause",
    "resume": "ops:resume",
    "redis": "dev:redis_command",
    "dev": "dev:dev",
    "web": "web:web",
    "metrics": "metrics:metrics",
}


def _load(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(f"pyresque.cli.{module}"), attr)


class LazyGroup(click.Group):
    """Loads the sub-commands of ``_LAZY_COMMANDS`` on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _LAZY_COMMANDS:
            command: click.Command = _load(_LAZY_COMMANDS[name])
            return command
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@version_option
def main() -> None:
    """pyresque: Resque-compatible job queues for Python, php-resque and Ruby Resque.

    Exit codes: 0 success, 1 operation failed, 2 bad input.
    """


@main.command()
@click.argument("job_class")
@click.argument("args", nargs=-1, metavar="[ARG_JSON]...")
@click.option("-q", "--queue", default="default", show_default=True, help="Queue to push to.")
@click.option("--no-track", is_flag=True, help="Do not write a php-resque status key.")
@click.option("--ruby", "ruby_shape", is_flag=True, help="Write Ruby's bare {class,args} payload (no id, no tracking).")
@click.option("--status-prefix", default="", help="php-resque's status prefix (job:<prefix>_<id>:status).")
@click.option("--quiet", is_flag=True, help="Print only the job id.")
@click.option("--at", "at", default=None, help="Delay until this time: unix seconds or ISO-8601 (UTC unless it has an offset).")
@click.option("--in", "delay", default=None, help="Delay by this long: seconds or a duration like 90s, 5m, 1h30m.")
@connection_options
@handle_errors
def enqueue(job_class: str, args: tuple[str, ...], queue: str, no_track: bool, ruby_shape: bool,
            status_prefix: str, quiet: bool, at: str | None, delay: str | None, redis_url: str | None,
            prefix: str | None) -> None:
    """Push a job. Each ARG_JSON is one positional argument, parsed as JSON.

    \b
      pyresque enqueue PHP_Job '{"name":"x","n":1}'   # args [{"name":"x","n":1}]
      pyresque enqueue SomeJob 1 '"two"' '{"k":"v"}'  # args [1,"two",{"k":"v"}]
      pyresque enqueue SomeJob 1 --in 5m              # delayed: the workers move it when due
    """
    arguments = parse_json_args(args)
    wire.validate_queue_name(queue)
    when = None
    if at is not None or delay is not None:
        from .scheduler import parse_when

        when = parse_when(at, delay)
    resque = open_resque(redis_url, prefix)
    options: dict[str, Any] = dict(track=not no_track and not ruby_shape, status_prefix=status_prefix,
                                   shape="ruby" if ruby_shape else "php")
    if when is not None and when > time.time():
        from ..scheduling.delayed import enqueue_at

        job_id = enqueue_at(resque, when, queue, job_class, *arguments, **options)
        done = f"Scheduled {job_class} for {queue} at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(when))}"
    else:  # no delay, or a time already past: enqueue now (Ruby's enqueue_at rule)
        job_id = resque.enqueue(queue, job_class, *arguments, **options)
        done = f"Enqueued {job_class} on {queue}"
    if quiet:
        if job_id:
            echo(job_id)
    elif job_id:
        echo(f"{done}: {job_id}")
    else:
        echo(f"{done} (Ruby shape, no id)")


def _status_doc(job_id: str, packet: wire.StatusPacket, ttl: int) -> dict[str, Any]:
    return {"id": job_id, "status": packet.name, "code": packet.status, "updated": packet.updated,
            "started": packet.started, "result": packet.result, "ttl": ttl,
            "error": packet.error.as_dict() if packet.error else None}


def _print_status(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo(json_line(doc))
        return
    updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(doc["updated"])) if doc["updated"] else "-"
    line = f"{doc['id']}: {doc['status']} (code {doc['code']}), updated {updated}"
    if doc["result"] is not None:
        line += f", result {json.dumps(doc['result'])}"
    if doc["error"] is not None:
        message = doc["error"]["message"]
        line += f", error {doc['error']['exception']}" + (f": {message}" if message else "")
    elif doc["code"] == wire.FAILED:
        line += ", error unknown (no failure record found)"
    echo(line)


@main.command()
@click.argument("job_id")
@click.option("--watch", is_flag=True, help="Follow the status until it is failed or complete.")
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between checks with --watch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--status-prefix", default="", help="php-resque's status prefix, if the job was enqueued with one.")
@connection_options
@handle_errors
def status(job_id: str, watch: bool, interval: float, as_json: bool, status_prefix: str,
           redis_url: str | None, prefix: str | None) -> None:
    """Show a job's status: waiting, running, failed or complete.

    A failed job's line ends with its exception and message. Exits 1 when the job is unknown
    (untracked, or its status expired), and with --watch when the job ends failed; Ctrl-C
    ends --watch with 130.
    """
    resque = open_resque(redis_url, prefix)
    with exit_130_on_ctrl_c():
        _status(resque, job_id, watch, interval, as_json, status_prefix)


def _status(resque: Resque, job_id: str, watch: bool, interval: float, as_json: bool, status_prefix: str) -> None:
    key = resque.keys.status(job_id, status_prefix)
    last: tuple[Any, ...] | None = None
    while True:
        try:
            packet = resque.status(job_id, status_prefix)
        except InvalidStatus as exc:
            raise Failure(f"job {job_id}: {exc}") from None
        if packet is None:
            raise Failure(f"job {job_id} is not tracked: unknown id, enqueued without tracking, or expired")
        doc = _status_doc(job_id, packet, resque.store.status_ttl(key))
        if (packet.status, packet.updated, json.dumps(packet.result)) != last:
            _print_status(doc, as_json)
            last = (packet.status, packet.updated, json.dumps(packet.result))
        if not watch or packet.final:
            if watch and packet.status == wire.FAILED:
                sys.exit(1)
            return
        time.sleep(interval)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@handle_errors
def queues(as_json: bool, redis_url: str | None, prefix: str | None) -> None:
    """List known queues with their sizes."""
    sizes = open_resque(redis_url, prefix).queues()
    if as_json:
        echo(json_line(sizes))
        return
    if not sizes:
        echo("(no queues)")
    names = {name: escape(name) for name in sizes}  # escaped first, so the sizes line up
    width = max((len(shown) for shown in names.values()), default=0)
    for name, size in sizes.items():
        echo(f"{names[name].ljust(width)}  {size}")


@main.command()
@click.argument("queue")
@click.option("--start", default=0, show_default=True, type=click.IntRange(min=0), help="First index.")
@click.option("-n", "--count", default=10, show_default=True, type=click.IntRange(min=1), help="How many jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per job (always whole).")
@click.option("--full", is_flag=True, help=f"Print each job whole, not cut at {SHOWN_CHARS} characters.")
@connection_options
@handle_errors
def peek(queue: str, start: int, count: int, as_json: bool, redis_url: str | None, prefix: str | None,
         full: bool = False) -> None:
    """Show jobs waiting in QUEUE without taking them."""
    jobs = open_resque(redis_url, prefix).peek(queue, start, count)
    for job in jobs:
        if as_json:
            echo(json_line({"index": job.index, "payload": job.payload, "error": job.error,
                            "raw": None if job.payload else job.raw.decode("utf-8", "backslashreplace")}))
        elif job.payload is None:
            echo(f"{job.index}: (unreadable: {job.error}) {job.raw[:200]!r}")
        else:
            args = json.dumps(job.payload["args"])
            if not full:  # a payload is anyone's to fill: a 10 MB one printed whole buries the listing
                args = shorten(args)
            echo(f"{job.index}: {job.job_class if full else shorten(job.job_class or '-', 200)} {args} "
                 f"id={job.job_id or '-'}")


@main.command()
@click.argument("queue")
@click.option("--class", "job_class", default=None, help="Remove jobs of this class.")
@click.option("--args", "args_json", default=None, help="With --class: only jobs whose args equal this JSON list.")
@click.option("--id", "job_id", default=None, help="Remove the job with this id.")
@click.option("--all", "remove_all", is_flag=True, help="Remove every job and the queue itself.")
@connection_options
@handle_errors
def dequeue(queue: str, job_class: str | None, args_json: str | None, job_id: str | None, remove_all: bool,
            redis_url: str | None, prefix: str | None) -> None:
    """Remove jobs from QUEUE by class, class and args, or id (or --all)."""
    wire.validate_queue_name(queue)
    args = parse_args_option(args_json, job_class)
    selectors = job_class is not None or job_id is not None
    if remove_all == selectors:
        raise UsageProblem("give --class, --id, or --all (and not --all with the others)")
    resque = open_resque(redis_url, prefix)
    if remove_all:
        removed = resque.delete_queue(queue)
    else:
        removed = resque.remove(queue, job_class=job_class, args=args, job_id=job_id)
        if not removed:  # the exit-code rule: a removal that names its target and finds none failed
            raise Failure(f"nothing matched: no job {_selected(job_class, args, job_id)} in {queue}")
    echo(f"Removed {removed} job{'s' if removed != 1 else ''} from {queue}")


def _selected(job_class: str | None, args: list[Any] | None, job_id: str | None) -> str:
    parts = [f"with id {job_id}"] if job_id is not None else []
    if job_class is not None:
        parts.append(f"of class {job_class}" + (f" with args {json.dumps(args)}" if args is not None else ""))
    return " and ".join(parts)


def worker_main() -> Any:
    """Entry point of ``pyresque-worker``."""
    return _load("worker:worker_main")()


def scheduler_main() -> Any:
    """Entry point of ``pyresque-scheduler``."""
    return _load("scheduler:scheduler_main")()

