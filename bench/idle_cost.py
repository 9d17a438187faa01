"""Idle Redis cost: the commands per second one IDLE worker sends, per command, for pyresque's
default worker, ``--no-scheduler``, ``BLOCKING=0``, RQ's worker and Celery solo.

    bench/.venv/bin/python bench/idle_cost.py [--seconds 450] [--configs NAME,...]

Method. Every configuration runs in its own process (``idle_cost.py --one NAME``), all of them
at once, each against its own private redis-server (``pyresque.store.embedded.RedisServer``: a
free loopback port, never 6379), so that nothing but that worker and this harness ever talks to
it. The worker is the stock CLI on empty queues. Once it is up (registered; blocked in its wait
where it has one) it settles ``--settle`` seconds, so start-up is not counted. Then:

1. MONITOR starts (:class:`Monitor`, its own connection), then ``INFO commandstats`` (the
   "before" snapshot) on the harness's one other connection;
2. ``--seconds`` of idleness (450 by default: one whole cycle of RQ's 405 s wait, 15 pyresque
   heartbeats, 90 BLMOVE renewals per queue);
3. ``INFO commandstats`` again (the "after" snapshot), then an ECHO that ends the MONITOR.

The delta of ``calls`` per command, less the harness's one command inside the window (the
"before" INFO, which Redis counts once it has replied), is what the worker sent; commands a Lua
script runs count too (commandstats counts them, and they cost Redis CPU like any other). The
row ``control`` runs the harness with no worker at all and must show 0. Round trips are the
worker's top-level commands seen by MONITOR (a script's inner calls not counted; the harness's
connection left out). After the window, one latency probe (as in ``run.py``'s latency tasks)
measures the first job's start after that long an idle spell: pyresque's fork mode has retired
its forking helper by then (after 30 s idle, ``--helper-idle``), so that one job pays for a new
helper.

Output: a table on stdout, ``results/idle-<UTC timestamp>.json`` (raw) and ``results/idle-latest.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # not resolved: the venv's bin/, where the CLIs are
RESULTS = BENCH / "results"
RESULT_MARK = "RESULT "
sys.path.insert(0, str(BENCH))

# name -> (system, queues, extra CLI arguments, extra environment, what it is)
CONFIGS: dict[str, tuple[str, list[str], list[str], dict[str, str], str]] = {
    "control": ("none", ["bench"], [], {}, "no worker: the harness alone (must be 0)"),
    "pyresque-default": ("pyresque", ["bench"], [], {}, "stock pyresque-worker (BLMOVE wait, fork, delayed-job duty)"),
    "pyresque-no-scheduler": ("pyresque", ["bench"], ["--no-scheduler"], {}, "pyresque-worker --no-scheduler"),
    "pyresque-polling": ("pyresque", ["bench"], [], {"BLOCKING": "0"}, "pyresque-worker BLOCKING=0 (poll every INTERVAL=5 s)"),
    "pyresque-default-2q": ("pyresque", ["high", "default"], [], {}, "stock pyresque-worker, QUEUE=high,default"),
    "pyresque-no-scheduler-2q": ("pyresque", ["high", "default"], ["--no-scheduler"], {},
                                 "pyresque-worker --no-scheduler, QUEUE=high,default"),
    "pyresque-polling-2q": ("pyresque", ["high", "default"], [], {"BLOCKING": "0"},
                            "pyresque-worker BLOCKING=0, QUEUE=high,default"),
    "rq-worker": ("rq", ["bench"], [], {}, "rq worker bench (forking Worker)"),
    "rq-worker-2q": ("rq", ["high", "default"], [], {}, "rq worker high default"),
    "celery-solo": ("celery", ["bench"], [], {}, "celery worker --pool=solo -Q bench"),
    "celery-solo-2q": ("celery", ["high", "default"], [], {}, "celery worker --pool=solo -Q high,default"),
}
#: The harness's own commands between the two snapshots: the "before" INFO, which Redis counts
#: once it has replied. MONITOR starts and ECHO (its end) is sent outside the window.
HARNESS_CALLS = {"info": 1}


def calls(r: Any) -> dict[str, int]:
    """``INFO commandstats`` as command -> calls (redis-py names them ``cmdstat_<command>``)."""
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in r.info("commandstats").items()}


class Monitor:
    """Counts the top-level commands (round trips) every client but ``exclude`` sends while it
    listens, from a MONITOR stream: a Lua script's inner calls are not counted, a MULTI … EXEC
    block counts once (what a client sends and then waits for)."""

    STOP = "idle-cost-stop"

    def __init__(self, url: str, exclude: str) -> None:
        import threading

        self.url, self.exclude, self.count = url, exclude, 0
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self.error is not None:
            raise RuntimeError(f"MONITOR did not start: {self.error!r}")

    def _listen(self) -> None:
        try:
            self._stream()
        except BaseException as exc:  # reported by stop(): a count that stopped early is no count
            self.error = exc
            self._ready.set()

    def _stream(self) -> None:
        import redis

        in_multi: set[str] = set()
        # No socket timeout: an idle worker may send nothing for minutes (redis-py 8's default
        # of 5 s would end the stream at the first quiet spell, and the count with it).
        with redis.Redis.from_url(self.url, socket_timeout=None).monitor() as monitor:
            self._ready.set()
            while True:
                entry = monitor.next_command()
                client = f"{entry.get('client_address')}:{entry.get('client_port')}"
                if entry.get("client_type") == "lua":
                    continue
                if client == self.exclude:
                    if entry["command"] == f"ECHO {self.STOP}":
                        return
                    continue
                name = entry["command"].split(" ", 1)[0].upper()
                if client in in_multi:
                    if name in ("EXEC", "DISCARD"):
                        in_multi.discard(client)
                    continue
                if name == "MULTI":
                    in_multi.add(client)
                self.count += 1

    def stop(self, r: Any) -> int:
        """End the stream with an ECHO on ``r`` (the excluded client), after the last snapshot."""
        r.echo(self.STOP)
        self._thread.join(10)
        if self.error is not None or self._thread.is_alive():
            raise RuntimeError(f"MONITOR stream ended early: {self.error!r}")
        return self.count


def start_worker(system: str, queues: list[str], argv_extra: list[str], env_extra: dict[str, str], url: str,
                 log: Path) -> subprocess.Popen | None:
    from tasks import clean_env

    if system == "none":
        return None
    if system == "pyresque":
        argv = [str(BIN / "pyresque-worker"), *argv_extra]
        env = clean_env(QUEUE=",".join(queues), APP_INCLUDE=str(BENCH / "jobs.py"), REDIS_URL=url, **env_extra)
    elif system == "rq":
        argv = [str(BIN / "rq"), "worker", "--url", url, "--path", str(BENCH), *queues]
        env = clean_env()
    else:
        from tasks import celery_worker_cmd

        argv, env, _ = celery_worker_cmd(url, ",".join(queues), "solo")
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, cwd=BENCH, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def ready(system: str, r: Any, polling: bool) -> bool:
    """Up and idle: registered (pyresque, RQ) and, where it waits in Redis, blocked there."""
    blocked = int(r.info("clients")["blocked_clients"]) >= 1
    if system == "pyresque":
        return bool(r.scard("resque:workers")) and (polling or blocked)
    if system == "rq":
        return bool(r.scard("rq:workers")) and blocked
    return blocked  # Celery: its consumer sits in BRPOP once it is up


def probe(system: str, queues: list[str], url: str, r: Any) -> float | None:
    """One latency probe on the last (lowest-priority) queue: ms from enqueue to the job's start."""
    queue, key = queues[-1], "bench:latency"
    if system == "pyresque":
        import pyresque

        pyresque.Resque(url).enqueue(queue, "LatencyProbe", time.monotonic(), key, url, track=False)
    elif system == "rq":
        import rq_jobs
        from rq import Queue

        Queue(queue, connection=r).enqueue(rq_jobs.latency_probe, time.monotonic(), key, url)
    elif system == "celery":
        from tasks import celery_app

        celery_jobs = celery_app(url)
        celery_jobs.latency_probe.apply_async((time.monotonic(), key, url), queue=queue)
    else:
        return None
    item = r.blpop([key], timeout=30)
    return None if item is None else float(item[1]) * 1000


def stop(proc: subprocess.Popen, system: str) -> int | None:
    try:
        os.killpg(proc.pid, signal.SIGQUIT if system == "pyresque" else signal.SIGTERM)
        return proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return None


def measure(name: str, seconds: float, settle: float) -> dict:
    """One configuration, in this process: its own server, its worker, the two snapshots."""
    import redis

    from pyresque import RedisServer

    system, queues, argv_extra, env_extra, what = CONFIGS[name]
    with tempfile.TemporaryDirectory(prefix="pyresque-idle-") as tmp, RedisServer() as server:
        r = redis.Redis.from_url(server.url, socket_timeout=120)  # redis-py 8's default 5 s < the probe's BLPOP
        r.ping()
        log = Path(tmp) / "worker.log"
        proc = start_worker(system, queues, argv_extra, env_extra, server.url, log)
        try:
            deadline = time.monotonic() + 90
            polling = env_extra.get("BLOCKING") == "0"
            while proc is not None and time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name}: worker exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
                if ready(system, r, polling):
                    break
                time.sleep(0.1)
            else:
                if proc is not None:
                    raise RuntimeError(f"{name}: worker not idle after 90 s: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(settle)
            clients = r.info("clients")
            held = int(clients["connected_clients"]) - 1  # less this harness's connection
            blocked = int(clients["blocked_clients"])
            trips = Monitor(server.url, exclude=r.client_info()["addr"])  # started before the window
            before = calls(r)
            t0 = time.monotonic()
            time.sleep(seconds)
            after = calls(r)
            window = time.monotonic() - t0
            round_trips = trips.stop(r)
            first_job_ms = probe(system, queues, server.url, r)
        finally:
            rc = stop(proc, system) if proc is not None else None
    delta = {k: after.get(k, 0) - before.get(k, 0) - HARNESS_CALLS.get(k, 0) for k in set(after) | set(before)}
    delta = {k: v for k, v in sorted(delta.items(), key=lambda kv: (-kv[1], kv[0])) if v}
    total = sum(delta.values())
    return {"config": name, "system": system, "what": what, "queues": queues, "window_s": window, "calls": delta,
            "commands": total, "commands_per_s": total / window, "round_trips": round_trips,
            "round_trips_per_s": round_trips / window, "connections": held, "blocked": blocked,
            "first_job_ms": first_job_ms, "returncode": rc}


def run_all(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.configs.split(",")] if args.configs else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration(s): {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    from report import environment

    from pyresque import RedisServer

    with RedisServer() as server:  # only to read the redis-server version the configurations run
        env = environment(server.url)
    started = dt.datetime.now(dt.timezone.utc)
    load_start = os.getloadavg()
    print(f"{len(names)} configurations at once, each with its own redis-server; {args.settle:.0f} s settle, "
          f"{args.seconds:.0f} s idle window", flush=True)
    procs = {name: subprocess.Popen([sys.executable, __file__, "--one", name, "--seconds", str(args.seconds),
                                     "--settle", str(args.settle)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name in names}
    results = []
    for name, proc in procs.items():
        out, err = proc.communicate()
        line = next((ln for ln in reversed(out.splitlines()) if ln.startswith(RESULT_MARK)), None)
        if line is None:
            results.append({"config": name, "error": f"exited {proc.returncode}", "stderr": err[-3000:]})
        else:
            results.append(json.loads(line[len(RESULT_MARK):]))
    meta = {"started": started.isoformat(timespec="seconds"), "seconds": args.seconds, "settle": args.settle,
            "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "env": env, "harness_calls": HARNESS_CALLS}
    RESULTS.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    raw = RESULTS / f"idle-{stamp}.json"
    meta["raw_file"] = str(raw.relative_to(BENCH.parent))
    raw.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    table = markdown(meta, results)
    (RESULTS / "idle-latest.md").write_text(table)
    print(table)
    print(f"raw: {raw}\ntable: {RESULTS / 'idle-latest.md'}")
    return 0 if all("error" not in r for r in results) else 1


def markdown(meta: dict, results: list[dict]) -> str:
    v = meta["env"]["versions"]
    lines = [
        "# pyresque bench: idle Redis cost per worker",
        "",
        f"{meta['started']} · {meta['seconds']:.0f} s idle window after {meta['settle']:.0f} s settle · "
        f"load avg {meta['loadavg_start'][0]:.2f} → {meta['loadavg_end'][0]:.2f} · git {meta['env']['git_commit']}"
        f"{' (pyresque/ had uncommitted changes)' if meta['env']['pyresque_tree_dirty'] else ''} · "
        f"{meta['env']['cpus']} CPUs",
        "",
        f"pyresque {v['pyresque']}, rq {v['rq']}, celery {v['celery']}, redis-py {v['redis']}, "
        f"redis-server {v['redis-server']}, Python {v['python']}. Raw data: `{meta['raw_file']}`.",
        "",
        "Commands = `INFO commandstats` calls (a Lua script's inner calls included) less the harness's own; "
        "round trips = the worker's top-level commands (MONITOR). Connections = the worker's open connections "
        "(blocked: waiting in a blocking command). First job = one probe's enqueue → start after the window.",
        "",
        "| configuration | commands/s | round trips/s | connections (blocked) | first job after idle, ms | "
        "commands in the window |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for res in results:
        if "error" in res:
            lines.append(f"| {res['config']} | failed: {res['error']} | | | | |")
            continue
        breakdown = ", ".join(f"{k} {n}" for k, n in res["calls"].items()) or "none"
        first = "—" if res["first_job_ms"] is None else f"{res['first_job_ms']:.1f}"
        lines.append(f"| {res['config']}: {res['what']} | **{res['commands_per_s']:.2f}** | {res['round_trips_per_s']:.2f} | "
                     f"{res['connections']} ({res['blocked']}) | {first} | {breakdown} ({res['window_s']:.0f} s) |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=450.0,
                        help="idle window measured (default 450: one whole cycle of RQ's 405 s BLMOVE timeout)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds idle before the window (default 10)")
    parser.add_argument("--configs", help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        res = measure(args.one, args.seconds, args.settle)
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0
    if args.seconds < 60:
        print(f"note: a {args.seconds:.0f} s window is shorter than one minute; heartbeats (every 30 s) "
              "make short windows uneven", file=sys.stderr)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
