"""pyresque: Resque's Redis wire format, spoken exactly, with Python workers."""

from .exceptions import DontCreate, DontPerform, JobClassNotFound
from .hooks import listen
from .jobclass import register
from .payload import COMPLETE, FAILED, RUNNING, WAITING, StatusPacket
from .policies import limit_concurrency, retry, timeout, unique
from .queue import QueuedJob, Resque

__version__ = "0.1.0"

__all__ = [
    "limit_concurrency", "retry", "timeout", "unique",
    "DontCreate", "DontPerform", "FailedJobs", "JobClassNotFound", "listen", "register",
    "COMPLETE", "FAILED", "RUNNING", "WAITING", "QueuedJob", "Resque", "StatusPacket", "__version__",
]


def __getattr__(name: str) -> object:
    # The failed-job toolkit loads on first use: workers never need it.
    if name == "FailedJobs":
        from .failure import FailedJobs

        return FailedJobs
    raise AttributeError(f"module 'pyresque' has no attribute {name!r}")
