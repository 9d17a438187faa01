"""Idle memory (pyresque, RQ, Celery) and Redis work per job (pyresque, RQ's forking Worker).

    bench/.venv/bin/python bench/footprint.py [--runs 3]

Idle memory: each worker starts (BLOCKING/idle) on an empty queue, settles for 1.5 s, and the
RSS, PSS and USS of its whole process tree (the worker and everything it started: pyresque's
forking helper, which forks its first child with the first job; none for RQ; Celery prefork's
pool processes) are summed
with psutil. ``pyresque`` is a fork-mode worker with its helper (as during and just after work);
``pyresque-retired`` one idle for longer than ``--helper-idle`` (30 s by default, 0.5 s here),
whose helper has exited. Celery takes about 2 s to start, so its 1.5 s count from its first
answer to a ping (the pool processes are up by then). Work per job: commands from INFO
commandstats, and client round trips from MONITOR (:class:`RoundTrips`), while draining 20 and
then 120 no-op jobs; the difference of the two drains divided by 100 cancels start-up and
shut-down (perf-anchors' method).
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

from pyresque import RedisServer  # noqa: E402

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


class RoundTrips:
    """Counts the round trips clients make while it listens, from a MONITOR stream.

    A round trip is a top-level command (not one a Lua script runs), with a MULTI … EXEC block
    counted once: that is what a client sends and then waits for. A pipeline sent without
    MULTI would count once per command; neither worker's job path uses one.
    """

    STOP = "footprint-stop"

    def __init__(self, url: str) -> None:
        import threading

        self.url = url
        self.count = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _listen(self) -> None:
        in_multi: set[str] = set()
        # no socket timeout: redis-py 8's default 5 s would end the stream at a quiet spell
        with redis.Redis.from_url(self.url, socket_timeout=None).monitor() as monitor:
            self._ready.set()
            while True:
                entry = monitor.next_command()
                if entry.get("client_type") == "lua":
                    continue
                command, client = entry["command"], f"{entry.get('client_address')}:{entry.get('client_port')}"
                if command == f"ECHO {self.STOP}":
                    return
                name = command.split(" ", 1)[0].upper()
                if client in in_multi:
                    if name in ("EXEC", "DISCARD"):
                        in_multi.discard(client)
                    continue
                if name == "MULTI":
                    in_multi.add(client)
                self.count += 1

    def stop(self) -> int:
        redis.Redis.from_url(self.url).echo(self.STOP)
        self._thread.join(10)
        return self.count


def drain(system: str, url: str, r: redis.Redis, n: int) -> tuple[int, int]:
    """Redis commands and client round trips spent draining n no-op jobs (start-up and shut-down
    included)."""
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
    trips = RoundTrips(url)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    if system == "rq":
        argv = [str(BIN / "rq"), "worker", "--burst", "--url", url, "--path", str(BENCH), "bench"]
    else:
        env.update(QUEUE="bench", INTERVAL="0", REDIS_URL=url, APP_INCLUDE=str(BENCH / "jobs.py"))
        argv = [str(BIN / "pyresque-worker")]
    subprocess.run(argv, env=env, cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    round_trips = trips.stop()
    assert r.llen(key) == 0
    # less the INFO that read "before", the MONITOR and the ECHO that ended it
    return commands(r) - before - 3, round_trips


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
        print("Redis work per job (drain 120 minus drain 20, / 100)")
        for system in ("pyresque", "rq"):
            commands_per_job, trips_per_job = [], []
            for _ in range(args.runs):
                (many, many_trips), (few, few_trips) = drain(system, server.url, r, 120), drain(system, server.url, r, 20)
                commands_per_job.append((many - few) / 100)
                trips_per_job.append((many_trips - few_trips) / 100)
            print(f"  {system:16} {statistics.median(commands_per_job):.2f} commands, "
                  f"{statistics.median(trips_per_job):.2f} round trips per job "
                  f"(commands {', '.join(f'{x:.2f}' for x in commands_per_job)}; "
                  f"round trips {', '.join(f'{x:.2f}' for x in trips_per_job)})")


if __name__ == "__main__":
    main()
