"""Celery app and tasks for the bench: ``celery -A celery_jobs worker`` with ``bench/`` on the path.

The broker URL comes from ``BENCH_REDIS_URL`` (set by run.py). Results are ignored: there is
no result backend, as in a plain fire-and-forget deployment. Everything else is Celery's default.
"""

import os

from celery import Celery

QUEUE = "bench"

app = Celery("celery_jobs", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6391/0"))
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop():
    return None


@app.task(name="bench.latency_probe")
def latency_probe(enqueued_at, result_key, redis_url):
    import time

    delta = time.monotonic() - enqueued_at
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.rpush(result_key, repr(delta))
    finally:
        client.close()
