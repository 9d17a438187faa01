"""Idle memory (pyresque, RQ, Celery) and Redis commands per job (pyresque, RQ's forking Worker).

    bench/.venv/bin/python bench/footprint.py [--runs 3]

Idle memory: each worker starts (BLOCKING/idle) on an empty queue, settles for 1.5 s, and the
RSS, PSS and USS of its whole process tree (the worker and everything it started: pyresque's
forking helper, which forks its first child with the first job; none for RQ; Celery prefork's
pool processes) are summed
with psutil. ``pyresque`` is a fork-mode worker with its helper (as during and just after work);
``pyresque-retired`` one idle for longer than ``--helper-idle`` (30 s by default, 0.5 s here),
whose helper has exited. Celery takes about 2 s to start, so its 1.5 s count from its first
answer to a ping (the pool processes are up by then). Commands per job:
INFO commandstats before and after draining 20 and then 120 no-op jobs; the difference of the
two drains divided by 100 cancels start-up and shut-down (perf-anchors' method).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from tasks import celery_app, celery_worker_cmd  # noqa: E402

from pyresque.embedded import RedisServer  # noqa: E402

# footprint name -> (pool, concurrency), as drain:celery-solo, drain:celery-prefork, drain:celery-prefork-2 run them
CELERY_POOLS = {"celery-solo": ("solo", None), "celery-prefork": ("prefork", 1), "celery-prefork-2": ("prefork", 2)}


def tree_memory(pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    procs = [proc] + proc.children(recursive=True)
    total = {"rss": 0.0, "pss": 0.0, "uss": 0.0, "procs": len(procs), "parent_rss": proc.memory_info().rss / 2**20}
    for p in procs:
        full = p.memory_full_info()
        total["rss"] += full.rss / 2**20
        total["pss"] += full.pss / 2**20
        total["uss"] += full.uss / 2**20
    return total


def start(system: str, url: str) -> subprocess.Popen:
    if system in CELERY_POOLS:
        argv, env, node = celery_worker_cmd(url, "bench", *CELERY_POOLS[system])
        proc = subprocess.Popen(argv, env=env, cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        if not answers_ping(url, node):
            stop(proc)
            sys.exit(f"celery worker {node} ({system}) did not answer a ping within 60 s")
        return proc
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QUEUE", "APP_INCLUDE")}
    if system == "rq":
        argv = [str(BIN / "rq"), "worker", "--url", url, "--path", str(BENCH), "bench"]
    else:
        env.update(QUEUE="bench", BLOCKING="1", INTERVAL="1", REDIS_URL=url, APP_INCLUDE=str(BENCH / "jobs.py"))
        if system == "pyresque-inline":
            env["PYRESQUE_INLINE"] = "1"
        if system == "pyresque-retired":  # idle past --helper-idle (30 s by default; 0.5 s here)
            env["PYRESQUE_HELPER_IDLE"] = "0.5"
        argv = [str(BIN / "pyresque-worker")]
    return subprocess.Popen(argv, env=env, cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def answers_ping(url: str, node: str, timeout: float = 60.0) -> bool:
    control = celery_app(url).app.control
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if control.ping(destination=[node], timeout=0.5):
            return True
    return False


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def commands(r: redis.Redis) -> int:
    return sum(int(v["calls"]) for k, v in r.info("commandstats").items())


def drain(system: str, url: str, r: redis.Redis, n: int) -> int:
    """Redis commands spent draining n no-op jobs (start-up and shut-down included)."""
    import rq_jobs
    from rq import Queue

    import pyresque

    r.flushall()
    if system == "rq":
        q = Queue("bench", connection=r)
        for _ in range(n):
            q.enqueue(rq_jobs.noop)
        key = q.key
    else:
        pyresque.Resque(url).enqueue_many("bench", "NoopJob", [[] for _ in range(n)], track=False)
        key = "resque:queue:bench"
    r.config_resetstat()
    before = commands(r)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    if system == "rq":
        argv = [str(BIN / "rq"), "worker", "--burst", "--url", url, "--path", str(BENCH), "bench"]
    else:
        env.update(QUEUE="bench", INTERVAL="0", REDIS_URL=url, APP_INCLUDE=str(BENCH / "jobs.py"))
        argv = [str(BIN / "pyresque-worker")]
    subprocess.run(argv, env=env, cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    assert r.llen(key) == 0
    return commands(r) - before - 1  # the INFO that read "before"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with RedisServer() as server:
        r = redis.Redis.from_url(server.url)
        print("idle memory, whole process tree (MiB), median of", args.runs, "runs")
        for system in ("pyresque", "pyresque-retired", "pyresque-inline", "rq", *CELERY_POOLS):
            samples = []
            for _ in range(args.runs):
                r.flushall()
                proc = start(system, server.url)
                time.sleep(1.5)
                samples.append(tree_memory(proc.pid))
                stop(proc)
            med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
            print(f"  {system:16} procs {med['procs']:.0f}  parent RSS {med['parent_rss']:6.1f}  "
                  f"tree RSS {med['rss']:6.1f}  PSS {med['pss']:6.1f}  USS {med['uss']:6.1f}")
        print("Redis commands per job (drain 120 minus drain 20, / 100)")
        for system in ("pyresque", "rq"):
            per_job = [(drain(system, server.url, r, 120) - drain(system, server.url, r, 20)) / 100
                       for _ in range(args.runs)]
            print(f"  {system:16} {statistics.median(per_job):.2f} commands per job ({', '.join(f'{x:.2f}' for x in per_job)})")


if __name__ == "__main__":
    main()
