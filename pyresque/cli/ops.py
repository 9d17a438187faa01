"""``pyresque workers``, ``info`` (``stats``), ``pause``, ``resume``: the operator's view (ops.py)."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable, Sequence

import click

from ..admin import overview
from ..queue import Resque
from ..wire.terminal import escape
from .common import connection_options, echo, exit_130_on_ctrl_c, handle_errors, json_line, open_resque


def _watch_options(func: Any) -> Any:
    func = click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.1),
                        help="Seconds between refreshes with --watch.")(func)
    func = click.option("--watch", is_flag=True, help="Refresh until interrupted (JSON: one document per line).")(func)
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    return func


def _show(render: Callable[[], Any], text: Callable[[Any], list[str]], as_json: bool, watch: bool,
          interval: float) -> None:
    clear = watch and not as_json and sys.stdout.isatty()
    with exit_130_on_ctrl_c():
        while True:
            doc = render()
            if as_json:
                echo(json_line(doc))
            else:
                if clear:
                    click.echo("\x1b[H\x1b[2J", nl=False)  # ours: the only raw escape we print
                elif watch:
                    echo(time.strftime("-- %Y-%m-%d %H:%M:%S --"))
                for line in text(doc):
                    echo(line)
            if not watch:
                return
            sys.stdout.flush()
            time.sleep(interval)


@click.command()
@_watch_options
@connection_options
@handle_errors
def workers(as_json: bool, watch: bool, interval: float, redis_url: str | None, prefix: str | None) -> None:
    """List registered workers on every host: php-resque, Ruby Resque and pyresque alike.

    STATE is working, paused (Ruby's pause-all-workers key, or a local worker titled Paused) or
    idle. FLAVOUR php means php-resque's key formats (no heartbeat: pause it with USR2).
    """
    resque = open_resque(redis_url, prefix)
    _show(lambda: [dataclasses.asdict(v) for v in overview.list_workers(resque)], _workers_text, as_json, watch, interval)


def _workers_text(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(no workers registered)"]
    table = [("HOST", "PID", "QUEUES", "STATE", "JOB", "STARTED", "HEARTBEAT", "DONE/FAILED", "FLAVOUR")]
    for row in rows:
        job = row["job"]
        doing = "-" if job is None else f"{job['class']} on {job['queue']} for {_age(row['job_age'])}"
        table.append((row["host"], str(row["pid"] if row["pid"] is not None else "?"), ",".join(row["queues"]),
                      row["state"], doing, _ago(row["started_age"], row["started"]),
                      _ago(row["heartbeat_age"], row["heartbeat"]), f"{row['processed']}/{row['failed']}",
                      row["flavour"]))
    return _table(table)


@click.command()
@_watch_options
@connection_options
@handle_errors
def info(as_json: bool, watch: bool, interval: float, redis_url: str | None, prefix: str | None) -> None:
    """Queues with sizes and oldest job age, processed/failed totals, workers busy and idle."""
    resque = open_resque(redis_url, prefix)
    _show(lambda: dataclasses.asdict(overview.info(resque)), _info_text, as_json, watch, interval)


def _info_text(doc: dict[str, Any]) -> list[str]:
    lines = _table([("QUEUE", "SIZE", "OLDEST")] + [(q["name"], str(q["size"]), _age(q["oldest_age"]))
                                                     for q in doc["queues"]]) if doc["queues"] else ["(no queues)"]
    lines.append("")
    lines.append(f"pending {doc['pending']}  processed {doc['processed']}  failed {doc['failed']} "
                 f"(failed list {doc['failed_list']})")
    lines.append(f"workers {doc['workers']}: {doc['working']} working, {doc['idle']} idle"
                 + (f" on {', '.join(doc['hosts'])}" if doc["hosts"] else ""))
    if doc["paused_all"]:
        lines.append("PAUSED: pause-all-workers is set ('pyresque resume' clears it)")
    delayed = doc.get("delayed")
    if delayed and delayed["jobs"]:
        retrying = f"{delayed['retrying']}{'' if delayed['retrying_exact'] else '+'}"
        due = delayed["next_due_in"]
        when = f"next due in {_age(due)}" if due > 0 else f"earliest {_age(-due)} overdue"
        lines.append(f"delayed {delayed['jobs']} ({retrying} retrying), {when}"
                     + (f", moved by {delayed['mover']}" if delayed["mover"] else ""))
        if delayed["stalled"]:
            lines.append("NOT MOVING: due delayed jobs are waiting and nothing moves them: start a worker "
                         "(workers move them unless --no-scheduler) or pyresque-scheduler")
    return lines


def _pause_command(paused: bool) -> click.Command:
    verb = "pause" if paused else "resume"

    @click.command(name=verb)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @connection_options
    @handle_errors
    def command(as_json: bool, redis_url: str | None, prefix: str | None) -> None:
        resque: Resque = open_resque(redis_url, prefix)
        deaf = overview.set_paused(resque, paused)
        if as_json:
            echo(json_line({"paused": paused, "ignored_by": deaf}))
            return
        echo("Paused all workers (pause-all-workers = true); jobs in progress finish." if paused
             else "Resumed all workers (pause-all-workers cleared).")
        if deaf:
            echo(f"Note: {len(deaf)} php-resque worker(s) ignore this key; send them "
                 f"{'USR2' if paused else 'CONT'}: {', '.join(deaf)}")

    command.help = (("Pause every Ruby and pyresque worker: set Ruby's pause-all-workers key." if paused else
                     "Resume the workers 'pyresque pause' paused: clear Ruby's pause-all-workers key.")
                    + " php-resque workers ignore the key (use USR2/CONT).")
    return command


pause = _pause_command(True)
resume = _pause_command(False)


# -- text helpers -----------------------------------------------------------------------------
def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    rows = [[escape(cell) for cell in row] for row in rows]  # escaped first, so columns line up
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            rest = (seconds % size) // subsize
            return f"{seconds // size}{unit}{rest:02d}{sub}" if rest else f"{seconds // size}{unit}"
    return f"{seconds}s"


def _ago(seconds: float | None, raw: str | None) -> str:
    if raw is None:
        return "never"
    return f"{_age(seconds)} ago" if seconds is not None else raw
