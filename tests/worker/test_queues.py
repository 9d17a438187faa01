"""Which queues a worker reserves from: globs over very many queues stay cheap."""

from __future__ import annotations

import signal

from pyresque import Resque
from pyresque.wire import payload as wire
from support import WorkerProcess, wait_for


def test_a_glob_worker_serves_and_stops_with_two_hundred_thousand_queues(redis_url, r, tmp_path):
    """The glob's de-duplication was quadratic: with 200k names a QUEUE=* worker never served a
    job and, busy expanding, never reached its signal handling."""
    pipe = r.pipeline(transaction=False)
    for start in range(0, 200_000, 5_000):
        pipe.sadd("resque:queues", *(f"q{n:06d}" for n in range(start, start + 5_000)))
    pipe.execute()
    resque = Resque(redis_url)
    job = resque.enqueue("q199999", "PHP_Job", {})
    with WorkerProcess(redis_url, tmp_path, queue="q1*,*") as worker:
        wait_for(lambda: resque.status(job).status == wire.COMPLETE, timeout=30, what=f"the job\n{worker.log()}")
        worker.signal(signal.SIGQUIT)
        assert worker.wait(15) == 0
