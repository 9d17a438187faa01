"""pyresque: Resque's Redis wire format, spoken exactly, with Python workers."""

from .payload import COMPLETE, FAILED, RUNNING, WAITING, StatusPacket
from .queue import QueuedJob, Resque

__version__ = "0.1.0"

__all__ = [
    "COMPLETE", "FAILED", "RUNNING", "WAITING", "QueuedJob", "Resque", "StatusPacket", "__version__",
]
