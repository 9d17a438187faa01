#!/usr/bin/env python3
"""HTTP enqueue throughput against the direct Python API, in the same run (#15).

    .venv/bin/python bench/http_enqueue.py [--rounds 5] [--single 2000] [--bulk 20000] [--batch 1000]

Starts its own redis-server (``RedisServer``: free loopback port, never 6379) and a real
``python -m pyresque web --port <free> --redis-url … --token-file …`` subprocess on it (uvicorn,
one process, as shipped). One httpx ``Client`` with keep-alive (a pool of one connection, reused
for every request; checked after each task) sends the HTTP tasks; the direct ones call
``Resque`` in this process. Every task enqueues ``NoopJob`` tracked (the API's default,
``track: true``), so both sides write the same keys:

* ``http-single``: ``--single`` POSTs of ``{"class": "NoopJob", "args": [i]}`` to
  ``/api/v1/queues/bench/jobs``, one request after the other;
* ``http-single-idem``: the same with a distinct ``Idempotency-Key`` on each request;
* ``http-bulk``: ``--bulk`` jobs as POSTs of a list of ``--batch`` jobs;
* ``direct-single``: ``Resque.enqueue("bench", "NoopJob", i)`` ``--single`` times;
* ``direct-bulk``: ``Resque.enqueue_many`` of ``--batch`` jobs per call, ``--bulk`` in all.

Rounds are interleaved (odd rounds forward, even rounds reversed); ``FLUSHDB`` runs before every
task and ``LLEN bench`` must equal the jobs sent after it (HTTP tasks: every answer a 201 with
as many ids as jobs). The timer covers the whole loop, building the bodies and reading the
answers included. Each path is warmed up once before round 1. Reported: jobs/s median
[min–max] per task, the CPU each process spent per job (this client, the web server, the
redis-server's ``INFO cpu``; medians over rounds), and the paired per-round ratios HTTP / direct
and idempotent / plain.
Client and server are two processes, so the HTTP side may use both cores (the direct side uses
one, plus Redis). Needs the web extra (fastapi, uvicorn) and httpx (both in ``.[test]``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import psutil

from pyresque import Resque
from pyresque.store.embedded import RedisServer

QUEUE = "bench"
TOKEN = "bench-token-0123456789abcdef0123456789abcdef"
TASKS = ["http-single", "http-single-idem", "http-bulk", "direct-single", "direct-bulk"]
PAIRS = [("http-single", "direct-single"), ("http-bulk", "direct-bulk"), ("http-single-idem", "http-single")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_web(redis_url: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    log_path = tmp / "web.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "REDIS_BACKEND", "PREFIX") and not k.startswith("PYRESQUE")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pyresque", "web", "--port", str(port), "--redis-url", redis_url,
                                 "--token-file", str(token_file)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"pyresque web exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            httpx.get(f"{url}/api/v1/openapi.json", timeout=1)
            return proc, url, log_path
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("pyresque web did not answer within 30 s")


def http_single(client: httpx.Client, n: int, idem: str | None) -> int:
    path = f"/api/v1/queues/{QUEUE}/jobs"
    for i in range(n):
        headers = {"Idempotency-Key": f"{idem}-{i}"} if idem else None
        resp = client.post(path, content=json.dumps({"class": "NoopJob", "args": [i]}),
                           headers=headers)
        if resp.status_code != 201 or not resp.json().get("id"):
            raise SystemExit(f"request {i}: {resp.status_code} {resp.text[:200]}")
    return n


def http_bulk(client: httpx.Client, n: int, batch: int) -> int:
    path = f"/api/v1/queues/{QUEUE}/jobs"
    sent = 0
    while sent < n:
        size = min(batch, n - sent)
        body = json.dumps([{"class": "NoopJob", "args": [sent + j]} for j in range(size)])
        resp = client.post(path, content=body)
        if resp.status_code != 201 or len(resp.json().get("ids", ())) != size:
            raise SystemExit(f"bulk request at {sent}: {resp.status_code} {resp.text[:200]}")
        sent += size
    return sent


def direct_single(resque: Resque, n: int) -> int:
    for i in range(n):
        resque.enqueue(QUEUE, "NoopJob", i)
    return n


def direct_bulk(resque: Resque, n: int, batch: int) -> int:
    sent = 0
    while sent < n:
        size = min(batch, n - sent)
        resque.enqueue_many(QUEUE, "NoopJob", [[sent + j] for j in range(size)])
        sent += size
    return sent


def cpu_now(server: psutil.Process, resque: Resque) -> tuple[float, float, float]:
    """CPU seconds so far of this process (the client), the web server and the redis-server."""
    info = resque.redis.info("cpu")
    return (sum(psutil.Process().cpu_times()[:2]), sum(server.cpu_times()[:2]),
            float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))


def server_connections(proc: subprocess.Popen[bytes], port: int) -> int:
    conns = psutil.Process(proc.pid).net_connections(kind="tcp")
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=2000, help="jobs per single-job task (one request or call each)")
    parser.add_argument("--bulk", type=int, default=20000, help="jobs per bulk task")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per bulk request or enqueue_many call")
    args = parser.parse_args()

    rates: dict[str, list[float]] = {t: [] for t in TASKS}
    cpu_us: dict[str, list[tuple[float, float, float]]] = {t: [] for t in TASKS}
    ratios: dict[str, list[float]] = {f"{a} / {b}": [] for a, b in PAIRS}
    with RedisServer() as redis_server, tempfile.TemporaryDirectory(prefix="http-enqueue-") as tmp:
        resque = Resque(redis_server.url)
        resque.redis.ping()
        proc, url, log_path = start_web(redis_server.url, Path(tmp))
        port = int(url.rsplit(":", 1)[1])
        web = psutil.Process(proc.pid)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}",
                                                     "Content-Type": "application/json"},
                              timeout=60, limits=limits)
        try:
            runs: dict[str, Callable[[str], int]] = {
                "http-single": lambda tag: http_single(client, args.single, None),
                "http-single-idem": lambda tag: http_single(client, args.single, tag),
                "http-bulk": lambda tag: http_bulk(client, args.bulk, args.batch),
                "direct-single": lambda tag: direct_single(resque, args.single),
                "direct-bulk": lambda tag: direct_bulk(resque, args.bulk, args.batch),
            }
            # warm-up: connections, imports, script loads, on every path
            http_single(client, 20, None)
            http_single(client, 20, "warm")
            http_bulk(client, args.batch, args.batch)
            direct_single(resque, 20)
            direct_bulk(resque, args.batch, args.batch)
            load = os.getloadavg()
            for rnd in range(1, args.rounds + 1):
                order = TASKS if rnd % 2 else list(reversed(TASKS))
                got: dict[str, float] = {}
                for task in order:
                    resque.redis.flushdb()
                    cpu0 = cpu_now(web, resque)
                    t0 = time.perf_counter()
                    sent = runs[task](f"r{rnd}")
                    elapsed = time.perf_counter() - t0
                    cpu1 = cpu_now(web, resque)
                    cpu_us[task].append(tuple(1e6 * (b - a) / sent for a, b in zip(cpu0, cpu1)))  # type: ignore[arg-type]
                    queued = resque.redis.llen(resque.keys.queue(QUEUE))
                    if queued != sent:
                        raise SystemExit(f"{task} round {rnd}: LLEN {queued}, sent {sent}")
                    if task.startswith("http"):
                        conns = server_connections(proc, port)
                        if conns != 1:
                            raise SystemExit(f"{task} round {rnd}: {conns} connections to the server, expected 1")
                    got[task] = sent / elapsed
                    rates[task].append(got[task])
                    print(f"round {rnd} {task}: {sent} jobs in {elapsed:.3f} s = {got[task]:,.0f} jobs/s", flush=True)
                for a, b in PAIRS:
                    ratios[f"{a} / {b}"].append(got[a] / got[b])
        finally:
            client.close()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        resque.redis.flushdb()

    print(f"\nload average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.rounds} rounds; "
          f"single {args.single} jobs, bulk {args.bulk} in requests/calls of {args.batch}; tracked")
    print("\n| task | jobs/s median [min–max] | µs per job | CPU µs per job: client / web server / redis |"
          "\n|---|---|---|---|")
    for task in TASKS:
        v = rates[task]
        med = statistics.median(v)
        cpu = [statistics.median(c[i] for c in cpu_us[task]) for i in range(3)]
        print(f"| `{task}` | {med:,.0f} [{min(v):,.0f}–{max(v):,.0f}] | {1e6 / med:.0f} | "
              f"{cpu[0]:.0f} / {cpu[1]:.0f} / {cpu[2]:.0f} |")
    print("\n| paired ratio (per round) | median [min–max] |\n|---|---|")
    for name, v in ratios.items():
        print(f"| `{name}` | {statistics.median(v):.3f} [{min(v):.3f}–{max(v):.3f}] |")
    idem_us = [1e6 / i - 1e6 / s for i, s in zip(rates["http-single-idem"], rates["http-single"])]
    print(f"\nIdempotency-Key: + {statistics.median(idem_us):.0f} µs per request (median of the per-round differences, "
          f"[{min(idem_us):.0f}–{max(idem_us):.0f}])")
    summary: dict[str, Any] = {"rounds": args.rounds, "single": args.single, "bulk": args.bulk, "batch": args.batch,
                               "load": load, "rates": rates, "cpu_us_client_web_redis": cpu_us,
                               "ratios": ratios, "idempotency_us": idem_us}
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
