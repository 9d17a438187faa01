"""pyresque job classes for the bench; loaded by the worker with ``APP_INCLUDE=<abs path>``.

The peers' jobs live in their own modules (``rq_jobs.py``, ``celery_jobs.py``) so that no
system pays for importing another's package in its worker or its forked children.
"""

import time

import pyresque


@pyresque.register("NoopJob")
class NoopJob:
    @staticmethod
    def perform(*args):
        return None


@pyresque.register("SleepJob")
class SleepJob:
    @staticmethod
    def perform(*args):
        time.sleep(0.05)


@pyresque.register("LatencyProbe")
class LatencyProbe:
    """Idle -> job start latency: args are (enqueued_at monotonic, result list key, redis url).

    CLOCK_MONOTONIC is system-wide on Linux, so the producer's clock and this one agree. The
    delta is taken first; reporting it (a new connection in a forked child) is not counted.
    """

    @staticmethod
    def perform(enqueued_at, result_key, redis_url):
        delta = time.monotonic() - enqueued_at
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            client.rpush(result_key, repr(delta))
        finally:
            client.close()


@pyresque.register("AsyncSleepJob")
class AsyncSleepJob:
    """SleepJob for async mode: the 50 ms wait as ``await asyncio.sleep`` on the worker's loop."""

    @staticmethod
    async def perform(*args):
        import asyncio

        await asyncio.sleep(0.05)
