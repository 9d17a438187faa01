"""How one worker behaves: every knob the CLI fills from php-resque/Ruby environment variables."""

from __future__ import annotations

from dataclasses import dataclass

from .. import defaults


@dataclass
class WorkerOptions:
    """How one worker behaves; the CLI fills it from php-resque/Ruby environment variables."""

    interval: float = defaults.INTERVAL  # 0 = burst: exit once the queues are empty
    #: wait for jobs with BLMOVE (no loss window; Redis >= 6.2) instead of polling every ``interval``
    blocking: bool = True
    #: take part in moving due delayed jobs and retries, under resque-scheduler's master lock
    scheduler: bool = True
    fork: bool = True
    term_child: bool = False
    graceful_term: bool = False
    term_timeout: float = defaults.TERM_TIMEOUT
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL
    prune_interval: float = defaults.PRUNE_INTERVAL
    pidfile: str | None = None
    #: default time limit in seconds for jobs whose class sets none (None = no limit)
    job_timeout: float | None = None
    #: fork the next job's child while the current job runs (fork mode)
    prefork: bool = True
    #: jobs one child serves before it is replaced (1 = a fresh process per job)
    fork_every: int = 1
    #: replace a child (after its job) once its RSS passes this many MiB; 0 = no ceiling
    max_child_memory_mb: float = 0
    #: when set, the forking helper is a fresh interpreter that loads only these includes
    #: (``APP_INCLUDE``) instead of a fork of this worker: half the memory, faster forks; job
    #: classes and child-side listeners must then come from the includes (the CLI's case)
    helper_includes: tuple[str, ...] | None = None
    #: pid of the supervising master; when this worker's parent is no longer it (the master
    #: died), the worker finishes its job and exits instead of running unsupervised forever.
    supervisor_pid: int | None = None
    #: jobs in flight at once, one per thread slot (threaded mode, :mod:`pyresque.worker.threaded`)
    threads: int = 1
    #: seconds without a job after which the forking helper (a fresh interpreter: see
    #: ``helper_includes``) exits to give back its memory; the next job starts a new one
    #: (~50 ms). 0 = keep it for the worker's life.
    helper_idle: float = defaults.HELPER_IDLE
    #: jobs in flight at once on one event loop (async mode, :mod:`pyresque.worker.asyncmode`); 0 = off
    async_slots: int = 0
    #: threads for an async worker's plain ``def perform`` jobs; 0 = min(async_slots, 32)
    async_threads: int = 0
    #: async mode: seconds of event-loop lag past which it logs and reserves nothing new; 0 = off
    async_lag_warn: float = 0.1
    #: async mode: RSS in MiB past which the worker takes no new job and retires (exit 0); 0 = none
    async_max_memory_mb: float = 0
