"""``pyresque metrics``: the per-class table, JSON, the window and its bad input."""

from __future__ import annotations

import json

from support import cli


def minute_now(r) -> int:
    return int(r.time()[0]) // 60 * 60


def write_minute(r, start: int, fields: dict[str, float]) -> None:
    """A minute as workers write it (their writing is tests/admin/test_metrics.py's)."""
    r.hset(f"resque:pyresque_metrics:{start}", mapping=fields)


def test_the_table_sums_the_window_per_class(redis_url, r):
    now = minute_now(r)
    write_minute(r, now, {"Mail|p": 3, "Mail|f": 1, "Mail|us": 60_000, "Mail|b1": 3})  # 3 runs in (5, 10] ms
    write_minute(r, now - 60, {"Mail|p": 1, "Mail|us": 40_000, "Mail|b3": 1, "Report|p": 2, "Report|us": 5_000_000,
                               "Report|b8": 2})
    write_minute(r, now - 7200, {"Old|p": 1, "Old|us": 1000, "Old|b0": 1})  # outside --since 1h
    done = cli(redis_url, "metrics")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["CLASS", "PROCESSED", "FAILED", "MEAN", "P50", "P95"]
    assert lines[1].split() == ["Mail", "4", "1", "25.0", "ms", "8.3", "ms", "45.0", "ms"]
    assert lines[2].split() == ["Report", "2", "0", "2.50", "s", "1.75", "s", "2.42", "s"]
    assert "Old" not in done.stdout
    assert "Old" in cli(redis_url, "metrics", "--since", "3h").stdout


def test_json_by_minute_for_one_class(redis_url, r):
    now = minute_now(r)
    write_minute(r, now, {"Mail|p": 2, "Mail|us": 14_000, "Mail|b1": 2, "Other|p": 1, "Other|us": 1000, "Other|b0": 1})
    write_minute(r, now - 120, {"Mail|p": 1, "Mail|f": 1, "Mail|us": 400_000_000, "Mail|b14": 1})
    done = cli(redis_url, "metrics", "--class", "Mail", "--since", "10m", "--by-minute", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["to"] - doc["from"] == 600 and doc["problems"] == []
    (mail,) = doc["classes"]
    assert (mail["class"], mail["processed"], mail["failed"], mail["p95_ms"]) == ("Mail", 3, 1, None)  # past 300 s
    assert [(m["minute"], [c["processed"] for c in m["classes"]]) for m in doc["minutes"]] == [(now - 120, [1]),
                                                                                              (now, [2])]
    assert doc["minutes"][1]["classes"][0]["p50_ms"] == 7.5


def test_nothing_recorded_says_so(redis_url):
    done = cli(redis_url, "metrics", "--class", "Nope")
    assert done.returncode == 0 and "(no runs recorded for Nope from" in done.stdout


def test_a_broken_minute_is_a_warning_not_a_failure(redis_url, r):
    r.set(f"resque:pyresque_metrics:{minute_now(r)}", "junk")
    done = cli(redis_url, "metrics")
    assert done.returncode == 0
    assert "warning: resque:pyresque_metrics:" in done.stdout and "WRONGTYPE" in done.stdout


def test_bad_windows_are_usage_errors(redis_url):
    for since, words in [("soon", "not a duration"), ("9h", "at most 8h"), ("0", "more than 0")]:
        done = cli(redis_url, "metrics", "--since", since)
        assert done.returncode == 2, done
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
