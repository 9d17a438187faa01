"""Per-class job policies: retries with backoff, time limits, uniqueness, concurrency limits.

Declared as class attributes or with the :func:`retry`, :func:`timeout`, :func:`unique` and
:func:`limit_concurrency` decorators::

    @pyresque.register
    @pyresque.retry(attempts=5, backoff="exponential", base=2, cap=300, on=(IOError,))
    @pyresque.timeout(30)
    class Fetch:
        @staticmethod
        def perform(url): ...

Every decorator checks its arguments at import time, so a policy that makes no sense (negative
attempts, an unknown backoff) fails loudly there rather than at 3 a.m. in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from ..wire import payload as wire
from .resolver import canonical_name

T = TypeVar("T")

_BACKOFFS = ("fixed", "exponential")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and when a failed job runs again (through the delayed queue)."""

    attempts: int = 1  # total runs, the first included; 1 = never retry
    backoff: float | Sequence[float] | str = 0.0  # seconds, a list per retry, or "exponential"
    base: float = 1.0  # exponential: base * 2 ** (retry - 1)
    cap: float = 3600.0  # no delay longer than this
    jitter: float = 0.0  # up to this fraction of the delay is added at random
    on: tuple[str, ...] = ()  # exception names that retry (empty = every exception)
    give_up_on: tuple[str, ...] = ()  # exception names that never retry

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"retry attempts must be an integer >= 1, not {self.attempts!r}")
        if isinstance(self.backoff, str) and self.backoff not in _BACKOFFS:
            raise ValueError(f"backoff must be seconds, a list of seconds, or one of {_BACKOFFS}, not {self.backoff!r}")
        delays = [self.backoff] if isinstance(self.backoff, (int, float)) else (
            [] if isinstance(self.backoff, str) else list(self.backoff))
        if any(not isinstance(d, (int, float)) or d < 0 for d in delays) or (not isinstance(self.backoff, (int, float, str))
                                                                            and not delays):
            raise ValueError(f"backoff delays must be non-negative numbers, not {self.backoff!r}")
        if self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("base and cap must be >= 0 and jitter between 0 and 1")

    def should_retry(self, attempt: int, exception: str) -> bool:
        """After run number ``attempt`` failed with ``exception`` (a wire name), run again?"""
        if attempt >= self.attempts or _matches(exception, self.give_up_on):
            return False
        return not self.on or _matches(exception, self.on)

    def delay(self, retry: int, rand: Callable[[], float] | None = None) -> float:
        """Seconds before retry number ``retry`` (1 for the first retry)."""
        if rand is None:
            import random  # only when retrying: the forking helper stays without it

            rand = random.random
        if isinstance(self.backoff, str):  # exponential
            seconds = self.base * 2 ** (retry - 1)
        elif isinstance(self.backoff, (int, float)):
            seconds = float(self.backoff)
        else:
            seconds = float(self.backoff[min(retry, len(self.backoff)) - 1])
        seconds = min(seconds, self.cap)
        return seconds + seconds * self.jitter * rand()


def _matches(exception: str, names: tuple[str, ...]) -> bool:
    short = exception.rsplit(".", 1)[-1]
    return any(name == exception or name == short for name in names)


def _names(exceptions: Sequence[type[BaseException] | str]) -> tuple[str, ...]:
    out = []
    for exc in exceptions:
        if isinstance(exc, str):
            out.append(exc)
        elif isinstance(exc, type) and issubclass(exc, BaseException):
            out.append(exc.__qualname__ if exc.__module__ == "builtins" else f"{exc.__module__}.{exc.__qualname__}")
        else:
            raise ValueError(f"not an exception class or name: {exc!r}")
    return tuple(out)


def retry(
    attempts: int,
    backoff: float | Sequence[float] | str = 0.0,
    *,
    base: float = 1.0,
    cap: float = 3600.0,
    jitter: float = 0.0,
    on: Sequence[type[BaseException] | str] = (),
    give_up_on: Sequence[type[BaseException] | str] = (),
) -> Callable[[T], T]:
    """Retry a failing job up to ``attempts`` runs in all, waiting ``backoff`` between runs."""
    policy = RetryPolicy(attempts, backoff, base, cap, jitter, _names(on), _names(give_up_on))

    def apply(cls: T) -> T:
        cls.retry_policy = policy  # type: ignore[attr-defined]
        return cls

    return apply


def retry_policy(target: Any) -> RetryPolicy | None:
    policy = getattr(target, "retry_policy", None)
    if isinstance(policy, RetryPolicy):
        return policy
    attempts = getattr(target, "retry_attempts", None)  # the attribute form
    if attempts is None:
        return None
    return RetryPolicy(attempts, getattr(target, "retry_backoff", 0.0))


def timeout(seconds: float) -> Callable[[T], T]:
    """Kill the job (TERM, then KILL after the grace period) once it has run ``seconds``."""
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {seconds!r}")

    def apply(cls: T) -> T:
        cls.timeout = float(seconds)  # type: ignore[attr-defined]
        return cls

    return apply


def job_timeout(target: Any, default: float | None) -> float | None:
    value = getattr(target, "timeout", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


def unique(ttl: float = 86400.0, key: Callable[..., str] | None = None) -> Callable[[T], T]:
    """An identical job (same class and args, or the same ``key(*args)``) is not enqueued while
    one is queued or running. The lock expires after ``ttl`` seconds whatever happens."""
    if ttl <= 0:
        raise ValueError("unique ttl must be positive")

    def apply(cls: T) -> T:
        cls.unique_ttl = float(ttl)  # type: ignore[attr-defined]
        if key is not None:
            cls.unique_key = staticmethod(key)  # type: ignore[attr-defined]
        return cls

    return apply


def unique_digest(target: Any, args: list[Any]) -> str | None:
    """The uniqueness key of a job, or ``None`` when its class is not unique. Keyed by the
    class's canonical name, not the payload's: aliases of one class share one lock."""
    if getattr(target, "unique_ttl", None) is None:
        return None
    custom = getattr(target, "unique_key", None)
    material = str(custom(*args)) if callable(custom) else wire.encode_ruby(args)
    import hashlib  # only for unique jobs: the forking helper stays without it

    return hashlib.sha1(f"{canonical_name(target)}\0{material}".encode()).hexdigest()


def limit_concurrency(limit: int, lease: float = 3600.0) -> Callable[[T], T]:
    """At most ``limit`` jobs of this class run at once across all workers; the others wait
    (back on their queue). A slot held by a dead worker frees itself after ``lease`` seconds."""
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"concurrency limit must be an integer >= 1, not {limit!r}")

    def apply(cls: T) -> T:
        cls.concurrency_limit = limit  # type: ignore[attr-defined]
        cls.concurrency_lease = float(lease)  # type: ignore[attr-defined]
        return cls

    return apply
