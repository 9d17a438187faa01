"""Wire documents: every shape in the vectors decodes; what we write matches their bytes."""

from __future__ import annotations

import json

import pytest

import vectors
from pyresque.exceptions import InvalidPayload, InvalidQueueName, InvalidStatus
from pyresque.wire import payload as wire


def _strings_in_vectors(predicate):
    for name, vector in vectors.all_vectors():
        for snapshot in vectors.states(vector):
            for key, entry in snapshot.items():
                if predicate(key):
                    values = entry["value"] if isinstance(entry["value"], list) else [entry["value"]]
                    for value in values:
                        yield name, key, value


def test_every_queue_payload_in_the_vectors_decodes():
    seen = 0
    for name, key, raw in _strings_in_vectors(lambda k: ":queue:" in k):
        job = wire.decode_payload(raw.encode())
        assert job["class"] and isinstance(job["args"], list), (name, key)
        seen += 1
    assert seen > 30


def test_every_working_on_record_in_the_vectors_decodes():
    seen = 0
    for name, key, raw in _strings_in_vectors(
        lambda k: k.count(":") >= 4 and ":worker:" in k and not k.endswith(":started")
    ):
        record = wire.decode_working_on(raw)
        assert record is not None and record.queue, (name, key)
        wire.decode_payload(json.dumps(record.payload))
        assert wire.parse_time(record.run_at) is not None, record.run_at
        seen += 1
    assert seen >= 5


def test_every_status_packet_in_the_vectors_decodes():
    seen = set()
    for name, _key, raw in _strings_in_vectors(lambda k: k.endswith(":status")):
        packet = wire.decode_status(raw)
        assert packet.status in (1, 2, 3, 4), (name, raw)
        seen.add((packet.started is None, "result" in raw))
        seen.add(packet.status)
    # chrisboulton's packets have no started/result; v1.3.6's have both
    assert (True, False) in seen and (False, True) in seen
    assert {1, 2, 3, 4} <= seen


def test_every_failure_record_in_the_vectors_decodes_and_its_times_parse():
    seen = 0
    for name, _key, raw in _strings_in_vectors(lambda k: k == "resque:failed"):
        record = wire.decode_failure(raw)
        assert record is not None, (name, raw)
        assert wire.parse_time(record["failed_at"]) is not None, record["failed_at"]
        seen += 1
    assert seen >= 10


def test_every_worker_started_time_in_the_vectors_parses():
    for name, _key, raw in _strings_in_vectors(lambda k: k.endswith(":started")):
        assert wire.parse_time(raw) is not None, (name, raw)


def test_php_encoding_is_byte_identical_to_php_resque():
    """Re-encoding php-resque's own payload (decoded args, same id/time) gives its exact bytes."""
    vector = vectors.load("php-resque-v1.3.6/a2_enqueue_encoding")
    raw = vectors.state(vector, next(s["name"] for s in vector["steps"] if s["kind"] == "state"))
    original = raw["resque:queue:default"]["value"][0]
    decoded = json.loads(original)
    ours = wire.encode_payload(
        wire.build_payload(decoded["class"], decoded["args"], decoded["id"], decoded["prefix"], decoded["queue_time"])
    )
    assert ours == original
    assert "\\u00e9\\/\\u00fc" in ours


def test_ruby_encoding_is_byte_identical_to_ruby():
    vector = vectors.load("ruby-resque/f1b_ruby_enqueue_encoding")
    original = next(vectors.states(vector))["resque:queue:default"]["value"][0]
    decoded = json.loads(original)
    assert wire.encode_ruby(decoded) == original


def test_decoding_accepts_php_escapes_and_null_args():
    job = wire.decode_payload(b'{"class":"PHP_Job","args":[null],"id":"x","queue_time":1.5}')
    assert job["args"] == [None]
    job = wire.decode_payload(b'{"class":"A\\\\B","args":[{"u":"\\u00e9\\/"}]}')
    assert job["class"] == "A\\B" and job["args"] == [{"u": "é/"}]
    assert wire.decode_payload(b'{"class":"NoArgs"}')["args"] == []


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1,2]", "JSON list, not an object"),
        (b'{"args":[]}', "no 'class'"),
        (b'{"class":"A","args":{"a":1}}', "'args' is a JSON dict"),
    ],
)
def test_bad_payloads_say_why(raw, reason):
    with pytest.raises(InvalidPayload, match=reason):
        wire.decode_payload(raw)


@pytest.mark.parametrize("raw", [b"nope", b"[1]", b'{"updated":1}', b'{"status":"2"}'])
def test_bad_status_packets_raise(raw):
    with pytest.raises(InvalidStatus):
        wire.decode_status(raw)


def test_status_packet_bytes_match_php_resque():
    assert wire.encode_status(1, 1795323132, 1795323132) == (
        '{"status":1,"updated":1795323132,"started":1795323132,"result":null}'
    )
    assert wire.encode_status(4, 5, 3, {"answer": 42}) == '{"status":4,"updated":5,"started":3,"result":{"answer":42}}'


def test_unserialisable_result_is_stored_as_its_repr():
    packet = json.loads(wire.encode_status(4, 1, 1, {1, 2}))
    assert packet["result"]["unserialisable"] == "set"
    assert "1" in packet["result"]["repr"]


@pytest.mark.parametrize("name", ["", "  ", " default", "a,b", "a\nb", None, 5])
def test_invalid_queue_names(name):
    with pytest.raises(InvalidQueueName):
        wire.validate_queue_name(name)


def test_worker_id_round_trip_keeps_colons_in_queues():
    wid = wire.parse_worker_id("vm:1409:high,default")
    assert wid == ("vm", 1409, ("high", "default"), None) and str(wid) == "vm:1409:high,default"
    slot = wire.parse_worker_id("vm@12:1409:high,default")
    assert slot == ("vm", 1409, ("high", "default"), 12) and str(slot) == "vm@12:1409:high,default"
    assert wire.parse_worker_id("vm:1409:high,default,@12") == slot  # the first form, still read
    assert wire.parse_worker_id("vm+3f9a1c@2:1:q") == ("vm+3f9a1c", 1, ("q",), 2)  # a tagged id's slot
    assert wire.parse_worker_id("vm:1409:@home").queues == ("@home",)  # a lone queue is never a slot
    assert wire.parse_worker_id("vm:123:ns:q").queues == ("ns:q",)
    assert wire.parse_worker_id("garbage") is None


def test_time_formats_match_the_vectors():
    t = 1795323132
    assert wire.failed_at(t) == "2026/11/22 04:52:12 UTC"
    assert wire.ruby_time(t) == "2026-11-22 04:52:12 +0000"
    assert wire.iso_z(t) == "2026-11-22T04:52:12Z"
    assert wire.iso_offset(t) == "2026-11-22T04:52:12+00:00"
    for text in ("2026/11/22 04:52:12 UTC", "2026-11-22 04:52:12 +0000", "2026-11-22T04:52:12Z",
                 "2026-11-22T04:52:12+00:00", "Sun Nov 22 04:52:12 UTC 2026", "2026/11/22 04:52:12"):
        assert wire.parse_time(text) == t, text


@pytest.mark.parametrize("raw, count", [(None, 0), (b"12", 12), (b"-3", -3), (b" 7 jobs", 7), (b"1.5e3", 1),
                                        (b"nan", 0), (b"inf", 0), (b"", 0), ("42", 42), (b"\xff", 0)])
def test_counters_read_as_ruby_reads_them(raw, count):
    assert wire.parse_counter(raw) == count


def test_the_failure_summary_carries_the_error_and_the_packets_update_time():
    record = wire.encode_failure(wire.build_failure({"class": "A", "args": [], "id": "x"}, "ValueError", "bad n",
                                                    [], "vm:1:q", "q", 1795323100.0))
    packet = wire.encode_status(wire.FAILED, 1795323101, 1795323099)
    summary = wire.encode_failure_summary(record, packet)
    assert json.loads(summary) == {"exception": "ValueError", "error": "bad n", "failed_at": "2026/11/22 04:51:40 UTC",
                                   "queue": "q", "worker": "vm:1:q", "updated": 1795323101}
    assert wire.decode_failure_summary(summary, 1795323101) == wire.JobError(
        "ValueError", "bad n", "2026/11/22 04:51:40 UTC", "q", "vm:1:q")
    assert wire.decode_failure_summary(summary, 1795323102) is None  # another failure's summary
    assert wire.encode_failure_summary("[1]", packet) == wire.encode_failure_summary(record, "nope") == ""
    for hostile in (b"\xff", b"[]", b'{"exception":1,"updated":1795323101}', b"{" * 300):
        assert wire.decode_failure_summary(hostile, 1795323101) is None
    assert str(wire.JobError("KeyError", "")) == "KeyError"
