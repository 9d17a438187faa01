"""Golden vectors captured from php-resque and Ruby Resque (copied from shared/compat), and
helpers to dump our own Redis in the same shape and normalise ids and times for comparison."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import redis

ROOT = Path(__file__).parent / "vectors"


def load(name: str) -> dict[str, Any]:
    return json.loads((ROOT / f"{name}.json").read_text())


def all_vectors() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(ROOT.glob("*/*.json")):
        yield f"{path.parent.name}/{path.stem}", json.loads(path.read_text())


def state(vector: dict[str, Any], name: str) -> dict[str, Any]:
    for step in vector["steps"]:
        if step["kind"] == "state" and step["name"] == name:
            return step["redis"]
    raise KeyError(name)


def note(vector: dict[str, Any], name: str) -> Any:
    for step in vector["steps"]:
        if step["kind"] == "note" and step["name"] == name:
            return step.get("data", step.get("text"))
    raise KeyError(name)


def states(vector: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in vector["steps"]:
        if step["kind"] == "state":
            yield step["redis"]


def dump(client: redis.Redis) -> dict[str, Any]:
    """Our database in the vectors' state shape: type, ttl, value (and json for strings)."""
    out: dict[str, Any] = {}
    for raw_key in sorted(client.keys("*")):
        key = raw_key.decode()
        kind = client.type(raw_key).decode()
        entry: dict[str, Any] = {"type": kind, "ttl": client.ttl(raw_key)}
        if kind == "string":
            value = client.get(raw_key).decode()
            entry["value"] = value
            try:
                entry["json"] = json.loads(value)
            except ValueError:
                pass
        elif kind == "list":
            entry["value"] = [v.decode() for v in client.lrange(raw_key, 0, -1)]
            entry["json"] = [_maybe_json(v) for v in entry["value"]]
        elif kind == "set":
            entry["value"] = sorted(v.decode() for v in client.smembers(raw_key))
        elif kind == "hash":
            entry["value"] = {k.decode(): v.decode() for k, v in client.hgetall(raw_key).items()}
        elif kind == "zset":
            entry["value"] = [[m.decode(), s] for m, s in client.zrange(raw_key, 0, -1, withscores=True)]
        out[key] = entry
    return out


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


_RULES = [
    (re.compile(r"[0-9a-f]{32}"), "<JOB_ID>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"), "<ISO8601+00:00>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<ISO8601Z>"),
    (re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d UTC"), "<Y/m/d H:M:S ZONE>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"), "<Y-m-d H:M:S +zzzz>"),
    (re.compile(r"(?<![\d.])\d{10}\.\d{1,7}(?![\d.])"), "<UNIX_FLOAT>"),
    (re.compile(r"(?<![\d.])\d{10}(?![\d.])"), "<UNIX_TS>"),
]


def normalise(text: str, host: str | None = None, pid: int | None = None) -> str:
    """Replace ids, timestamps and (optionally) a worker's host:pid with placeholders."""
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    if host is not None and pid is not None:
        text = text.replace(f"{host}:{pid}:", "<HOST>:<PID>:")
    return text


def normalise_state(snapshot: dict[str, Any], host: str | None = None, pid: int | None = None) -> dict[str, Any]:
    """A state with normalised key names and raw values, TTLs bucketed (-1, or 'expiring')."""
    out = {}
    for key, entry in snapshot.items():
        value = entry["value"]
        if isinstance(value, list):
            value = [normalise(v, host, pid) if isinstance(v, str) else v for v in value]
        elif isinstance(value, dict):
            value = {normalise(k, host, pid): normalise(v, host, pid) for k, v in value.items()}
        elif isinstance(value, str):
            value = normalise(value, host, pid)
        ttl = entry["ttl"]
        out[normalise(key, host, pid)] = {"type": entry["type"], "ttl": ttl if ttl < 0 else "expiring", "value": value}
    return out


def load_state(client: redis.Redis, snapshot: dict[str, Any]) -> None:
    """Write a vector's state into Redis as it was captured, byte for byte."""
    for key, entry in snapshot.items():
        value = entry["value"]
        if entry["type"] == "string":
            client.set(key, value, ex=entry["ttl"] if entry["ttl"] > 0 else None)
        elif entry["type"] == "list":
            client.rpush(key, *value)
        elif entry["type"] == "set":
            client.sadd(key, *value)
        elif entry["type"] == "hash":
            client.hset(key, mapping=value)
        elif entry["type"] == "zset":
            client.zadd(key, {member: float(score) for member, score in value})
        else:
            raise AssertionError(f"unexpected type in vector: {entry['type']}")
