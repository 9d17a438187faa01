"""The I/O-bound tasks of issue #17 (``--tasks async``): jobs that each wait 50 ms, as a sleep and as
an HTTP call to a local server (``slow_http.py``) that answers after 50 ms.

``--async 500`` and ``--threads 100`` drain 10,000 jobs (``--async-jobs``); fork mode and RQ,
which run one job at a time (ceiling 20 jobs/s), drain 200 (``--async-slow-jobs``) so a round
stays under a minute; the rate is per second either way. Each result also carries the worker's
peak RSS (sampled every 50 ms; the worker process only, not its forked children) and, for async
mode, the event loop's lag percentiles, which the worker logs when it exits. ``async:*-lag-1000``
runs 1,000 jobs in flight (``--async 1000``) and reports the loop lag p99 as its value.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from typing import Any

from tasks import (
    BENCH,
    QUEUE,
    VENV_BIN,
    BenchError,
    Ctx,
    clean_env,
    kill_group,
    log_tail,
    start_worker,
    task,
    time_drain,
    wait_exit,
)

FAST_JOBS = int(os.environ.get("BENCH_ASYNC_JOBS", "10000"))
SLOW_JOBS = int(os.environ.get("BENCH_ASYNC_SLOW_JOBS", "200"))
LAG_MS = "lag p99 ms"
_LAG_LINE = re.compile(r"lag_p50_ms=([\d.]+).*?lag_p99_ms=([\d.]+)")


class _PeakRss:
    """The peak RSS of one process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except Exception:
                return

    def stop(self) -> float:
        self._stop.set()
        self.thread.join(1)
        return round(self.peak / (1024 * 1024), 1)


class _SlowServer:
    """``slow_http.py`` on a free port, for the HTTP tasks."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, str(BENCH / "slow_http.py"), str(self.port), "0.05"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise BenchError("slow_http.py did not start")
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        kill_group(self.proc)


def _callback_spec(url: str) -> dict[str, Any]:
    return {"requests": [{"url": url, "method": "POST", "json": {"n": 1}, "timeout": 10}]}


def _pyresque(ctx: Ctx, job: str, n: int, mode_env: dict[str, str], http: bool = False) -> dict:
    import pyresque
    from pyresque.wire.keys import Keys

    server = _SlowServer() if http else None
    try:
        keys = Keys("resque")
        args = [[_callback_spec(server.url)] if server else [] for _ in range(n)]
        pyresque.Resque(ctx.url, "resque").enqueue_many(QUEUE, job, args, track=False)
        env = clean_env(QUEUE=QUEUE, INTERVAL="0", APP_INCLUDE=str(BENCH / "jobs.py"), REDIS_URL=ctx.url, **mode_env)
        if server:
            env.update(PYRESQUE_HTTP_CALLBACK_HOSTS=f"127.0.0.1:{server.port}", PYRESQUE_HTTP_CALLBACK_PER_HOST="1000")
        proc, log = start_worker(ctx, [str(VENV_BIN / "pyresque-worker")], env)
        rss = _PeakRss(proc.pid)
        try:
            processed_key = keys.stat("processed")
            res = time_drain(ctx, keys.queue(QUEUE), n, proc, log, lambda: int(ctx.redis.get(processed_key) or 0))
            res.pop("_drained_at")
            rc = wait_exit(proc, 60.0, "pyresque-worker", log)
            if rc != 0:
                raise BenchError(f"pyresque-worker exited with status {rc}", worker_log=log_tail(log))
        finally:
            res_rss = rss.stop()
            kill_group(proc)
        processed = int(ctx.redis.get(keys.stat("processed")) or 0)
        failed = int(ctx.redis.get(keys.stat("failed")) or 0)
        res.update(processed=processed, failed=failed, rss_peak_mb=res_rss)
        lag = _LAG_LINE.search(log.read_text(errors="replace"))
        if lag:
            res.update(lag_p50_ms=float(lag.group(1)), lag_p99_ms=float(lag.group(2)))
        if processed != n or failed:
            raise BenchError(f"stat:processed = {processed}, stat:failed = {failed}, expected {n} and 0",
                             worker_log=log_tail(log), **res)
        return res
    finally:
        if server:
            server.close()


def _rq(ctx: Ctx, func: str, n: int, http: bool = False) -> dict:
    import rq_jobs
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    server = _SlowServer() if http else None
    try:
        q = Queue(QUEUE, connection=ctx.redis)
        with ctx.redis.pipeline() as pipe:
            q.enqueue_many([Queue.prepare_data(getattr(rq_jobs, func), args=(server.url,) if server else ())
                            for _ in range(n)], pipeline=pipe)
            pipe.execute()
        argv = [str(VENV_BIN / "rq"), "worker", "--burst", "--url", ctx.url, "--path", str(BENCH), QUEUE]
        proc, log = start_worker(ctx, argv, clean_env())
        rss = _PeakRss(proc.pid)
        try:
            finished_key = FinishedJobRegistry(QUEUE, connection=ctx.redis).key
            res = time_drain(ctx, q.key, n, proc, log, lambda: int(ctx.redis.zcard(finished_key)))
            res.pop("_drained_at")
            wait_exit(proc, 30.0, "rq worker", log)
        finally:
            res_rss = rss.stop()
            kill_group(proc)
        finished = FinishedJobRegistry(QUEUE, connection=ctx.redis).count
        res.update(finished=finished, rss_peak_mb=res_rss)
        if finished != n:
            raise BenchError(f"RQ finished {finished} of {n}", worker_log=log_tail(log), **res)
        return res
    finally:
        if server:
            server.close()


ASYNC_500 = {"PYRESQUE_ASYNC": "500"}
THREADS_100 = {"PYRESQUE_THREADS": "100"}


@task("async:pyresque-async-500-sleep", f"--async 500, {FAST_JOBS} jobs awaiting asyncio.sleep(0.05)", group="async")
def async_500_sleep(ctx: Ctx) -> dict:
    return _pyresque(ctx, "AsyncSleepJob", FAST_JOBS, ASYNC_500)


@task("async:pyresque-threads-100-sleep", f"--threads 100, {FAST_JOBS} jobs in time.sleep(0.05)", group="async")
def threads_100_sleep(ctx: Ctx) -> dict:
    return _pyresque(ctx, "SleepJob", FAST_JOBS, THREADS_100)


@task("async:pyresque-fork-sleep", f"fork per job, {SLOW_JOBS} jobs in time.sleep(0.05)", group="async")
def fork_sleep(ctx: Ctx) -> dict:
    return _pyresque(ctx, "SleepJob", SLOW_JOBS, {})


@task("async:rq-worker-sleep", f"rq worker --burst, {SLOW_JOBS} jobs in time.sleep(0.05)", group="async")
def rq_sleep(ctx: Ctx) -> dict:
    return _rq(ctx, "sleep_50ms", SLOW_JOBS)


@task("async:pyresque-async-500-http", f"--async 500, {FAST_JOBS} Pyresque_HttpCallback jobs (50 ms server)",
      group="async")
def async_500_http(ctx: Ctx) -> dict:
    return _pyresque(ctx, "Pyresque_HttpCallback", FAST_JOBS, ASYNC_500, http=True)


@task("async:pyresque-threads-100-http", f"--threads 100, {FAST_JOBS} Pyresque_HttpCallback jobs (50 ms server)",
      group="async")
def threads_100_http(ctx: Ctx) -> dict:
    return _pyresque(ctx, "Pyresque_HttpCallback", FAST_JOBS, THREADS_100, http=True)


@task("async:pyresque-fork-http", f"fork per job, {SLOW_JOBS} Pyresque_HttpCallback jobs (50 ms server)", group="async")
def fork_http(ctx: Ctx) -> dict:
    return _pyresque(ctx, "Pyresque_HttpCallback", SLOW_JOBS, {}, http=True)


@task("async:rq-worker-http", f"rq worker --burst, {SLOW_JOBS} httpx.post jobs (50 ms server)", group="async")
def rq_http(ctx: Ctx) -> dict:
    return _rq(ctx, "http_50ms", SLOW_JOBS, http=True)


@task("async:pyresque-async-1000-lag", f"--async 1000, {FAST_JOBS} jobs awaiting asyncio.sleep(0.05): loop lag p99",
      unit=LAG_MS, group="async")
def async_1000_lag(ctx: Ctx) -> dict:
    res = _pyresque(ctx, "AsyncSleepJob", FAST_JOBS, {"PYRESQUE_ASYNC": "1000"})
    if "lag_p99_ms" not in res:
        raise BenchError("the worker logged no loop lag summary", **res)
    res["value"] = res["lag_p99_ms"]
    return res


PAIRS = [
    ("async:pyresque-async-500-sleep", "async:pyresque-threads-100-sleep", "50 ms sleep, async-500 vs threads-100"),
    ("async:pyresque-async-500-sleep", "async:pyresque-fork-sleep", "50 ms sleep, async-500 vs fork"),
    ("async:pyresque-async-500-sleep", "async:rq-worker-sleep", "50 ms sleep, async-500 vs RQ"),
    ("async:pyresque-async-500-http", "async:pyresque-threads-100-http", "50 ms HTTP, async-500 vs threads-100"),
    ("async:pyresque-async-500-http", "async:pyresque-fork-http", "50 ms HTTP, async-500 vs fork"),
    ("async:pyresque-async-500-http", "async:rq-worker-http", "50 ms HTTP, async-500 vs RQ"),
]
