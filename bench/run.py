#!/usr/bin/env python3
"""Compare pyresque with RQ and Celery on this machine: paired, interleaved rounds.

    bench/setup.sh && bench/.venv/bin/python bench/run.py --rounds 5

Method (shared/reference/perf-anchors.md section 1):

1. Start a private redis-server (``pyresque.store.embedded.RedisServer``: free port, never 6379,
   no persistence); stop it at the end.
2. For round 1..R run every selected task, odd rounds in list order, even rounds reversed,
   each task in a fresh interpreter (``run.py --one TASK``) that FLUSHDBs first.
3. Drain tasks pre-enqueue N no-op jobs, start the stock worker CLI, poll LLEN every 2 ms and
   time from the first job leaving the list until the list is empty (start-up excluded),
   then check that every job ran (pyresque ``stat:processed``, RQ finished registry, Celery
   ``inspect stats``).
4. Enqueue tasks time a producer loop after its connection is up, then check LLEN.
5. Print per task median jobs/s [min-max] n, and per-round paired ratios pyresque/peer;
   write ``results/<timestamp>.json`` (raw) and ``results/latest.md`` (tables).

The tasks themselves are in tasks.py, the summaries in report.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import environment, fmt_value, print_summary, summarise, write_markdown
from tasks import BENCH, GROUPS, POLL, TASK_FNS, TASKS, VENV_BIN, BenchError, Ctx, clean_env

ROOT = BENCH.parent
RESULTS = BENCH / "results"
RESULT_MARK = "RESULT "


# ------------------------------------------------------------------------------------------
# One task, in this (fresh) process.
# ------------------------------------------------------------------------------------------

def run_one(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(BENCH))
    with tempfile.TemporaryDirectory(prefix="pyresque-bench-") as tmp:
        ctx = Ctx(args, Path(tmp))
        ctx.redis.flushdb()
        try:
            res = TASK_FNS[args.one](ctx)
            res["ok"] = True
        except BenchError as exc:
            res = {"ok": False, "error": str(exc), **exc.info}
        except Exception as exc:  # a broken peer or harness: record it, keep the other tasks going
            import traceback

            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    if res.get("ok") and "value" not in res:
        res["rate"] = res["value"] = res["jobs"] / res["seconds"]
    print(RESULT_MARK + json.dumps(res), flush=True)
    return 0


# ------------------------------------------------------------------------------------------
# The rounds, the summary, the files.
# ------------------------------------------------------------------------------------------

def run_child(name: str, url: str, args: argparse.Namespace) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--redis-url", url,
            "--drain-jobs", str(args.drain_jobs), "--enqueue-jobs", str(args.enqueue_jobs),
            "--probes", str(args.probes), "--task-timeout", str(args.task_timeout)]
    backstop = args.task_timeout + 120
    proc = subprocess.Popen(argv, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=backstop)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return {"ok": False, "error": f"task process exceeded {backstop:.0f}s", "stderr": err[-4000:]}
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_MARK):
            res = json.loads(line[len(RESULT_MARK):])
            if err.strip():
                res["stderr"] = err[-4000:]
            return res
    return {"ok": False, "error": f"task process exited {proc.returncode} without a result", "stderr": err[-4000:],
            "stdout": out[-2000:]}


def run_all(args: argparse.Namespace) -> int:
    from pyresque import RedisServer

    names: list[str] = []
    for item in (t.strip() for t in args.tasks.split(",")):
        for name in GROUPS.get(item, [item] if item else []):
            if name not in names:
                names.append(name)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        sys.exit(f"unknown task(s): {', '.join(unknown)}; known: {', '.join(TASKS)}")
    missing = [exe for exe in ("rq", "celery", "pyresque-worker") if not (VENV_BIN / exe).exists()]
    if missing:
        sys.exit(f"{', '.join(missing)} not found in {VENV_BIN}: run bench/setup.sh, then bench/.venv/bin/python bench/run.py")

    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raw_file = RESULTS / f"{stamp}.json"
    runs: list[dict] = []
    started = time.monotonic()
    with RedisServer() as server:
        meta: dict[str, Any] = {
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "rounds": args.rounds, "tasks": names, "drain_jobs": args.drain_jobs, "enqueue_jobs": args.enqueue_jobs,
            "probes": args.probes,
            "poll_s": POLL, "redis_port": server.port, "loadavg_start": os.getloadavg(), "env": environment(server.url),
            "raw_file": str(raw_file.relative_to(ROOT)),
        }
        print(f"private redis-server on {server.url}; {args.rounds} rounds × {len(names)} tasks", flush=True)
        for rnd in range(1, args.rounds + 1):
            order = names if rnd % 2 else list(reversed(names))
            for position, name in enumerate(order):
                t = time.monotonic()
                res = run_child(name, server.url, args)
                res.update(task=name, round=rnd, position=position, wall_s=time.monotonic() - t,
                           loadavg=os.getloadavg()[0])
                runs.append(res)
                unit = TASKS[name][1]
                shown = f"{fmt_value(res['value'], unit)} {unit}" if res.get("ok") else f"FAILED: {res.get('error')}"
                print(f"round {rnd} {name:30s} {shown}", flush=True)
                if not res.get("ok"):
                    for field in ("worker_log", "stderr", "traceback"):
                        if res.get(field):
                            tail = str(res[field]).strip().splitlines()[-15:]
                            print(f"    {field}:\n" + "\n".join("      " + ln for ln in tail), flush=True)
                # Keep partial results on disk as we go: a long run that dies still leaves data.
                raw_file.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
        meta["loadavg_end"] = os.getloadavg()
        meta["elapsed_s"] = time.monotonic() - started

    rows, ratios = summarise(runs, names)
    raw_file.write_text(json.dumps({"meta": meta, "summary": rows, "ratios": ratios, "runs": runs}, indent=1))
    write_markdown(RESULTS / "latest.md", meta, rows, ratios, runs)
    write_markdown(raw_file.with_suffix(".md"), meta, rows, ratios, runs)  # this run's table, kept beside its data

    print_summary(rows, ratios)
    print(f"\nraw: {raw_file}\ntable: {RESULTS / 'latest.md'} (and {raw_file.with_suffix('.md').name})\n"
          f"elapsed: {meta['elapsed_s'] / 60:.1f} min")
    return 0 if all(r.get("ok") for r in runs) else 1

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--tasks", default="all",
                        help="comma-separated task names or groups: default (throughput), latency, "
                             "latency-explicit, io, all (the default); see --list")
    parser.add_argument("--probes", type=int, default=200, help="latency probes per latency task (default 200)")
    parser.add_argument("--drain-jobs", type=int, default=2000, help="no-op jobs pre-enqueued per drain (default 2000)")
    parser.add_argument("--enqueue-jobs", type=int, default=20000, help="jobs per enqueue task (default 20000)")
    parser.add_argument("--task-timeout", type=float, default=240.0,
                        help="give up on one drain after this many seconds, recording the partial rate (default 240)")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        for name, (what, unit, group) in TASKS.items():
            print(f"{name:32s} {group:8s} {unit:7s} {what}")
        return 0
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.one:
        return run_one(args)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
