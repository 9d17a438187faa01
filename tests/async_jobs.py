"""Async job fixtures, in an include of their own: an async job makes the forking helper load
asyncio (and with it threading), which the other tests' children must not inherit."""

from __future__ import annotations

import os

import pyresque


@pyresque.register
class AsyncRubyJob:
    @staticmethod
    async def perform(x):
        import asyncio

        await asyncio.sleep(0.01)
        return {"doubled": x * 2, "pid": os.getpid()}


@pyresque.register("AsyncPhpJob")
class AsyncPhpJob:
    async def perform(self):
        import asyncio

        await asyncio.sleep(0)
        return {"got": self.args}


@pyresque.register
class AsyncFailJob:
    @staticmethod
    async def perform():
        raise ValueError("async boom")


@pyresque.register
class AsyncGateJob:
    """Waits (on the loop) until the test opens its gate; says where it ran and when it was told to stop."""

    @staticmethod
    async def perform(name):
        import asyncio
        import threading

        from fixtures import RECORD_DIR, record

        record("agate_started", {"name": name, "pid": os.getpid(), "thread": threading.get_ident(),
                                 "loop": id(asyncio.get_running_loop())})
        gate = os.path.join(RECORD_DIR, f"gate-{name}")
        try:
            while not os.path.exists(gate):
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            record("agate_cancelled", {"name": name})
            raise
        record("agate_finished", {"name": name})
        return "passed"


@pyresque.register
class AsyncLoopBlockerJob:
    """An async job that wrongly blocks its loop (a sync sleep): the lag probe must notice."""

    @staticmethod
    async def perform(seconds):
        import time

        time.sleep(seconds)
        return "blocked"
