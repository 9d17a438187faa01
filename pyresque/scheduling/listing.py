"""What ``schedule list`` shows: the schedules of a file, the persisted ones and the ones the
running master scheduler loaded (its ``--schedule`` file lives in that process only), each with
where it comes from and when it runs next."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidPayload
from ..store.scheduler_store import SchedulerStore
from ..wire import payload as wire
from .schedules import InvalidSchedule, Schedule, display_name, load_schedule_file, next_run, parse_schedule, stored_schedules

if TYPE_CHECKING:
    from ..queue import Resque


@dataclass(frozen=True)
class ListedSchedule:
    name: str
    source: str  # "file" or "redis" (persistent_schedules)
    config: Any  # the config object, or the stored text when it is not one
    error: str | None
    last_enqueued_at: str | None
    next_run: float | None  # unix time; None: manual only, broken, or never fires
    loaded_by: str | None  # host:pid of the running master scheduler that runs it
    file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_schedules(resque: Resque, schedule_file: str | Path | None = None,
                   now: float | None = None) -> list[ListedSchedule]:
    """``schedule_file`` (read and checked here), then ``persistent_schedules``, then what the
    running scheduler loaded and neither of those shows (its own file's schedules). A running
    scheduler's schedule gets the next run it computes: an ``every`` never fired counts from
    when that scheduler first saw it; otherwise from ``now``. :class:`InvalidSchedule` for a
    broken ``schedule_file``."""
    now = time.time() if now is None else now
    store = SchedulerStore(resque.redis, resque.keys)
    loaded: dict[str, wire.LoadedSchedule] = {}
    unreadable: list[ListedSchedule] = []
    for raw_name, raw in sorted(store.loaded().items()):
        name = raw_name.decode("utf-8", "backslashreplace")
        try:
            loaded[name] = wire.decode_loaded_schedule(raw)
        except InvalidPayload as exc:
            unreadable.append(ListedSchedule(display_name(raw_name), "scheduler", None, str(exc), None, None, None))
    unreadable += [ListedSchedule("-", "scheduler", None, problem, None, None, None) for problem in store.take_problems()]
    last = store.last_enqueued()
    rows: list[ListedSchedule] = []
    shown: set[str] = set()

    def row(name: str, source: str, schedule: Schedule | None, config: Any, error: str | None,
            file: str | None) -> ListedSchedule:
        entry = loaded.get(name)
        running = entry if entry is not None and entry.source == source else None
        if running is not None:
            shown.add(name)
        upcoming = next_run(schedule, last.get(name), running.anchor if running else None, now) if schedule else None
        return ListedSchedule(name, source, config, error, last.get(name), upcoming,
                              running.scheduler if running else None, file or (running.file if running else None))

    if schedule_file is not None:
        for name, parsed in sorted(load_schedule_file(schedule_file).items()):
            rows.append(row(name, "file", parsed, parsed.config, None, str(schedule_file)))
    for stored in stored_schedules(resque):
        config = stored.schedule.config if stored.schedule else stored.raw.decode("utf-8", "backslashreplace")
        rows.append(row(stored.name, "redis", stored.schedule, config, stored.error, None))
    for name, entry in loaded.items():
        if name in shown:
            continue
        try:
            schedule: Schedule | None = parse_schedule(name, entry.config)
            error = None
        except InvalidSchedule as exc:
            schedule, error = None, str(exc)
        rows.append(row(name, entry.source, schedule, entry.config, error, entry.file))
    return rows + unreadable
