"""RQ job functions for the bench: importable as ``rq_jobs`` (the worker gets ``--path bench``)."""

import time


def noop():
    return None


def sleep_50ms():
    time.sleep(0.05)


def latency_probe(enqueued_at, result_key, redis_url):
    delta = time.monotonic() - enqueued_at
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.rpush(result_key, repr(delta))
    finally:
        client.close()


def http_50ms(url):
    """The HTTP-callback task's equivalent: one POST to the local server answering after 50 ms."""
    import httpx

    response = httpx.post(url, json={"n": 1}, timeout=10)
    response.raise_for_status()
