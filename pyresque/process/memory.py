"""Giving freed memory back to the operating system, for workers that sit idle for long spells.

Start-up (imports, the first prune's process scan) leaves ~2 MiB of freed blocks in glibc's heap
that ``free()`` alone never returns: an idle worker would carry them as resident memory for its
whole life. ``malloc_trim(0)`` hands them back.
"""

from __future__ import annotations

import gc


def give_back_free_memory() -> None:
    """Collect garbage, then return the C heap's free pages to the OS (glibc only; else no-op)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError, ImportError):  # not glibc (musl, macOS): nothing to do
        pass
