"""Running ``async def perform`` as a task on the caller's loop (async mode's way), hooks in order."""

from __future__ import annotations

import asyncio

from pyresque.exceptions import DontPerform
from pyresque.jobs import async_run
from pyresque.jobs.job import Job


class BothFaces:
    """A class offering a sync perform and perform_async: async mode takes the async face."""

    @staticmethod
    def perform(x):
        return {"face": "sync", "x": x}

    @staticmethod
    async def perform_async(x):
        await asyncio.sleep(0)
        return {"face": "async", "x": x}


class PhpStyleAsync:
    calls: list[str] = []

    def setUp(self):
        PhpStyleAsync.calls.append("setUp")

    async def perform(self):
        PhpStyleAsync.calls.append(f"perform {self.args}")
        return asyncio.get_running_loop() is not None

    def tearDown(self):
        PhpStyleAsync.calls.append("tearDown")


class WithAroundHook:
    @staticmethod
    def around_perform_wrap(inner, *args):
        return inner()

    @staticmethod
    async def perform():
        return 1


class SkipsItself:
    @staticmethod
    def before_perform_check(*args):
        raise DontPerform()

    @staticmethod
    async def perform():
        raise AssertionError("must not run")


def _job(cls_name, *args):
    return Job("q", {"class": cls_name, "args": list(args)})


def test_perform_async_is_preferred_on_the_loop():
    assert async_run.runs_on_loop(BothFaces)
    outcome = asyncio.run(async_run.run_async(_job("BothFaces", 3), BothFaces))
    assert outcome.ok and outcome.result_json == '{"face":"async","x":3}'


def test_php_style_async_runs_with_setup_and_teardown_on_the_running_loop():
    PhpStyleAsync.calls.clear()
    outcome = asyncio.run(async_run.run_async(_job("PhpStyleAsync", {"a": 1}), PhpStyleAsync))
    assert outcome.ok and outcome.result_json == "true"
    assert PhpStyleAsync.calls == ["setUp", "perform {'a': 1}", "tearDown"]


def test_around_hooks_and_sync_jobs_do_not_run_on_the_loop():
    assert not async_run.runs_on_loop(WithAroundHook)
    assert not async_run.runs_on_loop(type("Sync", (), {"perform": staticmethod(lambda: None)}))


def test_dont_perform_skips_and_a_cancellation_is_its_outcome():
    skipped = asyncio.run(async_run.run_async(_job("SkipsItself"), SkipsItself))
    assert skipped.ok and skipped.skipped

    class Forever:
        @staticmethod
        async def perform():
            await asyncio.sleep(60)

    async def cancel_it():
        task = asyncio.ensure_future(async_run.run_async(_job("Forever"), Forever))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task
    outcome = asyncio.run(cancel_it())
    assert not outcome.ok and async_run.is_cancellation(outcome)
