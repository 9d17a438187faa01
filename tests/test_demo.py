"""The README's demo runs end to end and stops everything it started."""

import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil

DEMO = Path(__file__).parent.parent / "demo" / "run_demo.py"


def test_demo_runs_every_job_to_a_final_state():
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "complete result={'greeting': 'Hello, Chris!'}" in out
    assert "Mailer::Send (Ruby style)" in out and "sent 'Welcome' to ops@example.com" in out
    assert "RuntimeError: Unable to run this job!" in out and "stats: {'processed': 3, 'failed': 1}" in out
    port = int(re.search(r"on port (\d+)", out).group(1))
    worker_pid = int(re.search(r"worker started .* pid=(\d+)", done.stderr).group(1))
    assert not psutil.pid_exists(worker_pid)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # the private redis-server is gone
