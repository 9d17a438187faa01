"""The master lock's guards, in-process: a lock nobody can lose gets a TTL, a lock nobody touches
is taken over, a lock someone touches is left alone (the real processes are in test_scheduler.py)."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from pyresque.scheduling.lock import MasterLock
from pyresque.store.scheduler_store import SchedulerStore
from support import LOCK


def lock_for(resque, ttl: int) -> MasterLock:
    from pyresque.log import get_logger

    return MasterLock(SchedulerStore(resque.redis, resque.keys), "vm:1", ttl, get_logger("test"))


def test_a_lock_of_another_type_without_a_ttl_gets_one(resque, r):
    r.hset(LOCK, "k", "v")  # before: refreshing it (GET) raised WRONGTYPE on every pass
    lock = lock_for(resque, 5)
    with capture_logs() as logs:
        assert not lock.elect() and not lock.elect()
    assert 0 < r.ttl(LOCK) <= 5 and r.type(LOCK) == b"hash"
    assert [log["holder"] for log in logs if log["log_level"] == "warning"] == ["(a hash)"]  # once
    r.pexpire(LOCK, 1)
    time.sleep(0.01)
    assert lock.elect() and r.get(LOCK) == b"vm:1" and not lock.store.release_lock("vm:2") and lock.release()


def test_a_touched_lock_is_alive_an_untouched_one_is_taken_over(resque, r):
    r.set(LOCK, "somehost:1", ex=1000)
    lock = lock_for(resque, 1)
    assert not lock.elect()
    time.sleep(0.6)
    r.expire(LOCK, 100)  # touched, even if its expiry moves back: someone is alive there
    assert not lock.elect()
    time.sleep(0.6)
    assert not lock.elect()  # 0.6 s untouched: less than our lock timeout
    time.sleep(0.5)
    assert lock.elect() and r.get(LOCK) == b"vm:1" and r.ttl(LOCK) == 1


def test_an_outage_does_not_count_against_the_holder(resque, r):
    """During a Redis outage the holder could not refresh either: the watch starts over."""
    import redis

    from pyresque.scheduling.scheduler import Scheduler, SchedulerOptions

    r.set(LOCK, "rubyhost:1", ex=600)
    ours = Scheduler(resque, SchedulerOptions(lock_ttl=1), hostname="vm")
    ours._idle = lambda seconds: None  # no signal inbox in this process: nothing to wait for
    ours.tick()
    time.sleep(1.1)  # as if Redis had been away this long
    ours._redis_outage(redis.ConnectionError("gone"))
    ours.tick()
    assert not ours.master and r.get(LOCK) == b"rubyhost:1"
    time.sleep(1.1)
    ours.tick()
    assert ours.master  # a whole lock timeout since the outage, still untouched: taken over
