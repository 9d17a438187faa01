#!/usr/bin/env python3
"""Fork-mode drain with metrics on and off at the same time, each on its own private Redis.

    bench/.venv/bin/python bench/metrics_ab.py [--rounds 8] [--jobs 2000]

``run.py --tasks metrics`` runs the two drains one after the other; on a VM whose other tenants
swing the rate by ±30 % between two drains a minute apart, that pairing cannot see 3 %. Here
both workers (stock ``pyresque-worker``, burst, fork per job, ``bench/jobs.py`` no-op jobs) run
at once, one per redis-server, so each round's load falls on both alike; the start order
alternates. Per round: each drain's wall time from start to exit (start-up included, the same
on both sides) and its CPU (worker, forking helper, children), and the ratio on / off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pyresque import Resque
from pyresque.store.embedded import RedisServer

BENCH = Path(__file__).resolve().parent


def start(url: str, metrics: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRESQUE", "QUEUE", "REDIS", "INTERVAL"))}
    env.update(QUEUE="bench", INTERVAL="0", APP_INCLUDE=str(BENCH / "jobs.py"), REDIS_URL=url)
    if not metrics:
        env["PYRESQUE_METRICS"] = "0"
    exe = Path(sys.executable).parent / "pyresque-worker"
    return subprocess.Popen([str(exe)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    walls, cpus = [], []
    with RedisServer() as a, RedisServer() as b:
        for rnd in range(args.rounds):
            sides = {"on": Resque(a.url), "off": Resque(b.url)}
            for resque in sides.values():
                resque.redis.flushdb()
                resque.enqueue_many("bench", "NoopJob", [[] for _ in range(args.jobs)], track=False)
            order = ["on", "off"] if rnd % 2 == 0 else ["off", "on"]
            t0 = time.perf_counter()
            procs = {name: start(a.url if name == "on" else b.url, name == "on") for name in order}
            done: dict[str, float] = {}
            cpu: dict[str, float] = {}
            watched = {name: psutil.Process(p.pid) for name, p in procs.items()}
            while len(done) < 2:
                for name, proc in procs.items():
                    if name in done:
                        continue
                    try:  # the tree's CPU, sampled until exit (children reaped by the worker count there)
                        times = watched[name].cpu_times()
                        cpu[name] = times.user + times.system + times.children_user + times.children_system
                    except psutil.NoSuchProcess:
                        pass
                    if proc.poll() is not None:
                        done[name] = time.perf_counter() - t0
                time.sleep(0.005)
            for name, resque in sides.items():
                assert int(resque.redis.get("resque:stat:processed") or 0) == args.jobs, name
            walls.append(done["on"] / done["off"])
            cpus.append(cpu["on"] / cpu["off"])
            print(f"round {rnd + 1}: on {done['on']:.2f} s / off {done['off']:.2f} s = {walls[-1]:.3f}; "
                  f"cpu {cpu['on']:.2f} / {cpu['off']:.2f} = {cpus[-1]:.3f}", flush=True)
    print(f"wall on/off: median {statistics.median(walls):.3f} [{min(walls):.3f}-{max(walls):.3f}] n={len(walls)}; "
          f"cpu on/off: median {statistics.median(cpus):.3f} [{min(cpus):.3f}-{max(cpus):.3f}]")


if __name__ == "__main__":
    main()
