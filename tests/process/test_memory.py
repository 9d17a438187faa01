"""An idle worker gives freed memory back instead of carrying it for its whole life."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import os
from pyresque.process.memory import give_back_free_memory

def rss_kib():
    with open(f"/proc/{os.getpid()}/status") as handle:
        return int(handle.read().split("VmRSS:")[1].split()[0])

blocks = [bytearray(b"x" * (64 * 1024)) for _ in range(400)]  # 25 MiB of C heap, every page touched
fence = bytearray(b"y" * (64 * 1024))  # keeps the freed blocks off the heap's top, which free() trims
del blocks
before = rss_kib()
give_back_free_memory()
print(before - rss_kib())
"""


def test_freed_heap_memory_goes_back_to_the_os():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 16 * 1024  # KiB: most of the 25 MiB freed above
