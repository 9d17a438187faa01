"""pyresque: Resque's Redis wire format, spoken exactly, with Python workers."""

from .exceptions import DontCreate, DontPerform, JobClassNotFound
from .hooks import listen
from .jobclass import register
from .payload import COMPLETE, FAILED, RUNNING, WAITING, StatusPacket
from .policies import limit_concurrency, retry, timeout, unique

__version__ = "0.1.0"

__all__ = [
    "limit_concurrency", "retry", "timeout", "unique",
    "DontCreate", "DontPerform", "FailedJobs", "JobClassNotFound", "listen", "register",
    "COMPLETE", "FAILED", "RUNNING", "WAITING", "QueuedJob", "Resque", "StatusPacket", "__version__",
]


_LAZY = {"Resque": "queue", "QueuedJob": "queue", "FailedJobs": "failure"}


def __getattr__(name: str) -> object:
    # The Redis client and the failed-job toolkit load on first use, so a module that only
    # defines jobs (``@pyresque.register``) stays light: the forking helper that runs jobs
    # never imports redis-py (~19 MiB), and its children fork faster for it.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"pyresque.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pyresque' has no attribute {name!r}")
