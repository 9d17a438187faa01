"""``LOGGING=json``: what a job prints comes out as JSON log events, in every execution mode."""

from __future__ import annotations

import io
import json
import signal
import threading

from pyresque import Resque
from pyresque.worker import output
from support import WorkerProcess, wait_for

PRINTING_JOBS = '''
import sys

import pyresque


@pyresque.register
class PrintJob:
    @staticmethod
    def perform(text):
        print(text)
        print("two", "words")
        sys.stderr.write("to stderr\\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(b"bytes too\\n")
        sys.stdout.write("no newline at the end")
        return "done"
'''


def test_capture_turns_lines_into_events_per_thread():
    seen = []
    capture = output.LineCapture("stdout", io.StringIO(), lambda name, line, job: seen.append((name, line, job)))
    capture.write("one\ntw")
    capture.write("o\r\n")
    assert seen == [("stdout", "one", None), ("stdout", "two", None)]

    def in_a_job():
        output._jobs[threading.get_ident()] = "job-1"
        try:
            capture.write("half ")  # another thread's unfinished line does not mix with this one
            capture.write("a line\nand a rest")
            capture.flush()
        finally:
            output._jobs.pop(threading.get_ident(), None)

    capture.write("main ")
    thread = threading.Thread(target=in_a_job)
    thread.start()
    thread.join()
    capture.write("thread's line\n")
    assert seen[2:] == [("stdout", "half a line", "job-1"), ("stdout", "and a rest", "job-1"),
                        ("stdout", "main thread's line", None)]


def test_a_line_without_end_is_cut_into_bounded_pieces():
    seen = []
    capture = output.LineCapture("stdout", io.StringIO(), lambda name, line, job: seen.append(line))
    capture.write("x" * (output.MAX_LINE * 2 + 5))
    assert seen == ["x" * output.MAX_LINE] * 2
    capture.flush()
    assert seen[-1] == "xxxxx"


def test_the_helper_renders_events_as_json_lines():
    stream = io.StringIO()
    output.json_emitter(stream)("stdout", 'say "hi"', {"job_id": "abc", "job_class": "Hi", "attempt": 2})
    event = json.loads(stream.getvalue())
    assert event["event"] == "job output" and event["line"] == 'say "hi"' and event["job_id"] == "abc"
    assert (event["job_class"], event["attempt"]) == ("Hi", 2)
    assert event["stream"] == "stdout" and event["level"] == "info" and event["timestamp"].endswith("Z")


def test_job_output_is_json_in_json_mode(redis_url, r, tmp_path, worker_mode):
    include = tmp_path / "printing_jobs.py"
    include.write_text(PRINTING_JOBS)
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "PrintJob", "hello from the job")
    with WorkerProcess(redis_url, tmp_path, APP_INCLUDE=str(include), LOGGING="json") as worker:
        ids = worker.worker_ids(r)
        wait_for(lambda: resque.status(job_id).status == 4, what=f"the job\n{worker.log()}")
        worker.signal(signal.SIGQUIT)
        worker.wait()
    lines = worker.log().splitlines()
    events = []
    for line in lines:
        events.append(json.loads(line))  # every line is JSON: nothing printed raw
    printed = [(e["stream"], e["line"]) for e in events if e.get("event") == "job output" and e.get("job_id") == job_id]
    assert printed == [("stdout", "hello from the job"), ("stdout", "two words"), ("stderr", "to stderr"),
                       ("stdout", "bytes too"), ("stdout", "no newline at the end")]
    # every line about the job, the worker's and the child's, names it the same way
    about_the_job = [e for e in events if e.get("job_id") == job_id]
    assert {e["event"] for e in about_the_job} >= {"job started", "job output", "job done"}
    for event in about_the_job:
        assert (event["job_class"], event["queue"], event["attempt"]) == ("PrintJob", "default", 1), event
        assert event["worker"] in ids, event


def test_console_mode_leaves_job_output_alone(redis_url, r, tmp_path):
    include = tmp_path / "printing_jobs.py"
    include.write_text(PRINTING_JOBS)
    resque = Resque(redis_url)
    job_id = resque.enqueue("default", "PrintJob", "plain text")
    with WorkerProcess(redis_url, tmp_path, APP_INCLUDE=str(include)) as worker:
        wait_for(lambda: resque.status(job_id).status == 4, what=f"the job\n{worker.log()}")
        worker.signal(signal.SIGQUIT)
        worker.wait()
    assert "plain text\ntwo words\n" in worker.log() and "job output" not in worker.log()
