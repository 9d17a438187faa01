"""Enqueue/dequeue hooks and events, in the documented order."""

from __future__ import annotations

import pytest

import pyresque
from pyresque.jobs import hooks
from pyresque.jobs.resolver import unregister


@pytest.fixture
def calls():
    seen: list = []
    yield seen
    hooks.clear_listeners()


@pytest.fixture
def hooked_job(calls):
    @pyresque.register("HookedJob")
    class HookedJob:
        @staticmethod
        def before_enqueue_a(*args):
            calls.append(("before_enqueue_a", args))
            return args != ("cancel",)

        @staticmethod
        def before_enqueue_b(*args):
            calls.append(("before_enqueue_b", args))

        @staticmethod
        def after_enqueue_log(*args):
            calls.append(("after_enqueue_log", args))

        @staticmethod
        def before_dequeue_check(*args):
            calls.append(("before_dequeue_check", args))
            return args != ("keep",)

        @staticmethod
        def after_dequeue_log(*args):
            calls.append(("after_dequeue_log", args))

        @staticmethod
        def perform(*args):
            return None

    yield HookedJob
    unregister("HookedJob")


def test_enqueue_hooks_and_events_run_in_order(resque, r, calls, hooked_job):
    pyresque.listen("beforeEnqueue", lambda cls, args, queue, job_id: calls.append(("beforeEnqueue", cls, queue)))
    pyresque.listen("afterEnqueue", lambda cls, args, queue, job_id: calls.append(("afterEnqueue", job_id)))
    job_id = resque.enqueue("q", "HookedJob", 1, 2)
    assert calls == [("beforeEnqueue", "HookedJob", "q"), ("before_enqueue_a", (1, 2)), ("before_enqueue_b", (1, 2)),
                     ("after_enqueue_log", (1, 2)), ("afterEnqueue", job_id)]
    assert r.llen("resque:queue:q") == 1


def test_before_enqueue_false_cancels_and_dontcreate_cancels(resque, r, calls, hooked_job):
    assert resque.enqueue("q", "HookedJob", "cancel") is None
    assert ("after_enqueue_log", ("cancel",)) not in calls
    pyresque.listen("beforeEnqueue", lambda *a: (_ for _ in ()).throw(pyresque.DontCreate()))
    assert resque.enqueue("q", "HookedJob", 1) is None
    assert r.llen("resque:queue:q") == 0 and not r.exists("resque:queues")


def test_a_raising_enqueue_hook_propagates_and_nothing_is_pushed(resque, r, calls):
    def boom(*args):
        raise RuntimeError("hook broke")

    pyresque.listen("beforeEnqueue", boom)
    with pytest.raises(RuntimeError, match="hook broke"):
        resque.enqueue("q", "Anything", 1)
    assert r.llen("resque:queue:q") == 0


def test_dequeue_hooks_run_for_class_and_args(resque, r, calls, hooked_job):
    resque.enqueue("q", "HookedJob", "keep")
    resque.enqueue("q", "HookedJob", "drop")
    assert resque.remove("q", "HookedJob", ["keep"]) == 0
    assert resque.remove("q", "HookedJob", ["drop"]) == 1
    assert [c[0] for c in calls if "dequeue" in c[0]] == ["before_dequeue_check", "before_dequeue_check",
                                                           "after_dequeue_log"]
    assert r.llen("resque:queue:q") == 1


def test_unregistered_class_names_run_no_hooks_and_import_nothing(resque, r, calls):
    assert resque.enqueue("q", "os.system", "true") is not None
    assert r.llen("resque:queue:q") == 1


def test_unknown_event_names_are_refused():
    with pytest.raises(ValueError, match="unknown event"):
        pyresque.listen("beforeEverything", print)
