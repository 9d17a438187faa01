"""pyresque: Resque's Redis wire format, spoken exactly, with Python workers.

The public API, all of it: what README shows users importing comes from here. Internal module
paths (``pyresque.worker.worker``, ``pyresque.store.datastore``, ...) may change.
"""

from .exceptions import (
    ConfigurationError,
    DirtyExit,
    DontCreate,
    DontPerform,
    InvalidPayload,
    InvalidQueueName,
    InvalidStatus,
    JobClassNotFound,
    JobFailed,
    JobTerminated,
    JobTimeout,
    KeyTypeError,
    PyresqueError,
    RedisUnavailable,
    UnknownJob,
    WaitTimeout,
)
from .jobs.hooks import listen
from .jobs.policies import limit_concurrency, retry, timeout, unique
from .jobs.resolver import register
from .wire.payload import COMPLETE, FAILED, RUNNING, WAITING, JobError, StatusPacket

__version__ = "0.1.0"

__all__ = [
    # producing jobs and reading their status
    "Resque", "QueuedJob", "StatusPacket", "JobError", "WAITING", "RUNNING", "FAILED", "COMPLETE",
    "enqueue_at", "enqueue_in", "delay_payload", "InvalidDelay",
    # defining jobs
    "register", "listen", "retry", "timeout", "unique", "limit_concurrency",
    # operating
    "FailedJobs", "RedisServer",
    # errors
    "PyresqueError", "ConfigurationError", "InvalidQueueName", "InvalidPayload", "InvalidStatus",
    "JobClassNotFound", "DontPerform", "DontCreate", "DirtyExit", "JobTimeout", "JobTerminated",
    "RedisUnavailable", "KeyTypeError", "JobFailed", "WaitTimeout", "UnknownJob",
    "__version__",
]

# name -> module under pyresque that defines it
_LAZY = {
    "Resque": "queue",
    "QueuedJob": "queue",
    "enqueue_at": "scheduling.delayed",
    "enqueue_in": "scheduling.delayed",
    "delay_payload": "scheduling.delayed",
    "InvalidDelay": "scheduling.delayed",
    "FailedJobs": "admin.failed",
    "RedisServer": "store.embedded",
}


def __getattr__(name: str) -> object:
    # The Redis client and the toolkits load on first use, so a module that only defines jobs
    # (``@pyresque.register``) stays light: the forking helper that runs jobs never imports
    # redis-py (~19 MiB), and its children fork faster for it.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"pyresque.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pyresque' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
