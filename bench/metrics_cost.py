#!/usr/bin/env python3
"""What recording per-class metrics adds to one job's bookkeeping, measured without fork noise.

    .venv/bin/python bench/metrics_cost.py [--rounds 10] [--calls 5000]

The drain bench (``run.py --tasks metrics``) measures the whole cost on fork-mode throughput, but
on a shared 2-vCPU VM its rounds swing by more than the few percent to be seen. This isolates the
part that changed: the finishing script (FINISH_LUA) with metrics on and off, called ``--calls``
times per block, blocks interleaved over ``--rounds``, on a private redis-server. It prints, per
call, the median client wall time (one EVALSHA round trip) and Redis' own time in the script
(INFO commandstats ``usec_per_call`` of evalsha, commands the script ran included), on and off,
and the difference.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pyresque import Resque
from pyresque.store.datastore import Bookkeeping, DataStore
from pyresque.store.embedded import RedisServer

WORKER = "bench-host:1:default"


def block(store: DataStore, calls: int) -> tuple[float, float]:
    """(client µs per call, Redis µs per call) for ``calls`` bookkeepings."""
    store.redis.config_resetstat()
    t0 = time.perf_counter()
    for i in range(calls):
        booked = Bookkeeping()
        booked.timed(f"App\\Jobs\\Job{i % 5}", 0.004 + (i % 7) * 0.01, failed=i % 10 == 0)
        store.finish_job(WORKER, booked)
    wall = (time.perf_counter() - t0) / calls * 1e6
    stats = store.redis.info("commandstats")
    return wall, float(stats["cmdstat_evalsha"]["usec_per_call"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with RedisServer() as server:
        resque = Resque(server.url)
        on = DataStore(resque.redis, resque.keys, metrics=True)
        off = DataStore(resque.redis, resque.keys, metrics=False)
        block(on, 100), block(off, 100)  # warm-up: script loads, connections
        results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        for round_no in range(args.rounds):
            order = [("on", on), ("off", off)] if round_no % 2 == 0 else [("off", off), ("on", on)]
            for name, store in order:
                results[name].append(block(store, args.calls))
    med = {name: (statistics.median(w for w, _ in rows), statistics.median(r for _, r in rows))
           for name, rows in results.items()}
    for name in ("off", "on"):
        print(f"metrics {name:3s}: {med[name][0]:6.1f} µs per bookkeeping (client), {med[name][1]:5.1f} µs in Redis")
    print(f"added: {med['on'][0] - med['off'][0]:.1f} µs client, {med['on'][1] - med['off'][1]:.1f} µs in Redis "
          f"({args.rounds} rounds × {args.calls} calls, medians)")


if __name__ == "__main__":
    main()
