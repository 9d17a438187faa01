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
