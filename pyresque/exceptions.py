"""The exception tree: what can go wrong, named precisely."""

from __future__ import annotations

from typing import Any


class PyresqueError(Exception):
    """Base class for every error pyresque raises on purpose."""


class ConfigurationError(PyresqueError):
    """A setting (environment variable, option, URL) is missing or malformed."""


class InvalidQueueName(PyresqueError, ValueError):
    """A queue name that Resque's key layout cannot carry (empty, blank, or with a comma)."""


class InvalidPayload(PyresqueError, ValueError):
    """A queue item that is not a Resque job payload; the message says exactly why."""


class InvalidStatus(PyresqueError, ValueError):
    """A status packet in Redis that cannot be read."""


class JobClassNotFound(PyresqueError):
    """A payload names a class that is neither registered nor in an allowed module."""


class DontPerform(PyresqueError):
    """Raised by setUp or a before-hook to skip a job without failing it."""


class DontCreate(PyresqueError):
    """Raised by a beforeEnqueue listener to cancel an enqueue (php-resque's Resque_Job_DontCreate)."""


class DirtyExit(PyresqueError):
    """The child running a job died without reporting a result."""


class JobTimeout(PyresqueError):
    """The job ran longer than its time limit and was killed."""


class RedisUnavailable(PyresqueError):
    """Redis could not be reached; the message names the URL."""


class JobTerminated(PyresqueError):
    """The worker asked the job to stop (TERM_CHILD, a timeout): raised inside ``perform``.

    A job may catch it to clean up; one that does not fails with ``pyresque.JobTerminated``."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(args or ("SIGTERM",)))  # a thread's is raised without arguments


class KeyTypeError(PyresqueError):
    """A Redis key holds another type than the one Resque keeps there (another program wrote
    it); the write that needed it was not made, not half made."""


class UnknownJob(PyresqueError, LookupError):
    """No status for that job id: never tracked (Ruby shape, ``track=False``), or expired."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        super().__init__(message or f"job {job_id} is not tracked: unknown id, enqueued without tracking, or "
                                    f"its status expired")
        self.job_id = job_id


class JobFailed(PyresqueError):
    """The job ended FAILED. ``exception`` and ``message`` are its failure record's (``None``
    when no record was found: one written long ago, removed, or status set by hand)."""

    def __init__(self, job_id: str, exception: str | None, message: str | None) -> None:
        why = f"{exception}: {message}" if exception and message else exception or message
        super().__init__(f"job {job_id} failed: {why}" if why else f"job {job_id} failed (no failure record found)")
        self.job_id = job_id
        self.exception = exception
        self.message = message


class WaitTimeout(PyresqueError, TimeoutError):
    """The job did not reach a final state within the time given; ``status`` is its last state."""

    def __init__(self, job_id: str, timeout: float, status: str) -> None:
        super().__init__(f"job {job_id} is still {status} after {timeout:g} s")
        self.job_id = job_id
        self.timeout = timeout
        self.status = status
