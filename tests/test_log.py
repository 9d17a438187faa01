"""Log output: the queued writer of threaded mode keeps lines whole, in order, and flushed."""

from __future__ import annotations

import json
import os
import threading

import pytest
import structlog

from pyresque import log


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "worker.log"
    with open(path, "w") as stream:
        yield path, stream
    log.flush()
    structlog.reset_defaults()


def _log_from_threads(threads: int, lines: int) -> None:
    def run(n: int) -> None:
        logger = log.get_logger("test").bind(worker=f"slot-{n}")
        for i in range(lines):
            logger.info("job done", seq=i, job_class="SleepJob", duration=0.05)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_queued_json_lines_from_many_threads_are_whole_and_in_order(log_file):
    path, stream = log_file
    log.configure("json", stream=stream, queued=True)
    _log_from_threads(threads=20, lines=50)
    log.flush()
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(docs) == 20 * 50
    for n in range(20):
        mine = [d["seq"] for d in docs if d["worker"] == f"slot-{n}"]
        assert mine == list(range(50))
    assert {d["event"] for d in docs} == {"job done"} and {d["level"] for d in docs} == {"info"}


def test_queued_console_lines_look_as_unqueued_ones(log_file):
    path, stream = log_file
    log.configure("console", stream=stream, queued=True)
    log.get_logger("test").bind(worker="w").error("job failed", job_id="abc", outcome="failed")
    log.flush()
    line = path.read_text()
    assert line.count("\n") == 1
    assert "[error" in line and "job failed" in line and "job_id=abc" in line and "worker=w" in line


def test_a_forked_child_writes_its_lines_itself(log_file):
    path, stream = log_file
    log.configure("json", stream=stream, queued=True)
    logger = log.get_logger("test")
    logger.info("before fork")  # the writer thread exists now; a child has no copy of it
    log.flush()
    pid = os.fork()
    if pid == 0:
        try:
            logger.info("from the child")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    logger.info("after fork")
    log.flush()
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events == ["before fork", "from the child", "after fork"]


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_control_characters_from_redis_never_reach_the_stream_raw(log_file, fmt):
    """A class name with escape sequences is shown escaped, in both formats; a traceback keeps
    its lines (the real worker: tests/worker/test_robustness.py)."""
    path, stream = log_file
    log.configure(fmt, stream=stream)
    logger = log.get_logger("test")
    logger.error("job failed", job_class="Evil\x1b]0;owned\x07\x1b[2J", queue="q\x00\x9b", error="a b\x1b[31m")
    try:
        raise RuntimeError("boom\x1b[2J")
    except RuntimeError:
        logger.exception("internal error")
    text = path.read_text()
    assert not any(c in text for c in "\x1b\x07\x00\x9b"), text
    if fmt == "console":
        assert "job_class=Evil\\x1b]0;owned\\x07\\x1b[2J" in text and "queue=q\\x00\\x9b" in text
        assert "Traceback (most recent call last):\n" in text and "RuntimeError: boom\\x1b[2J" in text
    else:
        doc = json.loads(text.splitlines()[0])
        assert doc["job_class"] == "Evil\x1b]0;owned\x07\x1b[2J"  # exact: JSON escapes it


def test_verbose_0_drops_each_jobs_routine_lines_but_keeps_failures(redis_url, r, tmp_path):
    import json as json_module

    from pyresque import Resque
    from support import WorkerProcess, wait_for

    resque = Resque(redis_url)
    ok = resque.enqueue("default", "PHP_Job", {"n": 1})
    bad = resque.enqueue("default", "FailJob", "loud")
    with WorkerProcess(redis_url, tmp_path, VERBOSE="0", LOGGING="json") as worker:
        wait_for(lambda: resque.status(ok).status == 4 and resque.status(bad).status == 3, what="both jobs")
    events = [json_module.loads(line)["event"] for line in worker.log().splitlines() if line.startswith("{")]
    assert "job started" not in events and "job done" not in events
    assert "job failed" in events and "worker started" in events
