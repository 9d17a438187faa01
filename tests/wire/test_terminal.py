"""Text from Redis on a terminal: control characters escaped, everything else as it is."""

from __future__ import annotations

import pytest

from pyresque.wire.terminal import escape


@pytest.mark.parametrize("raw, shown", [
    ("PHP_Job", "PHP_Job"),
    ("App\\Jobs\\Mail", "App\\Jobs\\Mail"),  # php namespaces read as themselves
    ("Mailer::Send", "Mailer::Send"),
    ("naïve 日本 ✓ 🙂", "naïve 日本 ✓ 🙂"),  # printable Unicode is kept
    ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: retitle the terminal
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # CSI: clear the screen
    ("\x9b31m", "\\x9b31m"),  # C1 CSI
    ("a\x00b\x7fc", "a\\x00b\\x7fc"),  # NUL (setproctitle raises on it), DEL
    ("two\nlines\r\tx", "two\\nlines\\r\\tx"),  # a forged line of output
    ("bad \udcff byte", "bad \\udcff byte"),  # a lone surrogate (surrogateescape)
])
def test_escape(raw, shown):
    assert escape(raw) == shown
    assert escape(shown) == shown  # escaping twice changes nothing


def test_escape_keeping_newlines_for_a_traceback():
    assert escape("Traceback:\n  x\x1b[2J\r\n", keep_newlines=True) == "Traceback:\n  x\\x1b[2J\\r\n"


def test_line_separators_and_bidi_controls_are_escaped():
    """U+2028 breaks a line for str.splitlines and many viewers; U+202E reverses what follows."""
    from pyresque.wire.terminal import escape

    assert escape("a\u2028b\u2029c") == "a\\u2028b\\u2029c"
    assert escape("invoice\u202egnp.exe") == "invoice\\u202egnp.exe"
    assert escape("\u2066x\u2069", keep_newlines=True) == "\\u2066x\\u2069"
    assert escape("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c"  # printable Unicode stays
