"""Reading what other programs wrote into Redis, and writing records that always encode.

Everything read from Redis is untrusted: php-resque, Ruby, resque-web and any script with
write access share the keyspace, so a value may be any bytes. :func:`loads` is the one JSON
reader for it (payloads, working-on records, status packets, failure records, delayed items,
schedules): it raises :class:`~pyresque.exceptions.InvalidPayload` with the precise reason, and
nothing else, for

- bytes that are not strict UTF-8 (``json.loads`` on bytes would let ``ED A0 80`` through as
  a lone surrogate, which then fails every later encode);
- a document over the size bound, or nested deeper than the depth bound (Redis' cjson takes
  1000 levels; Python's decoder and encoder would raise ``RecursionError`` near there);
- ``NaN``, ``Infinity`` and numbers that overflow to them (not JSON; php and Ruby refuse them);
- a lone UTF-16 surrogate escape (``"\\ud800"``), which no UTF-8 writer can carry on.

:func:`encodable` turns anything into a value JSON and UTF-8 can carry, escaping what they
cannot (a lone surrogate becomes the text ``\\ud800``, NaN the string ``"NaN"``), so a failure
record about a bad value is never itself lost.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from .. import defaults
from ..exceptions import InvalidPayload

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def text_of(raw: bytes | str, what: str = "value", max_bytes: int = defaults.MAX_VALUE_BYTES) -> str:
    """``raw`` as text: strict UTF-8, within the size bound."""
    if len(raw) > max_bytes:
        raise InvalidPayload(f"{what} is {len(raw):,} bytes, over the {max_bytes:,}-byte limit")
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def depth_of(text: str) -> int:
    """How deeply the JSON text nests arrays and objects (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= 1:
        return text.count("[") + text.count("{")
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for ch in brackets:
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads(raw: bytes | str, what: str = "value", *, max_bytes: int = defaults.MAX_VALUE_BYTES,
          max_depth: int = defaults.MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON; :class:`InvalidPayload` (a ``ValueError``) says why it cannot be."""
    text = text_of(raw, what, max_bytes)
    if text.count("[") + text.count("{") > max_depth and depth_of(text) > max_depth:
        raise InvalidPayload(f"{what} nests deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:  # only if max_depth was set past what this stack can take
        raise InvalidPayload(f"{what} nests too deeply to read") from None
    except ValueError as exc:
        raise InvalidPayload(f"{what} is not JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and not _is_encodable(value):
        raise InvalidPayload(f"{what} contains a lone UTF-16 surrogate escape (\\ud800-\\udfff), which UTF-8 cannot carry")
    return value


def lenient_loads(raw: bytes | str) -> Any:
    """Parse as Redis' cjson does (any bytes, 1000 levels, NaN), or ``None`` if even that fails.

    Only for reading the ``id`` of an item the strict reader refused: the reserve script (cjson)
    may have seen it as a tracked job and set its status RUNNING, which must still end FAILED.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(text) > defaults.MAX_VALUE_BYTES or depth_of(text) > 1000:
        return None
    # The C decoder recurses once per level: give it room for cjson's 1000. (No lock: that would
    # load threading into the forking helper; two slot threads racing here can at worst leave
    # the limit raised, which costs nothing.)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4000))
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
    finally:
        sys.setrecursionlimit(limit)


def has_lone_surrogate(text: str) -> bool:
    """Does this JSON text hold a lone surrogate, raw or escaped (``"\\ud800"``)? An escaped
    pair (an emoji, as php writes it) is fine."""
    if _LONE_SURROGATE.search(text):
        return True
    if not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        return not _is_encodable(json.loads(text))
    except (ValueError, RecursionError):
        return False


def _is_encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return False
    return True


def _escape_surrogates(text: str) -> str:
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def encodable(value: Any, max_depth: int = defaults.MAX_JSON_DEPTH) -> Any:
    """A copy of ``value`` that strict JSON and UTF-8 can carry; what they cannot is escaped.

    Strings lose lone surrogates to their ``\\udXXX`` text, non-finite floats become strings,
    keys become strings, unknown objects their ``repr``, and anything nested past ``max_depth``
    its JSON-ish ``repr`` text, so a failure record always encodes and keeps every clue.
    """
    if isinstance(value, str):
        return _escape_surrogates(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if max_depth <= 0:
        return _escape_surrogates(_safe_repr(value))
    if isinstance(value, dict):
        return {_escape_surrogates(str(k)): encodable(v, max_depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encodable(v, max_depth - 1) for v in value]
    return _escape_surrogates(_safe_repr(value))


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)[:2000]
    except Exception as exc:  # a broken __repr__ must not lose the record
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
