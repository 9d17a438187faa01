#!/usr/bin/env python3
"""Time of one ``/metrics`` scrape with 1,000 queues and 1,000 workers (#15), on a private Redis.

    .venv/bin/python bench/scrape.py [--queues 1000] [--workers 1000] [--classes 50] [--scrapes 50]

Starts its own redis-server (``RedisServer``: free loopback port, never 6379), writes the queues
(3 jobs each), the worker registrations (as pyresque, Ruby and php-resque write them: a third
each, one in four working), per-class metrics totals and 100 delayed timestamps, then times
``pyresque.web.prometheus.render`` (what the endpoint runs in its threadpool: the Redis reads and
the text) ``--scrapes`` times, after one warm-up, and the same over HTTP through uvicorn on a
free port. Prints the median and p90 in ms, the body size, and Redis commands per scrape (INFO
commandstats); a small keyspace (10 queues, 10 workers) is timed alongside, for the slope.
Needs the web extra (prometheus-client, starlette, uvicorn).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
import urllib.request
from typing import Any

from pyresque import Resque
from pyresque.store.embedded import RedisServer
from pyresque.wire import payload as wire
from pyresque.wire.keys import METRIC_BUCKETS_MS


def populate(resque: Resque, queues: int, workers: int, classes: int) -> None:
    k, r = resque.keys, resque.redis
    for q in range(queues):
        resque.enqueue_many(f"q{q:04d}", "NoopJob", [[], [], []], track=False)
    now = time.time()
    pipe = r.pipeline(transaction=False)
    for i in range(workers):
        wid = f"host{i % 10}:{10000 + i}:q{i % queues:04d}"
        pipe.sadd(k.workers, wid)
        kind = i % 3
        if kind == 2:  # php-resque: date('c'), no heartbeat
            pipe.set(k.worker_started(wid), time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 600)))
        else:  # Ruby and pyresque: Time#to_s and a heartbeat; pyresque also a prune horizon
            pipe.set(k.worker_started(wid), time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(now - 600)))
            pipe.hset(k.heartbeats, wid, wire.iso_offset(now))
            if kind == 0:
                pipe.hset(k.prune_horizons, wid, "300")
        if i % 4 == 0:
            pipe.set(k.worker(wid), json.dumps({"queue": f"q{i % queues:04d}", "run_at": wire.iso_z(now),
                                                "payload": {"class": "NoopJob", "args": []}}))
    fields: dict[str, Any] = {}
    for c in range(classes):
        name = f"App\\Jobs\\Job{c:03d}"
        fields.update({f"{name}|p": 1000, f"{name}|f": 10, f"{name}|us": 12_345_600})
        fields.update({f"{name}|b{b}": 1000 // (len(METRIC_BUCKETS_MS) + 1) for b in range(len(METRIC_BUCKETS_MS) + 1)})
    if fields:
        pipe.hset(k.metrics_total, mapping=fields)
    for d in range(100):
        ts = int(now) + 60 + d
        pipe.zadd(k.delayed_schedule, {str(ts): ts})
        pipe.rpush(k.delayed(ts), json.dumps({"class": "NoopJob", "args": [], "queue": "q0000"}))
    pipe.execute()


def commands(resque: Resque) -> int:
    stats = resque.redis.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def serve(resque: Resque) -> tuple[str, Any]:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from pyresque.web.prometheus import metrics_endpoint

    app = Starlette(routes=[Route("/metrics", metrics_endpoint)])
    app.state.resque = resque
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}/metrics", server


def timed(step: Any, n: int) -> list[float]:
    step()  # warm-up: connections, script loads
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def measure(queues: int, workers: int, classes: int, scrapes: int) -> dict[str, Any]:
    from pyresque.web.prometheus import render

    with RedisServer() as server:
        resque = Resque(server.url)
        populate(resque, queues, workers, classes)
        body, _ = render(resque)
        before = commands(resque)
        direct = timed(lambda: render(resque), scrapes)
        per_scrape = (commands(resque) - before - 1) / (scrapes + 1)  # (the INFO itself: one more)
        url, http_server = serve(resque)
        over_http = timed(lambda: urllib.request.urlopen(url, timeout=30).read(), scrapes)
        http_server.should_exit = True
    return {"queues": queues, "workers": workers, "classes": classes, "scrapes": scrapes,
            "render_ms_median": statistics.median(direct), "render_ms_p90": _p90(direct),
            "http_ms_median": statistics.median(over_http), "http_ms_p90": _p90(over_http),
            "body_bytes": len(body), "series": body.count(b"\n") - body.count(b"\n#"),
            "redis_commands_per_scrape": round(per_scrape, 1)}


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    for queues, workers, classes in ((10, 10, 5), (args.queues, args.workers, args.classes)):
        res = measure(queues, workers, classes, args.scrapes)
        print(f"{queues} queues, {workers} workers, {classes} classes: scrape median {res['render_ms_median']:.1f} ms "
              f"(p90 {res['render_ms_p90']:.1f}), over HTTP {res['http_ms_median']:.1f} ms "
              f"(p90 {res['http_ms_p90']:.1f}); {res['body_bytes']} bytes, {res['series']} series, "
              f"{res['redis_commands_per_scrape']} Redis commands per scrape")
        print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
