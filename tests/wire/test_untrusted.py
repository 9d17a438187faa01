"""The one reader of untrusted JSON: precise errors for every kind of bad value, nothing else."""

from __future__ import annotations

import json

import pytest

from pyresque.exceptions import InvalidPayload
from pyresque.wire import payload as wire
from pyresque.wire import untrusted


@pytest.mark.parametrize("raw, reason", [
    (b'{"class":"\xed\xa0\x80","args":[]}', "not UTF-8"),
    ('{"class":"\\ud800","args":[]}', "lone UTF-16 surrogate"),
    ('{"class":"A","args":["\\udc00x"]}', "lone UTF-16 surrogate"),
    ("[" * 990 + "]" * 990, "nests deeper than 200"),
    ('{"class":"A","args":[NaN]}', "NaN is not JSON"),
    ('{"class":"A","args":[-Infinity]}', "-Infinity is not JSON"),
    ('{"class":"A","args":[1e999]}', "out of range"),
    ('{"class":"A","args":[' + "9" * 5000 + "]}", "not JSON"),
    (b"\xff", "not UTF-8"),
    ("{", "not JSON"),
])
def test_bad_values_raise_one_precise_error(raw, reason):
    with pytest.raises(InvalidPayload, match=reason):
        untrusted.loads(raw, "payload")


def test_good_values_read_as_json_does():
    for text in ('{"class":"A","args":[1,2.5,"\\ud83d\\ude00",{"k":[null,true]}]}', '"[{"', "[[[]]]",
                 '{"s":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'):
        assert untrusted.loads(text) == json.loads(text)
    assert untrusted.loads("[" * 200 + "]" * 200) is not None


def test_size_is_bounded():
    with pytest.raises(InvalidPayload, match="over the 10-byte limit"):
        untrusted.loads('"0123456789"', max_bytes=10)


def test_every_decoder_uses_it():
    deep = ("[" * 990 + "]" * 990).encode()
    with pytest.raises(InvalidPayload, match="nests deeper"):
        wire.decode_payload(deep)
    with pytest.raises(ValueError, match="nests deeper"):
        wire.decode_status(deep)
    assert wire.decode_working_on(deep) is None
    assert wire.decode_working_on(b'{"queue":"q","run_at":"t","payload":NaN}') is None
    assert wire.decode_failure('{"error":"\\ud800"}') is None


def test_a_failure_record_always_encodes_and_keeps_every_clue():
    record = wire.build_failure({"class": "A\ud800", "args": [float("nan"), float("inf")]}, "E", "bad \udcff",
                                [], "w", "q")
    text = wire.encode_failure(record)
    text.encode("utf-8")  # what Redis gets
    doc = json.loads(text)
    assert doc["payload"] == {"class": "A\\ud800", "args": ["NaN", "Infinity"]}
    assert doc["error"] == "bad \\udcff"
    nested: list = []
    for _ in range(1000):
        nested = [nested]
    assert json.loads(wire.encode_failure(wire.build_failure(nested, "E", "", [], "w", "q")))["payload"]


def test_a_result_nested_past_the_recursion_limit_is_stored_as_its_description():
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    doc = json.loads(wire.encode_result(nested))
    assert doc["unserialisable"] == "list"
