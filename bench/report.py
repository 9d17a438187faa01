"""Summaries of a run: per-task medians, per-round paired ratios, the markdown table."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

from tasks import P50_MS, PAIRS, TASKS

ROOT = Path(__file__).resolve().parent.parent


def summarise(runs: list[dict], names: list[str]) -> tuple[list[dict], list[dict]]:
    rows = []
    for name in names:
        ok = [r for r in runs if r["task"] == name and r.get("ok")]
        values = [r["value"] for r in ok]
        what, unit, _ = TASKS[name]
        row: dict[str, Any] = {"task": name, "what": what, "unit": unit, "n": len(values),
                               "failed": sum(1 for r in runs if r["task"] == name and not r.get("ok"))}
        if values:
            row.update(median=statistics.median(values), min=min(values), max=max(values))
        if unit == P50_MS and ok:
            row["p99_median"] = statistics.median(r["p99_ms"] for r in ok)
        rows.append(row)
    by_round: dict[tuple[int, str], float] = {(r["round"], r["task"]): r["value"] for r in runs if r.get("ok")}
    by_p99: dict[tuple[int, str], float] = {(r["round"], r["task"]): r["p99_ms"] for r in runs if r.get("ok") and "p99_ms" in r}
    rounds = sorted({r["round"] for r in runs})
    ratios = []
    for num, den, note in PAIRS:
        if num not in names or den not in names:
            continue
        per_round = [by_round[(k, num)] / by_round[(k, den)] for k in rounds if (k, num) in by_round and (k, den) in by_round]
        better = "< 1 = pyresque faster" if TASKS[num][1] == P50_MS else "> 1 = pyresque faster"
        row = {"ratio": f"{num} / {den}", "note": note, "better": better, "n": len(per_round), "per_round": per_round}
        if per_round:
            row.update(median=statistics.median(per_round), min=min(per_round), max=max(per_round))
        if TASKS[num][1] == P50_MS:  # latency: the p99s' paired ratio beside the p50s'
            p99 = [by_p99[(k, num)] / by_p99[(k, den)] for k in rounds if (k, num) in by_p99 and (k, den) in by_p99]
            if p99:
                row.update(p99_per_round=p99, p99_median=statistics.median(p99))
        ratios.append(row)
    return rows, ratios


def fmt_value(x: float, unit: str) -> str:
    if unit == P50_MS:
        return f"{x:.2f}" if x < 10 else f"{x:.1f}"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}" if x >= 10 else f"{x:.2f}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def environment(url: str) -> dict:
    from importlib import metadata

    import redis

    versions = {}
    for dist in ("pyresque", "rq", "celery", "kombu", "billiard", "redis"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    versions["redis-server"] = redis.Redis.from_url(url).info("server").get("redis_version")
    versions["python"] = platform.python_version()
    try:
        git = ["git", "-C", str(ROOT)]
        commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--", "pyresque"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return {"versions": versions, "git_commit": commit, "pyresque_tree_dirty": bool(dirty),
            "cpus": os.cpu_count(), "platform": platform.platform()}


def write_markdown(path: Path, meta: dict, rows: list[dict], ratios: list[dict], runs: list[dict]) -> None:
    v = meta["env"]["versions"]
    lines = [
        "# pyresque bench: latest run",
        "",
        f"{meta['started']} · {meta['rounds']} interleaved rounds · {meta['env']['cpus']} CPUs · "
        f"load avg {meta['loadavg_start'][0]:.2f} → {meta['loadavg_end'][0]:.2f} · {meta['elapsed_s'] / 60:.1f} min · "
        f"git {meta['env']['git_commit']}"
        f"{' (pyresque/ had uncommitted changes)' if meta['env']['pyresque_tree_dirty'] else ''}",
        "",
        f"pyresque {v['pyresque']}, rq {v['rq']}, celery {v['celery']}, redis-py {v['redis']}, "
        f"redis-server {v['redis-server']}, Python {v['python']}. Drain: {meta['drain_jobs']} no-op jobs; "
        f"enqueue: {meta['enqueue_jobs']} jobs; latency: {meta['probes']} probes. Raw data: `{meta['raw_file']}`.",
        "",
        "| task | what | unit | median | min | max | n |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        fails = f" ({row['failed']} failed)" if row["failed"] else ""
        unit = row["unit"]
        if row["n"]:
            extra = f" (p99 {fmt_value(row['p99_median'], unit)})" if "p99_median" in row else ""
            lines.append(f"| {row['task']} | {row['what']} | {unit} | {fmt_value(row['median'], unit)}{extra} | "
                         f"{fmt_value(row['min'], unit)} | {fmt_value(row['max'], unit)} | {row['n']}{fails} |")
        else:
            lines.append(f"| {row['task']} | {row['what']} | {unit} | — | — | — | 0{fails} |")
    lines += ["", "Paired ratios pyresque / peer, computed inside each round, then median [min–max] over rounds "
              "(latency: the p50s' ratio, and in brackets the median of the p99s' per-round ratio):", "",
              "| ratio | kind | reading | median | [min–max] | n |", "|---|---|---|---:|---:|---:|"]
    for row in ratios:
        if row["n"]:
            p99 = f" (p99 {fmt_ratio(row['p99_median'])})" if "p99_median" in row else ""
            lines.append(f"| {row['ratio']} | {row['note']} | {row['better']} | **{fmt_ratio(row['median'])}**{p99} | "
                         f"[{fmt_ratio(row['min'])}–{fmt_ratio(row['max'])}] | {row['n']} |")
        else:
            lines.append(f"| {row['ratio']} | {row['note']} | {row['better']} | — | — | 0 |")
    errors = [r for r in runs if not r.get("ok")]
    if errors:
        lines += ["", "Failed runs (first line of each error; details in the raw file):", ""]
        for r in errors:
            lines.append(f"* round {r['round']} {r['task']}: {str(r.get('error') or '?').splitlines()[0]}")
    path.write_text("\n".join(lines) + "\n")


def print_summary(rows: list[dict], ratios: list[dict]) -> None:
    print(f"\n{'task':32s} {'unit':>7s} {'median':>10s} {'min':>10s} {'max':>10s}  n")
    for row in rows:
        unit = row["unit"]
        if row["n"]:
            extra = f"  p99 {fmt_value(row['p99_median'], unit)}" if "p99_median" in row else ""
            fails = f"  ({row['failed']} failed)" if row["failed"] else ""
            print(f"{row['task']:32s} {unit:>7s} {fmt_value(row['median'], unit):>10s} {fmt_value(row['min'], unit):>10s} "
                  f"{fmt_value(row['max'], unit):>10s}  {row['n']}{extra}{fails}")
        else:
            print(f"{row['task']:32s} {unit:>7s} {'—':>10s} {'—':>10s} {'—':>10s}  0  ({row['failed']} failed)")
    print("\npaired ratios pyresque/peer, per round: median [min–max] n (per-round values)")
    width = max((len(row["ratio"]) for row in ratios), default=0)
    for row in ratios:
        if row["n"]:
            per = ", ".join(f"{x:.2f}" for x in row["per_round"])
            p99 = f"; p99 ratio {fmt_ratio(row['p99_median'])}" if "p99_median" in row else ""
            print(f"{row['ratio']:{width}s} {fmt_ratio(row['median']):>7s} [{fmt_ratio(row['min'])}–{fmt_ratio(row['max'])}] "
                  f"{row['n']}  ({per}; {row['better']}{p99})")
        else:
            print(f"{row['ratio']:{width}s}       — (no round where both ran)")
