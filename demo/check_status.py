"""Follow a job's status until it ends, like php-resque's demo/check_status.php."""

from __future__ import annotations

import sys
import time

from pyresque import Resque

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python demo/check_status.py JOB_ID")
    resque, last = Resque(), None
    while True:
        packet = resque.status(sys.argv[1])
        if packet is None:
            sys.exit(f"job {sys.argv[1]} is not tracked")
        if packet.status != last:
            print(f"Status of {sys.argv[1]} is: {packet.name}" + (f" ({packet.result})" if packet.result else ""))
            last = packet.status
        if packet.final:
            break
        time.sleep(0.1)
