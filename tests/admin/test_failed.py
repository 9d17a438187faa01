"""The failed-job toolkit: php-resque and Ruby records listed, retried and removed through the real
CLI and the API, against a real Redis, with the list changing underneath."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import vectors
from pyresque.admin.failed import AlreadyRetried, FailedJobChanged, FailedJobNotFound, FailedJobs, NotRetryable
from pyresque.cli.failed import parse_since
from pyresque.store.embedded import free_port
from pyresque.wire import payload as wire

FAILED = "resque:failed"


def run(redis_url, *args, timeout=30):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX")}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "pyresque.cli", "failed", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def failed_records(name, state):
    return vectors.state(vectors.load(name), state)["resque:failed"]["value"]


PHP_FAIL, PHP_ERROR = failed_records("php-resque-v1.3.6/c_job_exception", "after_error_failure")
PHP_MISSING = failed_records("php-resque-v1.3.6/d_missing_class", "after_failure")[0]
PHP_EXIT = failed_records("php-resque-v1.3.6/e_dirty_exit", "after_exit1")[0]
CHRIS_FAIL = failed_records("php-resque-chrisboulton/c_job_exception", "after_exception_failure")[0]
RUBY_FAIL = failed_records("ruby-resque/f3_ruby_failure_requeue", "before_requeue")[0]
NOT_JSON = b"\xff\x00 not a failure record"


def failed_list(client):
    return client.lrange(FAILED, 0, -1)


def lines_of(done):
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def one_line_error(done, code, message):
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr


def ruby_record(job_class, queue, args=(1,), when=None, payload_extra=None):
    payload = dict(wire.build_payload(job_class, list(args), None), **(payload_extra or {}))
    return wire.encode_failure(wire.build_failure(payload, "RuntimeError", f"{job_class} broke", ["x.rb:1"],
                                                  "vm:1:" + queue, queue, when))


# -- listing -----------------------------------------------------------------------------------
def test_list_reads_php_ruby_chrisboulton_and_raw_records(redis_url, r):
    r.rpush(FAILED, PHP_FAIL, CHRIS_FAIL, RUBY_FAIL, NOT_JSON, PHP_EXIT)
    assert run(redis_url, "count").stdout.strip() == "5"

    docs = [json.loads(line) for line in lines_of(run(redis_url, "list", "--json"))]
    assert [d["index"] for d in docs] == [0, 1, 2, 3, 4]
    assert [d["record"] and d["record"]["payload"]["class"] for d in docs] == \
        ["PHP_FailJob", "PHP_FailJob", "FailJob", None, "PHP_ExitJob"]
    assert docs[0]["record"]["backtrace"][0].startswith("#0 <PHP_RESQUE_DIR>/lib/Resque/Job.php(201)")
    assert docs[3]["raw_base64"] == "/wAgbm90IGEgZmFpbHVyZSByZWNvcmQ=" and docs[3]["record"] is None

    text = lines_of(run(redis_url, "list"))
    assert "2026-11-22 04:52:42 UTC  default  PHP_FailJob  RuntimeException: boom from PHP_FailJob" in text[0]
    assert "2026-11-22 04:56:04 UTC" in text[1]  # chrisboulton's strftime format
    assert "2026-11-22 04:58:06 UTC  default  FailJob  ArgumentError: boom from FailJob" in text[2]  # Ruby's
    assert "(not JSON) b'\\xff\\x00 not a failure record'" in text[3]
    assert "Resque_Job_DirtyExitException: Job exited with exit code 1" in text[4]

    def indices(*options):
        return [json.loads(line)["index"] for line in lines_of(run(redis_url, "list", "--json", *options))]

    assert indices("--class", "PHP_FailJob") == [0, 1]
    assert indices("--limit", "2") == [3, 4]  # the newest two, in list order
    assert indices("--queue", "default", "--limit", "2") == [2, 4]  # a raw record matches no filter
    assert indices("--since", "2026-11-22T04:56:00Z") == [1, 2]
    assert indices("--since", "2026-11-22 04:52:50") == [1, 2, 4]  # no offset: UTC
    assert indices("--queue", "other") == []
    assert lines_of(run(redis_url, "list", "--queue", "other")) == ["(no failed jobs)"]


def test_list_since_relative_times(redis_url, r, resque):
    now = time.time()
    r.rpush(FAILED, ruby_record("OldJob", "default", when=now - 3 * 86400),
            ruby_record("HourJob", "default", when=now - 2 * 3600), ruby_record("NewJob", "default", when=now - 60))
    assert abs(parse_since("2h", now) - (now - 7200)) < 1e-6
    assert abs(parse_since("30m", now) - (now - 1800)) < 1e-6
    assert abs(parse_since("1d", now) - (now - 86400)) < 1e-6
    assert parse_since("2026-11-22") == parse_since("2026-11-22T00:00:00+00:00") == 1795305600

    def classes(since):
        listed = lines_of(run(redis_url, "list", "--json", "--since", since))
        return [json.loads(line)["record"]["payload"]["class"] for line in listed]

    assert classes("30m") == ["NewJob"]
    assert classes("3h") == ["HourJob", "NewJob"]
    assert classes("4d") == ["OldJob", "HourJob", "NewJob"]
    assert [job.job_class for job in FailedJobs(resque).list(since=now - 7300)] == ["HourJob", "NewJob"]


def test_show_prints_the_whole_record(redis_url, r):
    r.rpush(FAILED, PHP_FAIL, NOT_JSON)
    shown = lines_of(run(redis_url, "show", "0"))
    assert "id:         d903e9e69d194b33880afd3d39a2ff61" in shown
    assert "  #4 {main}" in shown and "  #0 <PHP_RESQUE_DIR>/lib/Resque/Job.php(201): PHP_FailJob->perform()" in shown
    assert json.loads(run(redis_url, "show", "0", "--json").stdout)["record"] == json.loads(PHP_FAIL)
    assert any("not JSON: it can only be removed" in line for line in lines_of(run(redis_url, "show", "1")))


# -- retry -------------------------------------------------------------------------------------
def test_retry_then_remove_ruby_record_matches_ruby_byte_for_byte(redis_url, r):
    vector = vectors.load("ruby-resque/f3_ruby_failure_requeue")
    vectors.load_state(r, vectors.state(vector, "before_requeue"))

    done = run(redis_url, "retry", "0")
    assert done.stdout.strip() == "Retried failed job 0 (FailJob) on default"
    assert vectors.normalise_state(vectors.dump(r)) == vectors.normalise_state(vectors.state(vector, "after_requeue"))
    assert r.lrange("resque:queue:default", 0, -1) == [b'{"class":"FailJob","args":[1,"two"]}']
    retried = json.loads(r.lindex(FAILED, 0))
    assert list(retried)[-1] == "retried_at" and abs(wire.parse_time(retried["retried_at"]) - time.time()) < 5

    assert run(redis_url, "remove", "0").stdout.strip() == "Removed failed job 0 (FailJob on default)"
    assert vectors.normalise_state(vectors.dump(r)) == vectors.normalise_state(vectors.state(vector, "after_remove"))


def test_retry_php_record_keeps_its_id_and_status_goes_back_to_waiting(redis_url, r):
    vector = vectors.load("cross-php-v1.3.6-ruby/h3_failure_cross_read_requeue")
    job_id = vectors.note(vector, "php_job_id")
    vectors.load_state(r, vectors.state(vector, "two_failures"))
    before = time.time()

    done = run(redis_url, "retry", "0")
    assert done.stdout.strip() == f"Retried failed job 0 (PHP_FailJob) on default as job {job_id}"

    # The record is rewritten as Ruby's requeue rewrites it (Ruby's encoder, retried_at appended)...
    ruby_after = vectors.state(vector, "after_requeue")
    assert [vectors.normalise(v.decode()) for v in failed_list(r)] == \
        [vectors.normalise(v) for v in ruby_after["resque:failed"]["value"]]
    # ...but the job goes back in php-resque's shape with the same id, which Ruby's requeue drops.
    (item,) = r.lrange("resque:queue:default", 0, -1)
    head = b'{"class":"PHP_FailJob","args":[{"name":"x","n":1}],"id":"' + job_id.encode()
    assert item.startswith(head + b'","prefix":"","queue_time":')
    pushed = json.loads(item)
    assert before - 1 <= pushed["queue_time"] <= time.time() + 1
    assert {"class": pushed["class"], "args": pushed["args"]} == json.loads(ruby_after["resque:queue:default"]["value"][0])
    status = wire.decode_status(r.get(f"resque:job:{job_id}:status"))
    assert status.status == wire.WAITING and before - 1 <= status.updated <= time.time() + 1
    assert r.ttl(f"resque:job:{job_id}:status") == -1  # a waiting job's status does not expire
    assert r.smembers("resque:queues") == {b"default"}


def test_retry_chrisboulton_and_prefixed_php_records_in_a_custom_namespace(redis_url, r):
    from pyresque import Resque

    failed = FailedJobs(Resque(redis_url, prefix="myapp"))
    prefixed = json.loads(PHP_FAIL)
    prefixed["payload"]["prefix"] = "billing"
    r.rpush("myapp:failed", CHRIS_FAIL, wire.encode_failure(prefixed))

    chris = failed.retry(0)
    assert chris.job_id == "29f8a91e41dbfe403aa7f582d8380975" and chris.retried_at
    assert wire.decode_status(r.get("myapp:job:29f8a91e41dbfe403aa7f582d8380975:status")).status == wire.WAITING
    failed.retry(1)
    assert wire.decode_status(r.get("myapp:job:billing_d903e9e69d194b33880afd3d39a2ff61:status")).status == wire.WAITING
    items = [json.loads(item) for item in r.lrange("myapp:queue:default", 0, -1)]
    assert [(i["id"], i["prefix"]) for i in items] == [("29f8a91e41dbfe403aa7f582d8380975", ""),
                                                       ("d903e9e69d194b33880afd3d39a2ff61", "billing")]
    assert r.keys("resque:*") == []


def test_retry_bare_payload_is_written_with_rubys_encoder(resque, r):
    ruby_item = vectors.state(vectors.load("ruby-resque/f1b_ruby_enqueue_encoding"), "after_enqueue")[
        "resque:queue:default"]["value"][0]  # "é/ü", 1.0 and {} exactly as Ruby writes them
    r.rpush(FAILED, wire.encode_failure(wire.build_failure(json.loads(ruby_item), "E", "e", [], "vm:1:default", "default")))
    FailedJobs(resque).retry(0)
    assert r.lrange("resque:queue:default", 0, -1) == [ruby_item.encode()]


def test_retrying_twice_needs_again_and_keeps_the_earlier_time(resque, r):
    failed = FailedJobs(resque)
    r.rpush(FAILED, RUBY_FAIL)
    first = failed.retry(0)
    with pytest.raises(AlreadyRetried, match=r"was already retried at .* UTC: .*give --again"):
        failed.retry(0)
    assert r.llen("resque:queue:default") == 1 and failed_list(r) == [first.raw]
    second = failed.retry(0, again=True)
    assert list(second.record).count("retried_at") == 1 and list(second.record)[-1] == "retried_at"
    assert second.retried_before == [first.retried_at] and r.llen("resque:queue:default") == 2
    third = failed.retry(0, again=True)
    assert third.retried_before == [first.retried_at, second.retried_at]


def test_a_raw_record_is_removed_but_not_retried(redis_url, r):
    r.rpush(FAILED, PHP_MISSING, NOT_JSON, RUBY_FAIL)
    one_line_error(run(redis_url, "retry", "1"), 1, "failed job 1 is not a JSON record: it can only be removed")
    assert not r.exists("resque:queue:default") and failed_list(r)[1] == NOT_JSON

    assert run(redis_url, "remove", "1").stdout.strip() == "Removed failed job 1 (not JSON)"
    assert failed_list(r) == [PHP_MISSING.encode(), RUBY_FAIL.encode()]


def test_remove_deletes_exactly_its_record_even_beside_one_equal_to_the_old_marker(resque, r):
    # Removal used to LSET the record to the fixed "__pyresque_removed__", then LREM the first
    # such value: a planted one ahead of it was deleted instead, and the marker took the
    # record's place (the list came out [PHP_FAIL, planted], reordered, and success reported).
    planted = b"__pyresque_removed__"
    r.rpush(FAILED, planted, PHP_FAIL, RUBY_FAIL)
    done = FailedJobs(resque).remove(2)
    assert done.raw == RUBY_FAIL.encode() and done.index == 2
    assert failed_list(r) == [planted, PHP_FAIL.encode()]


def test_unretryable_records_are_refused(resque, r):
    r.rpush(FAILED, json.dumps({"failed_at": "x", "payload": {"args": [1]}, "queue": "default"}),
            json.dumps({"payload": {"class": "A", "args": {"k": 1}}, "queue": "default"}),
            json.dumps({"payload": {"class": "A", "args": []}, "queue": "a,b"}))
    failed = FailedJobs(resque)
    for index, message in [(0, "no payload with a job class"), (1, "args that are not a list"), (2, "invalid queue name")]:
        with pytest.raises(NotRetryable, match=message):
            failed.retry(index)
    assert r.keys("resque:queue:*") == []


# -- the list changing underneath --------------------------------------------------------------
@pytest.mark.parametrize("operation", ["retry", "remove"])
def test_an_entry_read_earlier_is_followed_when_the_list_shifts(resque, r, operation):
    a, b, c = (ruby_record(name, "default") for name in ("AJob", "BJob", "CJob"))
    r.rpush(FAILED, a, b, c)
    failed = FailedJobs(resque)
    entry = failed.get(2)
    r.lrem(FAILED, 1, a)  # resque-web removes an earlier record meanwhile: CJob is now at 1

    done = getattr(failed, operation)(entry)
    assert done.index == 1 and done.job_class == "CJob"
    if operation == "retry":
        assert failed_list(r)[0] == b.encode() and json.loads(failed_list(r)[1])["payload"]["class"] == "CJob"
        assert r.lrange("resque:queue:default", 0, -1) == [b'{"class":"CJob","args":[1]}']
    else:
        assert failed_list(r) == [b.encode()]


@pytest.mark.parametrize("operation, store_method", [("retry", "requeue_failed"), ("remove", "remove_failed")])
def test_a_shift_between_reading_and_acting_hits_the_record_that_was_read(resque, r, operation, store_method):
    a, b, c = (ruby_record(name, "default") for name in ("AJob", "BJob", "CJob"))
    r.rpush(FAILED, a, b, c)
    failed = FailedJobs(resque)
    original = getattr(resque.store, store_method)
    calls = []

    def shift_first(index, *args):
        if not calls:
            r.lrem(FAILED, 1, a)  # lands after LINDEX 1 read BJob: index 1 now holds CJob
        calls.append(index)
        return original(index, *args)

    setattr(resque.store, store_method, shift_first)
    done = getattr(failed, operation)(1)
    assert calls == [1, 0] and done.job_class == "BJob"
    if operation == "retry":
        assert r.lrange("resque:queue:default", 0, -1) == [b'{"class":"BJob","args":[1]}']
        assert failed_list(r)[1] == c.encode()
    else:
        assert failed_list(r) == [c.encode()]


def test_a_record_removed_or_changed_meanwhile_is_refused(resque, r):
    a, b = ruby_record("AJob", "default"), ruby_record("BJob", "default")
    r.rpush(FAILED, a, b)
    failed = FailedJobs(resque)
    entry = failed.get(1)
    r.lset(FAILED, 1, b[:-1] + ',"retried_at":"2026/11/22 04:58:56 UTC"}')  # resque-web retried it
    with pytest.raises(FailedJobChanged, match="removed or changed by someone else"):
        failed.retry(entry)
    r.lrem(FAILED, 1, a)
    with pytest.raises(FailedJobChanged):
        failed.remove(entry)
    assert not r.exists("resque:queue:default") and r.llen(FAILED) == 1


def test_cli_digest_follows_a_moved_record_and_refuses_a_vanished_one(redis_url, r):
    r.rpush(FAILED, PHP_ERROR, RUBY_FAIL, PHP_EXIT)
    listed = {json.loads(line)["index"]: json.loads(line)["digest"] for line in lines_of(run(redis_url, "list", "--json"))}
    r.lrem(FAILED, 1, PHP_ERROR)  # the list shifts after it was listed

    done = run(redis_url, "retry", "1", "--digest", listed[1])
    assert done.stdout.strip() == "Retried failed job 0 (FailJob) on default (it had moved from index 1 to 0)"
    assert r.lrange("resque:queue:default", 0, -1) == [b'{"class":"FailJob","args":[1,"two"]}']
    assert json.loads(failed_list(r)[1]) == json.loads(PHP_EXIT)  # the record now at index 1 was left alone

    one_line_error(run(redis_url, "remove", "0", "--digest", listed[0]), 1, "it was removed, or changed (retried)")
    one_line_error(run(redis_url, "retry", "0", "--digest", listed[1]), 1, "it was removed, or changed (retried)")
    assert r.llen(FAILED) == 2 and r.llen("resque:queue:default") == 1
    assert run(redis_url, "remove", "1", "--digest", listed[2]).stdout.strip() == "Removed failed job 1 (PHP_ExitJob on default)"


# -- bulk --------------------------------------------------------------------------------------
def test_bulk_retry_remove_and_clear_by_class_and_queue(redis_url, r):
    other = ruby_record("OtherJob", "other")
    r.rpush(FAILED, PHP_FAIL, PHP_ERROR, RUBY_FAIL, other, NOT_JSON)

    assert lines_of(run(redis_url, "retry", "--class", "PHP_FailJob")) == ["Retried 1 failed job"]
    assert [json.loads(i)["id"] for i in r.lrange("resque:queue:default", 0, -1)] == ["d903e9e69d194b33880afd3d39a2ff61"]
    assert lines_of(run(redis_url, "retry", "--queue", "other")) == ["Retried 1 failed job"]
    assert r.lrange("resque:queue:other", 0, -1) == [b'{"class":"OtherJob","args":[1]}']

    out = lines_of(run(redis_url, "retry", "--all"))
    assert out == ["Retried 2 failed jobs",
                   "left 2 failed jobs alone: they were retried before (--again retries them once more)",
                   "skipped 4: failed job 4 is not a JSON record: it can only be removed"]
    assert r.llen("resque:queue:default") == 3 and r.llen("resque:queue:other") == 1
    assert all("retried_at" in json.loads(raw) for raw in failed_list(r)[:4]) and r.llen(FAILED) == 5

    assert lines_of(run(redis_url, "remove", "--queue", "other")) == ["Removed 1 failed job"]
    assert lines_of(run(redis_url, "remove", "--class", "FailJob", "--queue", "default")) == ["Removed 1 failed job"]
    assert lines_of(run(redis_url, "clear", "--queue", "default")) == ["Removed 2 failed jobs from default"]
    assert failed_list(r) == [NOT_JSON]
    assert lines_of(run(redis_url, "clear")) == ["Removed 1 failed job"]
    assert not r.exists(FAILED) and run(redis_url, "count").stdout.strip() == "0"


def test_bulk_remove_stays_exact_while_others_change_the_list(resque, r):
    xs = [ruby_record(f"X{i}", "x") for i in range(3)]
    ys = [ruby_record(f"Y{i}", "y") for i in range(2)]
    r.rpush(FAILED, xs[0], ys[0], xs[1], ys[1], xs[2])
    failed = FailedJobs(resque)
    original = resque.store.remove_failed
    late = ruby_record("X9", "x")
    calls = []

    def meanwhile(index, expected):
        calls.append(index)
        if len(calls) == 1:
            r.lrem(FAILED, 1, ys[0])  # someone removes an earlier record...
            r.rpush(FAILED, late)  # ...and a worker appends a new failure
        return original(index, expected)

    resque.store.remove_failed = meanwhile
    result = failed.remove_where(queue="x")
    assert (result.done, result.gone, result.skipped) == (3, 0, [])
    assert calls == [4, 3, 2, 1, 0]  # X2 and X1 were followed to where the shift had put them
    assert failed_list(r) == [ys[1].encode(), late.encode()]


def test_bulk_retry_counts_records_removed_meanwhile(resque, r):
    records = [ruby_record(f"J{i}", "default") for i in range(3)]
    r.rpush(FAILED, *records)
    failed = FailedJobs(resque)
    original = resque.store.requeue_failed

    def meanwhile(index, expected, *args):
        if r.lindex(FAILED, 0) == records[0].encode():
            r.lrem(FAILED, 1, records[0])
        return original(index, expected, *args)

    resque.store.requeue_failed = meanwhile
    result = failed.retry_all()
    assert (result.done, result.gone) == (2, 1)
    assert [json.loads(i)["class"] for i in r.lrange("resque:queue:default", 0, -1)] == ["J2", "J1"]


# -- answers: ids, attempts, retrying once ----------------------------------------------------
PHP_ID = "d903e9e69d194b33880afd3d39a2ff61"  # PHP_FAIL's job


def test_list_shows_job_ids_and_filters_by_id(redis_url, r):
    r.rpush(FAILED, PHP_FAIL, RUBY_FAIL, NOT_JSON, PHP_ERROR)
    text = lines_of(run(redis_url, "list"))
    assert text[0].split()[2] == PHP_ID and text[1].split()[2] == "-" and text[2].split()[2:4] == ["-", "(not"]
    assert text[3].split()[2] == json.loads(PHP_ERROR)["payload"]["id"]
    docs = [json.loads(line) for line in lines_of(run(redis_url, "list", "--json"))]
    assert [d["id"] for d in docs] == [PHP_ID, None, None, json.loads(PHP_ERROR)["payload"]["id"]]
    only = lines_of(run(redis_url, "list", "--id", PHP_ID))
    assert len(only) == 1 and only[0].split()[:3] == ["0", hashlib_short(PHP_FAIL), PHP_ID]
    assert lines_of(run(redis_url, "list", "--id", "nope")) == ["(no failed jobs)"]


def hashlib_short(raw):
    import hashlib

    return hashlib.sha1(raw.encode()).hexdigest()[:8]


def test_show_by_id_gives_attempts_retry_history_and_retries(redis_url, r, resque):
    payload = wire.build_payload("FlakyJob", [1], "f" * 32, "", 1795323100.0)
    for attempt in (1, 2):  # what the worker's @retry writes between runs
        payload = wire.for_retry(payload, attempt, "IOError", f"disk busy ({attempt})", 1795323100.0 + attempt)
    record = wire.encode_failure(wire.build_failure(payload, "IOError", "disk busy (3)", ["a.py:1"], "vm:1:default",
                                                    "default", 1795323110.0))
    r.rpush(FAILED, RUBY_FAIL, record, PHP_FAIL)
    out = lines_of(run(redis_url, "show", "--id", "f" * 32))
    assert out[0] == "index:      1" and "attempts:   3 (this failure is run 3; earlier runs:)" in out
    assert "  attempt 1  2026/11/22 04:51:41 UTC  IOError: disk busy (1)" in out
    assert "  attempt 2  2026/11/22 04:51:42 UTC  IOError: disk busy (2)" in out
    assert "retried:    never" in out
    FailedJobs(resque).retry(1)
    FailedJobs(resque).retry(1, again=True)
    out = lines_of(run(redis_url, "show", "1"))
    assert any(line.startswith("retried:    2 times, last at ") and "(before: 20" in line for line in out), out
    ruby = lines_of(run(redis_url, "show", "0"))
    assert "attempts:   1" in ruby and "retried:    never" in ruby
    one_line_error(run(redis_url, "show", "--id", "e" * 32), 1, f"no failed job with id {'e' * 32}")
    with pytest.raises(FailedJobNotFound):
        FailedJobs(resque).by_id("e" * 32)


def test_show_cuts_long_fields_unless_full(redis_url, r):
    long_args = ["x" * 5000]
    record = wire.encode_failure(wire.build_failure({"class": "Big", "args": long_args}, "E", "é" * 3000,
                                                    [f"frame {i} " + "y" * 100 for i in range(100)], "w", "q"))
    r.rpush(FAILED, record)
    out = run(redis_url, "show", "0").stdout
    args_line = next(line for line in out.splitlines() if line.startswith("args:"))
    shown_args = json.dumps(long_args)
    assert args_line.endswith(f" ({len(shown_args) - 2000} more bytes; --full shows all)")
    error_line = next(line for line in out.splitlines() if line.startswith("error:"))
    assert error_line.count("é") == 1000 and error_line.endswith(" (4000 more bytes; --full shows all)")
    assert "frame 99" not in out and "more bytes; --full shows all)" in out.splitlines()[-1]
    assert len(out) < 8000
    full = run(redis_url, "show", "0", "--full").stdout
    assert "x" * 5000 in full and "é" * 3000 in full and "frame 99 " in full and "--full shows all" not in full
    assert json.loads(run(redis_url, "show", "0", "--json").stdout)["record"]["payload"]["args"] == long_args  # JSON: whole


def test_cli_retry_twice_is_refused_without_again(redis_url, r):
    r.rpush(FAILED, RUBY_FAIL, PHP_FAIL)
    assert run(redis_url, "retry", "0").returncode == 0
    again = run(redis_url, "retry", "0")
    one_line_error(again, 1, "failed job 0 (FailJob on default) was already retried at ")
    assert "give --again" in again.stderr and r.llen("resque:queue:default") == 1
    assert lines_of(run(redis_url, "retry", "0", "--again"))[0] == "Retried failed job 0 (FailJob) on default"
    assert r.llen("resque:queue:default") == 2

    assert lines_of(run(redis_url, "retry", "--id", PHP_ID)) == [
        f"Retried failed job 1 (PHP_FailJob) on default as job {PHP_ID}"]
    one_line_error(run(redis_url, "retry", "--id", PHP_ID), 1, "was already retried at")
    assert lines_of(run(redis_url, "retry", "--all")) == [
        "Retried 0 failed jobs", "left 2 failed jobs alone: they were retried before (--again retries them once more)"]
    assert r.llen("resque:queue:default") == 3
    assert lines_of(run(redis_url, "retry", "--all", "--again")) == ["Retried 2 failed jobs"]
    assert r.llen("resque:queue:default") == 5 and r.llen(FAILED) == 2


def test_retry_remove_moves_the_record_out_and_the_env_sets_the_default(redis_url, r):
    r.rpush(FAILED, PHP_FAIL, RUBY_FAIL, PHP_ERROR)
    done = lines_of(run(redis_url, "retry", "1", "--remove"))
    assert done == ["Retried failed job 1 (FailJob) on default; its record was removed"]
    assert failed_list(r) == [PHP_FAIL.encode(), PHP_ERROR.encode()]
    assert r.lrange("resque:queue:default", 0, -1) == [b'{"class":"FailJob","args":[1,"two"]}']

    env = {"PYRESQUE_FAILED_RETRY": "remove"}
    done = run_env(redis_url, env, "retry", "--id", PHP_ID)
    assert done.stdout.strip() == f"Retried failed job 0 (PHP_FailJob) on default as job {PHP_ID}; its record was removed"
    assert failed_list(r) == [PHP_ERROR.encode()] and r.llen("resque:queue:default") == 2
    kept = run_env(redis_url, env, "retry", "0", "--keep")
    assert kept.returncode == 0 and "retried_at" in json.loads(r.lindex(FAILED, 0))
    one_line_error(run_env(redis_url, {"PYRESQUE_FAILED_RETRY": "delete"}, "retry", "0", "--again"), 2,
                   "PYRESQUE_FAILED_RETRY must be 'keep' or 'remove', not 'delete'")
    assert lines_of(run_env(redis_url, env, "retry", "--all", "--again")) == ["Retried 1 failed job"]
    assert not r.exists(FAILED) and r.llen("resque:queue:default") == 4


def run_env(redis_url, extra, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PREFIX", "PYRESQUE_FAILED_RETRY")}
    env.update(extra, REDIS_URL=redis_url)
    return subprocess.run([sys.executable, "-m", "pyresque.cli", "failed", *args], env=env, capture_output=True,
                          text=True, timeout=30)


def test_retry_remove_is_exact_when_the_list_shifts(resque, r):
    a, b, c = (ruby_record(name, "default") for name in ("AJob", "BJob", "CJob"))
    r.rpush(FAILED, a, b, c)
    failed = FailedJobs(resque)
    entry = failed.get(2)
    r.lrem(FAILED, 1, a)
    done = failed.retry(entry, remove=True)
    assert done.index == 1 and failed_list(r) == [b.encode()]
    assert r.lrange("resque:queue:default", 0, -1) == [b'{"class":"CJob","args":[1]}']


def test_retrying_a_tracked_job_drops_its_failure_summary(resque, r):
    r.rpush(FAILED, PHP_FAIL)
    r.set(f"resque:job:{PHP_ID}:status", '{"status":3,"updated":1795323162,"started":1795323161,"result":null}')
    r.set(f"resque:pyresque_failure:{PHP_ID}", '{"exception":"RuntimeException","error":"boom","updated":1795323162}')
    assert str(resque.status(PHP_ID).error) == "RuntimeException: boom"
    FailedJobs(resque).retry(0)
    assert resque.status(PHP_ID).status == wire.WAITING and not r.exists(f"resque:pyresque_failure:{PHP_ID}")


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["retry", "abc"], "INDEX must be a non-negative integer"),
        (["retry", "1.5"], "INDEX must be a non-negative integer"),
        (["retry", "-1"], "No such option '-1'"),
        (["retry"], "give INDEX or --id/--all/--class/--queue"),
        (["retry", "0", "--all"], "give INDEX or --id/--all/--class/--queue, not both"),
        (["retry", "0", "--id", "abc"], "give INDEX or --id, not both"),
        (["retry", "--id", "abc", "--all"], "give --id or --all/--class/--queue, not both"),
        (["retry", "--id", "abc", "--digest", "abcdef"], "--digest goes with an INDEX, not with --id"),
        (["retry", "--all", "--digest", "abcdef"], "--digest goes with an INDEX"),
        (["retry", "--queue", "a,b"], "invalid queue name 'a,b'"),
        (["remove"], "give INDEX or --id/--class/--queue"),
        (["remove", "0", "--queue", "q"], "not both"),
        (["remove", "--all"], "No such option '--all'"),
        (["show"], "give INDEX or --id"),
        (["show", "--id", ""], "--id needs a job id"),
        (["show", "0", "--digest", "xyz"], "--digest must be 6 to 40 hex characters"),
        (["list", "--since", "yesterday"], "--since 'yesterday' is neither"),
        (["list", "--limit", "0"], "0 is not in the range x>=1"),
        (["clear", "--queue", " "], "invalid queue name"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(redis_url, r, args, message):
    r.rpush(FAILED, RUBY_FAIL)
    one_line_error(run(redis_url, *args), 2, message)
    assert failed_list(r) == [RUBY_FAIL.encode()] and not r.exists("resque:queue:default")


@pytest.mark.parametrize("command", ["show", "retry", "remove"])
def test_an_index_past_the_end_exits_1(redis_url, r, command):
    r.rpush(FAILED, RUBY_FAIL)
    one_line_error(run(redis_url, command, "5"), 1, "no failed job at index 5: the failed list holds 1")


def test_unreachable_redis_is_one_line():
    url = f"redis://127.0.0.1:{free_port()}/0"
    one_line_error(run(url, "count"), 1, f"cannot reach Redis at {url}")


def test_every_failed_command_has_help():
    for command in ([], ["list"], ["show"], ["retry"], ["remove"], ["clear"], ["count"]):
        done = run(None, *command, "--help")
        assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr


def test_bulk_operations_while_a_worker_keeps_appending_failures(redis_url, resque, r):
    import threading

    import redis as redis_py

    originals = [ruby_record(f"Old{i}", "default" if i % 2 else "other", args=(i,)) for i in range(200)]
    r.rpush(FAILED, *originals)
    stop = threading.Event()
    appended = []

    def worker():
        client = redis_py.Redis.from_url(redis_url, protocol=2)
        while not stop.is_set():
            record = ruby_record("New", "live", args=(len(appended),))
            client.rpush(FAILED, record)
            appended.append(record.encode())
        client.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        failed = FailedJobs(resque)
        retried = failed.retry_all(queue="other")
        removed = failed.remove_where(queue="default")
    finally:
        stop.set()
        thread.join()
    assert (retried.done, retried.gone, removed.done, removed.gone) == (100, 0, 100, 0)
    assert len(appended) > 10  # the worker really was appending meanwhile
    remaining = failed_list(r)
    assert [json.loads(raw)["payload"]["args"][0] for raw in remaining[:100]] == list(range(0, 200, 2))
    assert all("retried_at" in json.loads(raw) for raw in remaining[:100])
    assert remaining[100:] == appended  # every failure appended meanwhile is still there, in order
    assert r.llen("resque:queue:other") == 100
