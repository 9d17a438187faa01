"""Text from Redis, made safe to show on an operator's terminal, in a log or a process title.

Class names, queue names, worker ids and error messages are written by whatever program
reaches the Redis. Printed raw, ``ESC [ 2 J`` clears the operator's screen, an OSC sequence
retitles the terminal or writes its clipboard, a NUL makes ``setproctitle`` raise, and a
newline forges a line of output. Every printer (the CLI's text output, the console log, the
process titles) renders such text through :func:`escape` here, and nowhere else.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (0x9b is a one-byte CSI for many terminals), lone surrogates
# (undecodable bytes read with surrogateescape; no terminal encoding takes them), the line and
# paragraph separators (str.splitlines and many viewers break lines there), and the bidi
# controls (U+202A-202E, U+2066-2069: "Trojan Source" text that reads other than it is).
_OTHER = "\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_OTHER}]")
_UNSAFE_KEEPING_LINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_OTHER}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as a Python-style escape (``\\x1b``,
    ``\\n``), printable Unicode kept as it is. ``keep_newlines`` is for multi-line text that
    is ours to lay out, such as a traceback.

    Backslashes are not doubled: php's ``App\\Jobs\\Mail`` must read as itself, and what is
    shown is for a person (``--json`` is the exact form)."""
    pattern = _UNSAFE_KEEPING_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escaped, text) if pattern.search(text) else text
