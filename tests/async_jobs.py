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
