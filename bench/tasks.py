"""The bench's tasks: what each one runs and measures, in one place (run.py schedules them).

Every task runs inside a fresh ``run.py --one NAME`` process, after FLUSHDB, and returns a
dict with at least ``value`` (or ``jobs`` and ``seconds``, from which run.py derives jobs/s).
A task that cannot be measured raises :class:`BenchError` with what went wrong.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
# Not resolved: a venv's python is a symlink, and its bin/ is where the peers' CLIs are.
VENV_BIN = Path(sys.executable).parent
QUEUE = "bench"
POLL = 0.002  # LLEN poll period, as in perf-anchors: the timer error is <= 2 ms at each end

# Variables that would change what a worker or producer does; never inherited from the shell.
_SCRUB = (
    "QUEUE", "QUEUES", "INTERVAL", "BLOCKING", "COUNT", "APP_INCLUDE", "REDIS_URL", "REDIS_BACKEND",
    "REDIS_BACKEND_DB", "PREFIX", "VERBOSE", "VVERBOSE", "LOGGING", "PIDFILE", "PYTHONPATH",
    "PYRESQUE_INLINE", "ALLOWED_MODULES", "TERM_CHILD", "GRACEFUL_TERM", "RESQUE_TERM_TIMEOUT",
    "RQ_REDIS_URL", "CELERY_BROKER_URL", "BENCH_REDIS_URL", "PYRESQUE_METRICS",
)


class BenchError(Exception):
    """A task that could not be measured; ``info`` goes into the raw results."""

    def __init__(self, message: str, **info: Any) -> None:
        super().__init__(message)
        self.info = info


class Ctx:
    """What a task may use: the options of the run, a private temp dir and a Redis client."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.url: str = args.redis_url
        self.drain_jobs: int = args.drain_jobs
        self.enqueue_jobs: int = args.enqueue_jobs
        self.probes: int = args.probes
        self.timeout: float = args.task_timeout
        self.workdir = workdir
        import redis

        # redis-py 8 reads with a 5 s socket timeout by default: longer than that, a BLPOP for a
        # polling worker's probe (up to INTERVAL=5 s and more) would fail before its own timeout.
        self.redis = redis.Redis.from_url(self.url, socket_timeout=120)


TaskFn = Callable[[Ctx], dict]
# name -> (what it runs, unit of its "value", group). Throughput in jobs/s (higher is better),
# latency as p50 ms (lower is better). Groups: "default" (throughput) and "latency".
TASKS: dict[str, tuple[str, str, str]] = {}
TASK_FNS: dict[str, TaskFn] = {}
JOBS_S, P50_MS = "jobs/s", "p50 ms"


def task(name: str, what: str, unit: str = JOBS_S, group: str = "default") -> Callable[[TaskFn], TaskFn]:
    def add(fn: TaskFn) -> TaskFn:
        TASKS[name] = (what, unit, group)
        TASK_FNS[name] = fn
        return fn
    return add


def clean_env(**extra: str) -> dict[str, str]:
    """The shell's environment without anything that would configure a worker (every
    ``PYRESQUE_*`` too), plus ``extra``: a "default" worker really runs with its defaults."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("PYRESQUE_")}
    env.update(extra)
    return env


def start_worker(ctx: Ctx, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """Start a worker in its own session, its output (stdout+stderr) to a file kept for errors."""
    log = ctx.workdir / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=BENCH, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return proc, log


def log_tail(log: Path, limit: int = 4000) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def kill_group(proc: subprocess.Popen) -> None:
    """Last resort for a worker we started: SIGKILL its process group (its session, by its pid)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def wait_exit(proc: subprocess.Popen, timeout: float, what: str, log: Path) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise BenchError(f"{what}: worker did not exit within {timeout:.0f}s", worker_log=log_tail(log)) from None


def time_drain(ctx: Ctx, key: str, n: int, proc: subprocess.Popen, log: Path,
               done: Callable[[], int] | None = None) -> dict:
    """Poll LLEN every 2 ms: t0 = first poll that sees fewer than n jobs, t1 = first that sees 0.

    With ``done`` (how many jobs have finished), t1 is instead the first poll at which all n
    have finished: for workers that run many jobs at once, "queue empty" leaves up to a whole
    batch still running, which would be counted as done before it is.
    """
    r = ctx.redis
    launched = time.monotonic()
    t0 = None
    last_len, last_change = n, launched
    while True:
        now = time.monotonic()
        length = r.llen(key)
        if t0 is None and length < n:
            t0 = now
        if length == 0 and (done is None or done() >= n):
            t1 = now
            break
        if length != last_len:
            last_len, last_change = length, now
        rc = proc.poll()
        if rc is not None:
            raise BenchError(f"worker exited with status {rc} while {length} of {n} jobs were still queued",
                             returncode=rc, worker_log=log_tail(log))
        stalled = now - last_change > (60.0 if t0 is None else 30.0)
        if stalled or now - launched > ctx.timeout:
            done = n - length
            partial = done / (now - t0) if t0 is not None and now > t0 else 0.0
            kill_group(proc)
            raise BenchError(
                f"{'stalled' if stalled else 'timed out'} after {now - launched:.1f}s with {length} of {n} jobs queued "
                f"({done} drained, {partial:.2f} jobs/s)", drained=done, partial_rate=partial, worker_log=log_tail(log))
        time.sleep(POLL)
    assert t0 is not None
    return {"jobs": n, "seconds": t1 - t0, "startup_s": t0 - launched, "_drained_at": t1}


# -- pyresque --------------------------------------------------------------------------------

def pyresque_drain(ctx: Ctx, blocking: bool = False, inline: bool = False, fork_every: int = 1,
                   job: str = "NoopJob", n: int | None = None, threads: int = 1, until_done: bool = False,
                   metrics: bool = True) -> dict:
    import pyresque
    from pyresque.wire.keys import Keys

    n = n or ctx.drain_jobs
    keys = Keys("resque")
    pyresque.Resque(ctx.url, "resque").enqueue_many(QUEUE, job, [[] for _ in range(n)], track=False)
    if ctx.redis.llen(keys.queue(QUEUE)) != n:
        raise BenchError("enqueue_many did not queue every job")
    exe = VENV_BIN / "pyresque-worker"
    env = clean_env(QUEUE=QUEUE, INTERVAL="0", APP_INCLUDE=str(BENCH / "jobs.py"), REDIS_URL=ctx.url)
    if blocking:
        env.update(BLOCKING="1", INTERVAL="0.5")
    if inline:
        env.update(PYRESQUE_INLINE="1")
    if fork_every > 1:
        env.update(PYRESQUE_FORK_EVERY=str(fork_every))
    if threads > 1:
        env.update(PYRESQUE_THREADS=str(threads))
    if not metrics:
        env.update(PYRESQUE_METRICS="0")
    cpu_before = _cpu(ctx)
    proc, log = start_worker(ctx, [str(exe)], env)
    try:
        processed_key = keys.stat("processed")
        done = (lambda: int(ctx.redis.get(processed_key) or 0)) if until_done else None
        res = time_drain(ctx, keys.queue(QUEUE), n, proc, log, done)
        drained_at = res.pop("_drained_at")
        if blocking:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish the job in hand, then exit
        rc = wait_exit(proc, 30.0, "pyresque-worker", log)
        res["exit_s"] = time.monotonic() - drained_at
        if rc != 0:
            raise BenchError(f"pyresque-worker exited with status {rc}", returncode=rc, worker_log=log_tail(log))
    finally:
        kill_group(proc)
    worker_cpu, redis_cpu = (after - before for after, before in zip(_cpu(ctx), cpu_before))
    processed = int(ctx.redis.get(keys.stat("processed")) or 0)
    failed = int(ctx.redis.get(keys.stat("failed")) or 0)
    res.update(processed=processed, failed=failed, worker_cpu_s=worker_cpu, redis_cpu_s=redis_cpu)
    if processed != n or failed:
        raise BenchError(f"stat:processed = {processed}, stat:failed = {failed}, expected {n} and 0",
                         worker_log=log_tail(log), **res)
    return res


def _cpu(ctx: Ctx) -> tuple[float, float]:
    """CPU seconds of the workers this process has waited for (their children included, as each
    waits for its own), and of the private redis-server: under a load that swings wall-clock
    rates by ±30 %, CPU per job still shows a cost of a few percent."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    info = ctx.redis.info("cpu")
    return usage.ru_utime + usage.ru_stime, float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@task("drain:pyresque-fork", "pyresque-worker, fork per job, burst (INTERVAL=0)")
def drain_pyresque_fork(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, blocking=False)


@task("drain:pyresque-fork-blocking", "pyresque-worker, fork per job, BLOCKING=1 INTERVAL=0.5, SIGQUIT when drained")
def drain_pyresque_fork_blocking(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, blocking=True)


@task("drain:pyresque-fork-every-100", "pyresque-worker --fork-every 100 (a child serves 100 jobs), burst")
def drain_pyresque_fork_every(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, fork_every=100)


@task("drain:pyresque-fork-nometrics", "drain:pyresque-fork with PYRESQUE_METRICS=0 (no per-class metrics)",
      group="metrics")
def drain_pyresque_fork_nometrics(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, metrics=False)


@task("drain:pyresque-inline", "pyresque-worker --inline (PYRESQUE_INLINE=1: no fork), burst")
def drain_pyresque_inline(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, inline=True)


# -- RQ ----------------------------------------------------------------------------------------

def rq_enqueue_bulk(ctx: Ctx, n: int, batch: int = 1000, func: str = "noop") -> Any:
    import rq_jobs
    from rq import Queue

    q = Queue(QUEUE, connection=ctx.redis)
    for start in range(0, n, batch):
        with ctx.redis.pipeline() as pipe:
            q.enqueue_many([Queue.prepare_data(getattr(rq_jobs, func)) for _ in range(min(batch, n - start))],
                           pipeline=pipe)
            pipe.execute()
    return q


def rq_drain(ctx: Ctx, worker_class: str | None, func: str = "noop", n: int | None = None,
             until_done: bool = False) -> dict:
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    n = n or ctx.drain_jobs
    q = rq_enqueue_bulk(ctx, n, func=func)
    if ctx.redis.llen(q.key) != n:
        raise BenchError("RQ enqueue_many did not queue every job")
    argv = [str(VENV_BIN / "rq"), "worker", "--burst", "--url", ctx.url, "--path", str(BENCH)]
    if worker_class:
        argv += ["-w", worker_class]
    proc, log = start_worker(ctx, argv + [QUEUE], clean_env())
    try:
        finished_key = FinishedJobRegistry(QUEUE, connection=ctx.redis).key
        done = (lambda: int(ctx.redis.zcard(finished_key))) if until_done else None
        res = time_drain(ctx, q.key, n, proc, log, done)
        drained_at = res.pop("_drained_at")
        rc = wait_exit(proc, 30.0, "rq worker", log)
        res["exit_s"] = time.monotonic() - drained_at
        if rc != 0:
            raise BenchError(f"rq worker exited with status {rc}", returncode=rc, worker_log=log_tail(log))
    finally:
        kill_group(proc)
    finished = FinishedJobRegistry(QUEUE, connection=ctx.redis).count
    failed = FailedJobRegistry(QUEUE, connection=ctx.redis).count
    res.update(finished=finished, failed=failed)
    if finished != n:
        raise BenchError(f"RQ finished registry holds {finished} jobs (failed {failed}), expected {n}",
                         worker_log=log_tail(log), **res)
    return res


@task("drain:rq-worker", "rq worker --burst (Worker: fork per job)")
def drain_rq_worker(ctx: Ctx) -> dict:
    return rq_drain(ctx, None)


@task("drain:rq-simple", "rq worker --burst -w rq.worker.SimpleWorker (no fork)")
def drain_rq_simple(ctx: Ctx) -> dict:
    return rq_drain(ctx, "rq.worker.SimpleWorker")


# -- I/O-bound jobs (each sleeps 50 ms) ---------------------------------------------------------
# Timed until every job has finished (stat:processed / RQ's finished registry), not until the
# queue is empty: at "empty" a threaded worker still has up to 100 jobs (~50 ms) running, and a
# one-at-a-time worker one job; both are counted only once they are done.
IO_JOBS = 100


@task("io:pyresque-fork", "pyresque-worker, fork per job, 100 jobs sleeping 50 ms", group="io")
def io_pyresque_fork(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, job="SleepJob", n=IO_JOBS, until_done=True)


@task("io:pyresque-fork-every-100", "pyresque-worker --fork-every 100, 100 jobs sleeping 50 ms", group="io")
def io_pyresque_fork_every(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, job="SleepJob", n=IO_JOBS, fork_every=100, until_done=True)


@task("io:pyresque-threads-100", "pyresque-worker --threads 100, 2000 jobs sleeping 50 ms", group="io")
def io_pyresque_threads(ctx: Ctx) -> dict:
    # 2000 jobs, not 100: 100 slots would finish 100 jobs in one 50 ms step, too short to time.
    return pyresque_drain(ctx, job="SleepJob", n=20 * IO_JOBS, threads=100, until_done=True)


@task("io:pyresque-inline", "pyresque-worker --inline, 100 jobs sleeping 50 ms", group="io")
def io_pyresque_inline(ctx: Ctx) -> dict:
    return pyresque_drain(ctx, job="SleepJob", n=IO_JOBS, inline=True, until_done=True)


@task("io:rq-worker", "rq worker --burst (fork per job), 100 jobs sleeping 50 ms", group="io")
def io_rq_worker(ctx: Ctx) -> dict:
    return rq_drain(ctx, None, func="sleep_50ms", n=IO_JOBS, until_done=True)


# -- Celery ------------------------------------------------------------------------------------

def celery_app(url: str) -> Any:
    """The bench's Celery module (``celery_jobs``: the app and its tasks), its broker on ``url``."""
    os.environ["BENCH_REDIS_URL"] = url  # read when celery_jobs is imported
    import celery_jobs

    return celery_jobs


def celery_worker_cmd(url: str, queue: str, pool: str, concurrency: int | None = None) -> tuple[list[str], dict[str, str], str]:
    """The stock ``celery worker`` for one pool: its argv, its environment and its node name (for inspect)."""
    node = f"bench-{os.getpid()}@{platform.node()}"
    argv = [str(VENV_BIN / "celery"), "-A", "celery_jobs", "worker", f"--pool={pool}", "-Q", queue,
            "--loglevel=WARNING", "-n", node]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    return argv, clean_env(BENCH_REDIS_URL=url, PYTHONPATH=str(BENCH)), node


def celery_finished(celery_jobs: Any, node: str, name: str, n: int, timeout: float = 30.0) -> tuple[int, list | None]:
    """Wait until the worker has taken all n tasks and runs none: (its stats total, its active list).

    The worker prefetches 4 x concurrency tasks, so some may still be in hand when the list is
    empty. Its stats count a task when a pool process accepts it, not when it ends; hence the
    active list too (empty, not None, once every accepted task has ended).
    """
    inspect = celery_jobs.app.control.inspect(destination=[node], timeout=1.0)
    total, active, deadline = 0, None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = inspect.stats() or {}
        total = int(stats.get(node, {}).get("total", {}).get(name, 0))
        if total >= n:
            active = (inspect.active() or {}).get(node)
            if active == []:
                break
        time.sleep(0.2)
    return total, active


def celery_drain(ctx: Ctx, pool: str, concurrency: int | None = None) -> dict:
    celery_jobs = celery_app(ctx.url)
    n = ctx.drain_jobs
    for _ in range(n):
        celery_jobs.noop.apply_async()
    if ctx.redis.llen(celery_jobs.QUEUE) != n:
        raise BenchError("Celery apply_async did not queue every task")
    argv, env, node = celery_worker_cmd(ctx.url, celery_jobs.QUEUE, pool, concurrency)
    proc, log = start_worker(ctx, argv, env)
    try:
        res = time_drain(ctx, celery_jobs.QUEUE, n, proc, log)
        drained_at = res.pop("_drained_at")
        total, active = celery_finished(celery_jobs, node, celery_jobs.noop.name, n)
        proc.send_signal(signal.SIGTERM)  # warm shutdown
        rc = wait_exit(proc, 30.0, "celery worker", log)
        res["exit_s"] = time.monotonic() - drained_at
        res["completed"] = total
        if total != n or active != []:
            raise BenchError(f"celery inspect stats reports {total} tasks, expected {n}; still active: {active}",
                             worker_log=log_tail(log), **res)
        if rc != 0:
            raise BenchError(f"celery worker exited with status {rc}", returncode=rc, worker_log=log_tail(log))
    finally:
        kill_group(proc)
        celery_jobs.app.close()
    return res


@task("drain:celery-solo", "celery worker --pool=solo (no fork), SIGTERM when drained")
def drain_celery_solo(ctx: Ctx) -> dict:
    return celery_drain(ctx, "solo")


@task("drain:celery-prefork", "celery worker --pool=prefork --concurrency=1 (one pool process), SIGTERM when drained")
def drain_celery_prefork(ctx: Ctx) -> dict:
    return celery_drain(ctx, "prefork", concurrency=1)


@task("drain:celery-prefork-2", "celery worker --pool=prefork --concurrency=2 (two pool processes), SIGTERM when drained")
def drain_celery_prefork_2(ctx: Ctx) -> dict:
    return celery_drain(ctx, "prefork", concurrency=2)


# -- enqueue -------------------------------------------------------------------------------------

def timed_loop(ctx: Ctx, key: str, n: int, body: Callable[[], None]) -> dict:
    t0 = time.perf_counter()
    body()
    seconds = time.perf_counter() - t0
    queued = ctx.redis.llen(key)
    if queued != n:
        raise BenchError(f"{queued} jobs queued, expected {n}")
    return {"jobs": n, "seconds": seconds}


@task("enqueue:pyresque", "pyresque Resque.enqueue(track=False), one call per job")
def enqueue_pyresque(ctx: Ctx) -> dict:
    import pyresque

    r = pyresque.Resque(ctx.url, "resque")
    r.ping()
    n = ctx.enqueue_jobs

    def body() -> None:
        for _ in range(n):
            r.enqueue(QUEUE, "NoopJob", track=False)
    return timed_loop(ctx, r.keys.queue(QUEUE), n, body)


@task("enqueue:rq", "RQ Queue.enqueue, one call per job")
def enqueue_rq(ctx: Ctx) -> dict:
    import rq_jobs
    from rq import Queue

    q = Queue(QUEUE, connection=ctx.redis)
    ctx.redis.ping()
    n = ctx.enqueue_jobs

    def body() -> None:
        for _ in range(n):
            q.enqueue(rq_jobs.noop)
    return timed_loop(ctx, q.key, n, body)


@task("bulk:pyresque", "pyresque Resque.enqueue_many(track=False), 1000 jobs per call (one pipeline each)")
def bulk_pyresque(ctx: Ctx) -> dict:
    import pyresque

    r = pyresque.Resque(ctx.url, "resque")
    r.ping()
    n = ctx.enqueue_jobs

    def body() -> None:
        for start in range(0, n, 1000):
            r.enqueue_many(QUEUE, "NoopJob", [[] for _ in range(min(1000, n - start))], track=False)
    return timed_loop(ctx, r.keys.queue(QUEUE), n, body)


@task("bulk:rq", "RQ Queue.enqueue_many with a pipeline, 1000 jobs per pipeline")
def bulk_rq(ctx: Ctx) -> dict:
    from rq import Queue

    ctx.redis.ping()
    n = ctx.enqueue_jobs
    key = Queue(QUEUE, connection=ctx.redis).key
    return timed_loop(ctx, key, n, lambda: rq_enqueue_bulk(ctx, n))


# -- idle -> job start latency (group "latency": opt-in) ----------------------------------------

def latency_run(ctx: Ctx, argv: list[str], env: dict[str, str], enqueue: Callable[[float, str], Any],
                stop_signal: int, probes: int | None = None, idle: tuple[float, float] = (0.05, 0.10)) -> dict:
    """perf-anchors section 1: the worker idles 50-100 ms (``idle``), then a probe carrying
    time.monotonic() is enqueued; its first statement takes the delta and RPUSHes it to a result list.

    The first probe is a warm-up (it also waits out the worker's start-up) and is not counted.
    """
    import random

    result_key = "bench:latency"
    rng = random.Random(1)
    deltas: list[float] = []
    count = ctx.probes if probes is None else min(probes, ctx.probes)
    proc, log = start_worker(ctx, argv, env)
    try:
        for i in range(count + 1):
            time.sleep(rng.uniform(*idle))
            enqueue(time.monotonic(), result_key)
            item = ctx.redis.blpop([result_key], timeout=60 if i == 0 else 10 + idle[1])
            if item is None:
                rc = proc.poll()
                raise BenchError(f"probe {i} got no answer ({'worker exited ' + str(rc) if rc is not None else 'worker alive'})",
                                 worker_log=log_tail(log))
            if i:
                deltas.append(float(item[1]))
        proc.send_signal(stop_signal)
        rc = wait_exit(proc, 30.0, argv[0], log)
    finally:
        kill_group(proc)
    ms = sorted(d * 1000 for d in deltas)
    return {"probes": len(ms), "p50_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
            "min_ms": ms[0], "max_ms": ms[-1], "returncode": rc, "value": statistics.median(ms), "env": {
                k: v for k, v in env.items() if k in ("QUEUE", "BLOCKING", "INTERVAL") or k.startswith("PYRESQUE_")}}


#: What each pyresque latency task sets on top of ``QUEUE``, ``APP_INCLUDE`` and ``REDIS_URL``.
#: "default" sets nothing: the stock worker as README's Quickstart starts it (BLMOVE wait,
#: INTERVAL=5, fork per job, delayed-job duty on). "blocking" is the older tasks' explicit
#: ``BLOCKING=1 INTERVAL=5``, now the same settings as the defaults; "polling" is BLOCKING=0.
PYRESQUE_LATENCY_ENV = {"default": {}, "blocking": {"BLOCKING": "1", "INTERVAL": "5"}, "polling": {"BLOCKING": "0"},
                        "retired": {"PYRESQUE_HELPER_IDLE": "0.02"}, "two-queues": {"QUEUE": f"high,{QUEUE}"}}
#: A polling worker takes up to INTERVAL (5 s) per probe: fewer probes, each after an idle spell
#: uniform over one whole interval, so that a probe lands at a random phase of the poll.
POLLING_PROBES, POLLING_IDLE = 20, (0.05, 5.05)
#: A fork-mode worker idle for ``--helper-idle`` (30 s by default) retires its forking helper and
#: starts a new one with the next job. ``PYRESQUE_HELPER_IDLE=0.02`` makes every probe (after
#: 50-100 ms idle) such a first job: what a job meets at a worker that has been idle half a minute.
RETIRED_PROBES = 50


def pyresque_latency(ctx: Ctx, inline: bool, config: str = "default") -> dict:
    import pyresque

    r = pyresque.Resque(ctx.url, "resque")
    env = clean_env(**{"QUEUE": QUEUE, "APP_INCLUDE": str(BENCH / "jobs.py"), "REDIS_URL": ctx.url,
                       **PYRESQUE_LATENCY_ENV[config]})
    if inline:
        env.update(PYRESQUE_INLINE="1")
    extra: dict[str, Any] = {"probes": POLLING_PROBES, "idle": POLLING_IDLE} if config == "polling" else {}
    if config == "retired":
        extra = {"probes": RETIRED_PROBES}
    return latency_run(ctx, [str(VENV_BIN / "pyresque-worker")], env,
                       lambda t, key: r.enqueue(QUEUE, "LatencyProbe", t, key, ctx.url, track=False), signal.SIGQUIT,
                       **extra)


@task("latency:pyresque-default", "stock pyresque-worker, no BLOCKING/INTERVAL set (BLMOVE wait), fork per job",
      P50_MS, "latency")
def latency_pyresque_default(ctx: Ctx) -> dict:
    return pyresque_latency(ctx, inline=False)


@task("latency:pyresque-default-inline", "stock pyresque-worker with PYRESQUE_INLINE=1 only (no fork)", P50_MS, "latency")
def latency_pyresque_default_inline(ctx: Ctx) -> dict:
    return pyresque_latency(ctx, inline=True)


@task("latency:pyresque-polling", "pyresque-worker BLOCKING=0 (poll every INTERVAL=5 s), fork; 20 probes at random phase",
      P50_MS, "latency")
def latency_pyresque_polling(ctx: Ctx) -> dict:
    return pyresque_latency(ctx, inline=False, config="polling")


@task("latency:pyresque-default-retired", "stock pyresque-worker, fork, as after 30 s idle: helper retired "
      "(PYRESQUE_HELPER_IDLE=0.02); 50 probes", P50_MS, "latency")
def latency_pyresque_default_retired(ctx: Ctx) -> dict:
    return pyresque_latency(ctx, inline=False, config="retired")


@task("latency:pyresque-default-2q", "stock pyresque-worker, fork, QUEUE=high,bench (a BLMOVE each); probes on bench",
      P50_MS, "latency")
def latency_pyresque_default_2q(ctx: Ctx) -> dict:
    return pyresque_latency(ctx, inline=False, config="two-queues")


@task("latency:pyresque-fork", "pyresque-worker BLOCKING=1 INTERVAL=5 (explicit; = the defaults now), fork per job",
      P50_MS, "latency-explicit")
def latency_pyresque_fork(ctx: Ctx) -> dict:
    return pyresque_latency(ctx, inline=False, config="blocking")


@task("latency:pyresque-inline", "pyresque-worker BLOCKING=1 INTERVAL=5 PYRESQUE_INLINE=1 (explicit; = the defaults now)",
      P50_MS, "latency-explicit")
def latency_pyresque_inline(ctx: Ctx) -> dict:
    return pyresque_latency(ctx, inline=True, config="blocking")


def rq_latency(ctx: Ctx, worker_class: str | None) -> dict:
    import rq_jobs
    from rq import Queue

    q = Queue(QUEUE, connection=ctx.redis)
    argv = [str(VENV_BIN / "rq"), "worker", "--url", ctx.url, "--path", str(BENCH)]
    if worker_class:
        argv += ["-w", worker_class]
    return latency_run(ctx, argv + [QUEUE], clean_env(),
                       lambda t, key: q.enqueue(rq_jobs.latency_probe, t, key, ctx.url), signal.SIGTERM)


@task("latency:rq-worker", "rq worker (Worker: fork per job), SIGTERM at the end", P50_MS, "latency")
def latency_rq_worker(ctx: Ctx) -> dict:
    return rq_latency(ctx, None)


@task("latency:rq-simple", "rq worker -w rq.worker.SimpleWorker (no fork)", P50_MS, "latency")
def latency_rq_simple(ctx: Ctx) -> dict:
    return rq_latency(ctx, "rq.worker.SimpleWorker")


def celery_latency(ctx: Ctx, pool: str, concurrency: int | None = None) -> dict:
    celery_jobs = celery_app(ctx.url)
    argv, env, _ = celery_worker_cmd(ctx.url, celery_jobs.QUEUE, pool, concurrency)
    try:
        return latency_run(ctx, argv, env, lambda t, key: celery_jobs.latency_probe.apply_async((t, key, ctx.url)),
                           signal.SIGTERM)
    finally:
        celery_jobs.app.close()


@task("latency:celery-solo", "celery worker --pool=solo (no fork)", P50_MS, "latency")
def latency_celery_solo(ctx: Ctx) -> dict:
    return celery_latency(ctx, "solo")


@task("latency:celery-prefork", "celery worker --pool=prefork --concurrency=1 (one pool process)", P50_MS, "latency")
def latency_celery_prefork(ctx: Ctx) -> dict:
    return celery_latency(ctx, "prefork", concurrency=1)


GROUPS = {group: [name for name, (_, _, g) in TASKS.items() if g == group]
          for group in ("default", "latency", "latency-explicit", "io")}
GROUPS["all"] = list(TASKS)
GROUPS["metrics"] = ["drain:pyresque-fork", "drain:pyresque-fork-nometrics"]  # --tasks metrics: the recording's cost

# Paired ratios pyresque / peer, computed inside each round. The note says what kind of pair it is.
PAIRS: list[tuple[str, str, str]] = [
    ("drain:pyresque-fork", "drain:rq-worker", "fork vs fork"),
    ("drain:pyresque-fork", "drain:pyresque-fork-nometrics", "metrics recorded vs not (1 - ratio = the cost)"),
    ("drain:pyresque-fork-blocking", "drain:rq-worker", "fork vs fork"),
    ("drain:pyresque-fork", "drain:rq-simple", "fork vs RQ without fork"),
    ("drain:pyresque-fork", "drain:celery-solo", "fork vs Celery without fork"),
    ("drain:pyresque-fork-every-100", "drain:celery-solo", "fork-every-100 vs Celery without fork"),
    ("drain:pyresque-fork", "drain:celery-prefork", "fork per job vs Celery's pool process (c1)"),
    ("drain:pyresque-fork-every-100", "drain:celery-prefork", "fork-every-100 vs Celery's pool process (c1)"),
    ("io:pyresque-fork", "io:rq-worker", "50 ms jobs, fork vs fork"),
    ("io:pyresque-threads-100", "io:pyresque-fork", "50 ms jobs, threads=100 vs fork"),
    ("io:pyresque-threads-100", "io:rq-worker", "50 ms jobs, threads=100 vs RQ fork"),
    ("drain:pyresque-inline", "drain:rq-simple", "no fork vs no fork"),
    ("drain:pyresque-inline", "drain:celery-solo", "no fork vs no fork"),
    ("enqueue:pyresque", "enqueue:rq", "one call per job"),
    ("bulk:pyresque", "bulk:rq", "1000 per pipeline"),
    ("latency:pyresque-default", "latency:rq-worker", "p50, default fork vs fork"),
    ("latency:pyresque-default", "latency:rq-simple", "p50, default fork vs RQ without fork"),
    ("latency:pyresque-default", "latency:celery-solo", "p50, default fork vs Celery without fork"),
    ("latency:pyresque-default-inline", "latency:rq-simple", "p50, default no fork vs no fork"),
    ("latency:pyresque-default-inline", "latency:celery-solo", "p50, default no fork vs no fork"),
    ("latency:pyresque-default", "latency:celery-prefork", "p50, default fork per job vs Celery's pool process (c1)"),
    ("latency:pyresque-polling", "latency:pyresque-default", "p50, BLOCKING=0 polling vs the default BLMOVE wait"),
    ("latency:pyresque-default-retired", "latency:pyresque-default", "p50, first job after 30 s idle vs a busy-ish worker"),
    ("latency:pyresque-default-2q", "latency:pyresque-default", "p50, two queues (a CLIENT UNBLOCK on arrival) vs one"),
    ("latency:pyresque-fork", "latency:rq-worker", "p50, fork vs fork"),
    ("latency:pyresque-inline", "latency:rq-simple", "p50, no fork vs no fork"),
    ("latency:pyresque-inline", "latency:celery-solo", "p50, no fork vs no fork"),
    ("latency:pyresque-fork", "latency:celery-prefork", "p50, fork per job vs Celery's pool process (c1)"),
]

# -- issue #17's I/O-bound group, ``--tasks async`` (async_tasks.py registers its tasks on import)
import async_tasks  # noqa: E402

GROUPS["async"] = [name for name, (_, _, g) in TASKS.items() if g == "async"]
GROUPS["all"] = list(TASKS)
PAIRS.extend(async_tasks.PAIRS)
