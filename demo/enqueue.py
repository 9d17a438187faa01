"""Enqueue a job, like php-resque's demo/queue.php: python demo/enqueue.py PHP_Job '{"name":"Chris"}'."""

from __future__ import annotations

import json
import sys

from pyresque import Resque

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python demo/enqueue.py CLASS [ARG_JSON ...]")
    job_id = Resque().enqueue("default", sys.argv[1], *[json.loads(a) for a in sys.argv[2:]])
    print(f"Queued job {job_id}")
