"""Recurring schedules: resque-scheduler's config format, cron and interval ticks, persistence.

A schedule is resque-scheduler's config hash (README "Static schedules")::

    {"class": "Report", "queue": "low", "cron": "0 5 * * *", "args": [1], "description": "…"}
    {"class": "Ping", "queue": "default", "every": "30s"}

``cron`` is rufus-scheduler's syntax: five fields, or six with *seconds first*, optionally
followed by a time zone (``"0 5 * * * Europe/Stockholm"``); without one it is read in the
server's local time, as Ruby does. ``every`` is a rufus duration (``"90"``, ``"30s"``, ``"5m"``,
``"1h30m"``, ``"1d"``, ``"1w"``), or ``[duration, {"first_in": duration}]``. ``args``: a hash is one
argument, a list is the argument list, anything else one argument (Ruby's ``Array(args)``).

Dynamic schedules live where resque-scheduler keeps them: ``persistent_schedules`` (name -> JSON
config) plus ``schedules_changed``, so Ruby's scheduler runs them too and resque-web lists them.
pyresque always stores ``"class"`` and ``"queue"`` (resque-web fails on a schedule without a
queue whose class Ruby cannot load).

Ticks: the last tick a schedule fired is ``delayed:last_enqueued_at`` (Ruby's ``Time#to_s`` of
the tick; resque-web shows it as "Last Enqueued"). A tick fires once it is due; after downtime
only the latest missed tick fires, once. A schedule never fired starts counting when the
scheduler first sees it (rufus: ``every`` restarts counting at every start).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from croniter import CroniterBadDateError, croniter

from .. import defaults
from ..exceptions import InvalidPayload, InvalidQueueName, PyresqueError
from ..store.scheduler_store import SchedulerStore
from ..wire import payload as wire
from ..wire import untrusted

if TYPE_CHECKING:
    from ..queue import Resque

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # pragma: no cover - Python < 3.9 is not supported anyway
    ZoneInfo = None  # type: ignore[assignment,misc]
    ZoneInfoNotFoundError = KeyError  # type: ignore[assignment,misc]


class InvalidSchedule(PyresqueError, ValueError):
    """A schedule config that cannot be run: the message names the schedule and the problem."""


# rufus-scheduler's duration units (Rufus::Scheduler.parse_duration): a month is 30 days.
_UNITS = {"y": 365 * 86400, "M": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|[yMwdhms]?)")


def parse_duration(text: Any) -> float:
    """Seconds in a rufus duration (``"90"``, ``"1.5s"``, ``"1h30m"``); :class:`ValueError` if none."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str) and text.strip():
        spec = text.strip()
        pos, value = 0, 0.0
        while pos < len(spec):
            match = _DURATION.match(spec, pos)
            if match is None or match.end() == pos:
                raise ValueError(f"{text!r} is not a duration (like 90, 30s, 5m, 1h30m, 1d)")
            value += float(match.group(1)) * _UNITS[match.group(2) or "s"]
            pos = match.end()
    else:
        raise ValueError(f"{text!r} is not a duration (like 90, 30s, 5m, 1h30m, 1d)")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration >= 0")
    return value


@dataclass(frozen=True)
class Cron:
    """A rufus cron line: croniter's expression, whether seconds lead it, and its zone."""

    expression: str
    seconds: bool
    zone: tzinfo | None

    @classmethod
    def parse(cls, line: str) -> Cron:
        fields = line.split()
        zone: tzinfo | None = None
        if len(fields) in (6, 7) and _looks_like_zone(fields[-1]):
            zone = _zone(fields[-1])
            fields = fields[:-1]
        if len(fields) not in (5, 6):
            raise ValueError(f"cron {line!r} needs 5 fields (or 6 with seconds first), and optionally a time zone")
        expression = " ".join(fields)
        seconds = len(fields) == 6
        if not croniter.is_valid(expression, second_at_beginning=seconds):
            raise ValueError(f"cron {line!r} is not a valid cron expression")
        cron = cls(expression, seconds, zone)
        years = defaults.CRON_HORIZON_YEARS
        try:
            cron._iter(time.time(), max_years_between_matches=years).get_next(float)
        except (CroniterBadDateError, OverflowError):
            raise ValueError(f"cron {line!r} never fires: no time matches it within {years} years") from None
        return cron

    def _iter(self, start: float, **options: Any) -> Any:
        zone = self.zone or datetime.now().astimezone().tzinfo
        return croniter(self.expression, datetime.fromtimestamp(start, zone), second_at_beginning=self.seconds,
                        **options)

    def next_after(self, t: float) -> float:
        return float(self._iter(t).get_next(float))

    def latest_at_or_before(self, t: float) -> float:
        tick = float(self._iter(math.floor(t) + 1).get_prev(float))
        return tick if tick <= t else float(self._iter(tick).get_prev(float))


def _looks_like_zone(token: str) -> bool:
    return token in ("UTC", "GMT", "Z") or bool(re.match(r"^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)+$", token))


def _zone(name: str) -> tzinfo:
    if name in ("UTC", "GMT", "Z"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class Schedule:
    """One recurring job, validated."""

    name: str
    job_class: str
    queue: str
    args: list[Any]
    cron: Cron | None = None
    every: float | None = None
    first_in: float | None = None
    description: str | None = None
    config: Mapping[str, Any] | None = None

    @property
    def recurring(self) -> bool:
        """False for a config with neither cron nor every: Ruby schedules it for "Queue now" only."""
        return self.cron is not None or self.every is not None

    @property
    def interval_text(self) -> str:
        if self.config is None:
            return ""
        for kind in ("cron", "every"):
            if self.config.get(kind) is not None:
                value = self.config[kind]
                return f"{kind}: {value[0] if isinstance(value, list) else value}"
        return "(no cron/every: manual only)"

    def next_tick(self, last: float | None, anchor: float) -> float:
        """When the next tick is due: after the last fired one, or after ``anchor`` if none."""
        if self.cron is not None:
            return self.cron.next_after(last if last is not None else anchor)
        assert self.every is not None
        if last is None:
            return anchor + (self.first_in if self.first_in is not None else self.every)
        return last + self.every

    def latest_due(self, due: float, now: float) -> float:
        """The tick to record when ``due`` (<= now) fires at ``now``: missed ticks collapse into
        one, so a schedule fires once after downtime. Cron: the latest cron time at or before
        ``now``. Every: ``due`` when on time; after missed ticks, ``now`` (the interval restarts
        from the catch-up, rather than firing again moments later to keep the old phase)."""
        if self.cron is not None:
            return max(due, self.cron.latest_at_or_before(now))
        assert self.every is not None
        return due if now - due < self.every else now

    def payload(self, now: float | None = None) -> dict[str, Any]:
        """The job each tick pushes: php-resque's shape with a fresh id, untracked (a recurring
        job's id is known to no one, and Ruby workers would leave a WAITING key forever)."""
        return wire.build_payload(self.job_class, self.args, wire.new_job_id(), "", now)


def parse_schedule(name: str, config: Any) -> Schedule:
    """Validate one config hash; :class:`InvalidSchedule` names the schedule and the problem."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidSchedule(f"schedule name must be a non-empty string, not {name!r}")
    if not isinstance(config, Mapping):
        raise InvalidSchedule(f"schedule {name!r}: config must be a mapping, not {type(config).__name__}")
    job_class = config.get("class", name)
    if not isinstance(job_class, str) or not job_class:
        raise InvalidSchedule(f"schedule {name!r}: 'class' must be a non-empty string")
    queue = config.get("queue")
    if queue is None:
        raise InvalidSchedule(f"schedule {name!r}: 'queue' is required (pyresque cannot take it from a Ruby class)")
    try:
        wire.validate_queue_name(queue)
    except InvalidQueueName as exc:
        raise InvalidSchedule(f"schedule {name!r}: {exc}") from None
    if untrusted.encodable(job_class) != job_class or untrusted.encodable(queue) != queue:
        raise InvalidSchedule(f"schedule {name!r}: 'class' or 'queue' has a lone UTF-16 surrogate, which UTF-8 cannot carry")
    args = _args(config.get("args"))
    try:  # as a worker will read them: strict JSON, UTF-8, not too deep
        untrusted.loads(json.dumps(args, allow_nan=False), "args")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidSchedule(f"schedule {name!r}: args are not JSON a worker can read: {exc}") from None
    cron = every = first_in = None
    if config.get("cron") is not None and config.get("every") is not None:
        raise InvalidSchedule(f"schedule {name!r}: give 'cron' or 'every', not both")
    if config.get("cron") is not None:
        line = _value(config["cron"])
        if not isinstance(line, str):
            raise InvalidSchedule(f"schedule {name!r}: cron must be a string, not {line!r}")
        try:
            cron = Cron.parse(line)
        except ValueError as exc:
            raise InvalidSchedule(f"schedule {name!r}: {exc}") from None
    elif config.get("every") is not None:
        try:
            every = parse_duration(_value(config["every"]))
            options = _options(config["every"])
            first_in = parse_duration(options["first_in"]) if options.get("first_in") is not None else None
        except ValueError as exc:
            raise InvalidSchedule(f"schedule {name!r}: every: {exc}") from None
        if every < 1:
            raise InvalidSchedule(f"schedule {name!r}: every must be at least 1 second (last_enqueued_at has 1 s precision)")
    description = config.get("description")
    return Schedule(name, job_class, queue, args, cron, every, first_in,
                    description if isinstance(description, str) else None, dict(config))


def _args(value: Any) -> list[Any]:
    """Ruby's rule: a Hash is one argument, otherwise ``Array(args)``."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _value(spec: Any) -> Any:
    return spec[0] if isinstance(spec, list) and spec else spec


def _options(spec: Any) -> dict[str, Any]:
    if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], Mapping):
        return dict(spec[1])
    return {}


def config_for(job_class: str, queue: str, cron: str | None = None, every: str | None = None,
               args: Any = None, description: str | None = None) -> dict[str, Any]:
    """A config hash in the key order resque-scheduler's docs and stored values use."""
    config: dict[str, Any] = {"class": job_class}
    if cron is not None:
        config["cron"] = cron
    if every is not None:
        config["every"] = every
    config["queue"] = queue
    if args is not None:
        config["args"] = args
    if description is not None:
        config["description"] = description
    return config


# -- persistence ------------------------------------------------------------------------------
def set_schedule(resque: Resque, name: str, config: Mapping[str, Any]) -> Schedule:
    """Validate and persist a schedule (resque-scheduler's ``set_schedule`` with ``persist``)."""
    schedule = parse_schedule(name, config)
    if not schedule.recurring:
        raise InvalidSchedule(f"schedule {name!r}: give 'cron' or 'every'")
    stored = {key: value for key, value in config.items() if key != "persist"}
    stored.setdefault("class", schedule.job_class)
    SchedulerStore(resque.redis, resque.keys).set_schedule(name, wire.encode_ruby(stored))
    return schedule


def remove_schedule(resque: Resque, name: str) -> bool:
    """Remove a persisted schedule; returns whether it existed. Its last_enqueued_at stays (Ruby's rule)."""
    return SchedulerStore(resque.redis, resque.keys).remove_schedule(name)


@dataclass(frozen=True)
class StoredSchedule:
    """A persisted schedule as read: the parsed schedule, or the reason it cannot run."""

    name: str
    raw: bytes
    schedule: Schedule | None
    error: str | None
    last_enqueued_at: str | None


def parse_stored(name: bytes, raw: bytes) -> Schedule:
    """One ``persistent_schedules`` entry, read as untrusted (another program may have written it);
    :class:`InvalidSchedule` names it and says why it cannot run."""
    try:
        text = untrusted.text_of(name, "schedule name", 64 * 1024)
    except InvalidPayload as exc:
        raise InvalidSchedule(f"schedule {display_name(name)}: {exc}") from None
    try:
        config = untrusted.loads(raw, "config")
    except InvalidPayload as exc:
        raise InvalidSchedule(f"schedule {text!r}: {exc}") from None
    return parse_schedule(text, config)


def display_name(name: bytes | str) -> str:
    """A schedule name as one printable line: escapes for what is not printable UTF-8."""
    text = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name
    return repr(text) if not text.isprintable() else text


def stored_schedules(resque: Resque) -> list[StoredSchedule]:
    """Every persisted schedule, by name; unreadable ones carry the reason instead, and a key of
    the wrong type is a row of its own (named ``-``)."""
    store = SchedulerStore(resque.redis, resque.keys)
    last = store.last_enqueued()
    out = []
    for name, raw in sorted(store.persistent_schedules().items()):
        try:
            schedule: Schedule | None = parse_stored(name, raw)
            error = None
        except InvalidSchedule as exc:
            schedule, error = None, str(exc)
        out.append(StoredSchedule(name.decode("utf-8", "backslashreplace"), raw, schedule, error,
                                  last.get(name.decode("utf-8", "replace"))))
    out += [StoredSchedule("-", b"", None, problem, None) for problem in store.take_problems()]
    return out


def load_schedule_file(path: str | Path) -> dict[str, Schedule]:
    """Read resque-scheduler's schedule file: YAML (needs PyYAML) or JSON, name -> config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidSchedule(f"cannot read schedule file {path}: {exc.strerror}") from None
    data: Any
    if path.suffix.lower() in (".yml", ".yaml"):
        try:
            import yaml
        except ImportError:
            raise InvalidSchedule(f"{path}: reading YAML needs PyYAML (pip install pyyaml); "
                                  "or write the schedule as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidSchedule(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidSchedule(f"{path}: not valid JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidSchedule(f"{path}: expected a mapping of schedule name -> config")
    return {str(name): parse_schedule(str(name), config) for name, config in data.items()}


def next_run(schedule: Schedule, last_enqueued_at: str | None, anchor: float | None = None,
             now: float | None = None) -> float | None:
    """When ``schedule`` fires next, as the master scheduler decides it (``None``: manual only).

    ``anchor``: when the scheduler first saw it (an ``every`` never fired counts from there);
    without one (no scheduler runs it), as if one started ``now``. A time in the past means due:
    the next pass fires it."""
    if not schedule.recurring:
        return None
    now = time.time() if now is None else now
    try:
        last = parse_last(last_enqueued_at)
    except ValueError:
        last = None
    if last is not None:
        last = min(last, now)
    try:
        return schedule.next_tick(last, now if anchor is None else anchor)
    except (ValueError, OverflowError):  # croniter finds no tick: it cannot fire
        return None


def parse_last(value: str | None) -> float | None:
    """A ``delayed:last_enqueued_at`` value (Ruby's ``Time#to_s``, any offset) as unix time."""
    if not value:
        return None
    return wire.parse_time(value)


def format_last(t: float) -> str:
    """Ruby's ``Time#to_s`` in UTC, as written to ``delayed:last_enqueued_at``."""
    return wire.ruby_time(t)
