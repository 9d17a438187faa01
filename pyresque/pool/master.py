"""The supervising master: a pool of worker processes (``COUNT=n``, ``pyresque pool``).

Each worker is its own ``python -m pyresque worker`` process (the forking worker of worker.py),
not a fork of the master: a new worker imports the job code afresh, which is what lets a
rolling restart pick up a deploy, and the master stays small. It never imports job code and
talks to Redis only during a rolling restart, to see the new workers register. See
:class:`Master` for the lifecycle and :mod:`pyresque.pool.signals` for its signal table.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import redis

from .. import defaults
from ..exceptions import ConfigurationError
from ..log import get_logger
from ..process.interpreter import python_command
from ..process.pidfile import remove_pidfile, write_pidfile
from ..process.signal_inbox import SignalInbox
from ..queue import Resque
from ..scheduling.duty import DelayedDuty
from ..store.connection import RedisSettings
from ..store.datastore import DataStore
from ..wire import procline
from ..wire.keys import Keys
from ..worker import signals as worker_signals
from .config import MASTER_OWNED, PoolConfig
from .signals import MASTER_TABLE, MasterAction

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionResetError)
WORKER_COMMAND = tuple(python_command("pyresque", "worker"))  # python -m pyresque worker, safe sys.path


@dataclass(eq=False)
class Child:
    """One worker process of the pool."""

    proc: subprocess.Popen[bytes]
    queues: str
    generation: int
    started: float  # time.monotonic()
    worker_id: str  # what it registers as: host:pid:queues
    ready: bool = False  # seen in ``workers`` (checked during a rolling restart only)
    retiring: bool = False  # the master sent it QUIT: its exit is expected

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Handover:
    """A rolling restart in progress, and what to go back to if the new generation fails."""

    previous: PoolConfig
    previous_generation: int
    begun: float
    deadline: float


class RestartPolicy:
    """When to replace a worker that died unexpectedly, per queue group.

    At once when it had run for ``min_uptime``; otherwise it "died young" (a broken deploy, a
    bad include, a crashing extension) and its replacement waits ``start`` seconds, doubling
    with each young death in a row up to ``cap``. ``crash_loop`` young deaths in a row are a
    crash loop. A group whose workers all stay up ``min_uptime`` again starts afresh.
    """

    def __init__(self, start: float = defaults.RESTART_BACKOFF_START, cap: float = defaults.RESTART_BACKOFF_CAP,
                 min_uptime: float = defaults.MIN_WORKER_UPTIME, crash_loop: int = defaults.CRASH_LOOP_DEATHS) -> None:
        self.start = start
        self.cap = cap
        self.min_uptime = min_uptime
        self.crash_loop = crash_loop
        self.young_deaths: dict[str, int] = {}
        self.not_before: dict[str, float] = {}

    def died(self, group: str, uptime: float, now: float) -> float:
        """Record a death; returns how long its replacement waits."""
        if uptime >= self.min_uptime:
            self.recovered(group)
            return 0.0
        deaths = self.young_deaths.get(group, 0) + 1
        self.young_deaths[group] = deaths
        delay = min(self.cap, self.start * 2 ** min(deaths - 1, 30))
        self.not_before[group] = now + delay
        return delay

    def crash_looping(self, group: str) -> bool:
        return self.young_deaths.get(group, 0) >= self.crash_loop

    def wait(self, group: str, now: float) -> float:
        return max(0.0, self.not_before.get(group, 0.0) - now)

    def recovered(self, group: str) -> None:
        self.young_deaths.pop(group, None)
        self.not_before.pop(group, None)

    def forget(self) -> None:
        self.young_deaths.clear()
        self.not_before.clear()


class Master:
    """Starts the workers of a pool and keeps them running.

    Lifecycle:

    1. **startup**: title ``resque-pool-master: starting``, signal handlers (flags only, with a
       wakeup fd), PIDFILE with the master's pid.
    2. **spawn** the missing workers of each queue group: ``python -m pyresque worker`` (its
       working directory last on ``sys.path``, see :mod:`pyresque.process.interpreter`) with the
       master's environment, the config's ``[worker]`` settings, the group's ``QUEUE``,
       ``COUNT=1`` and ``PYRESQUE_SUPERVISOR_PID`` (so a worker whose master died finishes its
       job and exits), in a session of its own (a terminal's Ctrl-C reaches the master only),
       with the worker's signals blocked until it has installed its handlers (a signal that
       arrives while it imports waits instead of killing it).
    3. **wait** in ``select`` on the signal wakeup fd until a signal arrives or the next timer
       is due (a delayed replacement; the registration check of a rolling restart). No polling.
    4. **reap**: a worker that exited unexpectedly is replaced, after a backoff when it died
       young (:class:`RestartPolicy`); a crash loop is logged as an error at every restart and
       shown in the title.
    5. **roll** (HUP): re-read the configuration, start a whole new generation, and QUIT the
       old one only when every new worker has registered in Redis, so that some worker serves
       each queue throughout. A new worker that dies before registering, or a generation that
       has not registered within ``HANDOVER_TIMEOUT``, aborts the restart: the new workers are
       QUIT and the old ones keep serving.
    6. **stop** (QUIT, TERM, INT): forward the signal, replace nobody, exit once every worker
       has exited; remove the PIDFILE.
    """

    def __init__(
        self,
        load_config: Callable[[], PoolConfig],
        *,
        environ: Mapping[str, str] | None = None,
        pidfile: str | None = None,
        hostname: str | None = None,
        policy: RestartPolicy | None = None,
        handover_timeout: float = defaults.HANDOVER_TIMEOUT,
        command: Sequence[str] = WORKER_COMMAND,
    ) -> None:
        self.load_config = load_config
        self.environ = dict(os.environ if environ is None else environ)
        self.config = load_config()
        self.pidfile = pidfile
        self.hostname = hostname or socket.gethostname()
        self.policy = policy or RestartPolicy()
        self.handover_timeout = handover_timeout
        self.command = list(command)
        self.pid = os.getpid()
        self.log = get_logger("pyresque.master").bind(master=self.pid)
        self.children: dict[int, Child] = {}
        self.generation = self._last_generation = 1
        self.handover: Handover | None = None
        self.stopping = False
        self.paused = False
        self._hup_pending = False
        self._spawn_failed = ""
        self._drained: dict[str, int] = {}
        self.inbox = SignalInbox(MASTER_TABLE)
        self._store_cache: tuple[tuple[str, str], DataStore] | None = None
        self._duty: tuple[tuple[str, str], DelayedDuty] | None = None
        self._store_for(self.config)  # a bad REDIS_URL/REDIS_BACKEND fails now, not at the first HUP
        self._ready_retry_at = 0.0
        self._redis_warned = False
        self._title = ""
        pwd = self.environ.get("PWD")  # a shell's name for our directory: it may go through a symlink
        self._start_pwd = pwd if pwd and _same_dir(pwd, os.getcwd()) else None

    # == 1. startup ============================================================================
    def run(self) -> int:
        """Supervise until stopped; returns the exit code."""
        procline.master("starting")
        self.inbox.install()
        try:
            write_pidfile(self.pidfile)
            self.log.info("master started", groups=self.config.groups, pidfile=self.pidfile)
            while True:
                self._handle_signals()
                self._reap()
                if self._finished():
                    break
                self._advance_handover()
                self._maintain()
                self._move_delayed()
                self._show_title()
                self._wait(self._timeout())
        finally:
            self._teardown()
        return 0

    # == 2. spawn ==============================================================================
    def worker_env(self, queues: str, config: PoolConfig | None = None) -> dict[str, str]:
        """The environment of a worker for this queue group."""
        env = {k: v for k, v in self.environ.items() if k not in MASTER_OWNED}
        env.update((config or self.config).worker_env)
        env.update(QUEUE=queues, COUNT="1", PYRESQUE_SUPERVISOR_PID=str(self.pid))
        return env

    def workdir(self) -> str | None:
        """Where a new worker starts: ``PYRESQUE_WORKDIR``, else the master's ``PWD``, by name.

        By name, so that a deploy that swings a ``current`` symlink is followed: the master's own
        working directory is the old release's directory, whatever the symlink says now.
        """
        return self.worker_env("-").get("PYRESQUE_WORKDIR") or self._start_pwd

    def _spawn(self, queues: str) -> None:
        env = self.worker_env(queues)
        cwd = self.workdir()
        if cwd:
            env["PWD"] = cwd
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, worker_signals.HANDLED)  # inherited across exec
        try:
            proc = subprocess.Popen(self.command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:  # no such PYRESQUE_WORKDIR, fork refused, …
            if self.handover is not None:
                self._spawn_failed = f"could not start a new worker: {exc}"  # the handover aborts
                self.log.error("could not start a worker", queues=queues, error=str(exc))
                return
            delay = self.policy.died(queues, 0.0, time.monotonic())
            self.log.error("could not start a worker", queues=queues, error=str(exc), retry_in=delay)
            return
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child = Child(proc, queues, self.generation, time.monotonic(), f"{self.hostname}:{proc.pid}:{queues}")
        self.children[proc.pid] = child
        if self.paused:
            self._send(child, signal.SIGUSR2)  # waits, blocked, until the worker has its handlers
        self.log.info("spawned worker", pid=proc.pid, queues=queues, generation=self.generation)

    def _maintain(self) -> None:
        """Start what each group lacks (unless its backoff says wait), retire what it has too many of."""
        if self.stopping:
            return
        now = time.monotonic()
        for queues in self.config.groups:
            live = self._live(queues)
            want = self._wanted(queues)
            if len(live) < want:
                if self.policy.wait(queues, now) == 0:
                    for _ in range(want - len(live)):
                        self._spawn(queues)
            elif len(live) > want:
                for child in sorted(live, key=lambda c: c.started, reverse=True)[:len(live) - want]:
                    self._retire(child, "fewer workers wanted")
            elif live and queues in self.policy.young_deaths and \
                    all(now - c.started >= self.policy.min_uptime for c in live):
                self.policy.recovered(queues)
                self.log.info("workers stay up again", queues=queues)

    def _live(self, queues: str) -> list[Child]:
        return [c for c in self.children.values()
                if c.generation == self.generation and c.queues == queues and not c.retiring]

    def _wanted(self, queues: str) -> int:
        return max(0, self.config.groups.get(queues, 0) - self._drained.get(queues, 0))

    def _retire(self, child: Child, why: str) -> None:
        child.retiring = True
        self._send(child, signal.SIGQUIT)
        self.log.info("retiring worker", pid=child.pid, queues=child.queues, why=why)

    def _resize(self, delta: int) -> None:
        groups = {q: max(0, n + delta) for q, n in self.config.groups.items()}
        self.config = dataclasses.replace(self.config, groups=groups)
        self.log.info("one worker more per queue group" if delta > 0 else "one worker fewer per queue group",
                      groups=groups)
        unserved = [q for q, n in groups.items() if n == 0]
        if unserved:
            self.log.warning("no worker serves these queue groups now", groups=unserved)

    # == 3. wait ===============================================================================
    def _timeout(self) -> float | None:
        if self.stopping:
            return None  # only a signal (CHLD included) can change anything
        now = time.monotonic()
        waits = [self._duty[1].due - now] if self._duty is not None else []
        if self.handover is not None:
            waits.append(max(defaults.HANDOVER_POLL, self._ready_retry_at - now))
            waits.append(self.handover.deadline - now)
        for queues in self.config.groups:
            live = self._live(queues)
            if len(live) < self._wanted(queues) and self.policy.wait(queues, now) > 0:
                waits.append(self.policy.wait(queues, now))
            elif live and queues in self.policy.young_deaths:
                waits.append(max(c.started for c in live) + self.policy.min_uptime - now)
        return max(0.0, min(waits)) if waits else None

    def _wait(self, timeout: float | None) -> None:
        self.inbox.wait(timeout)

    # == 4. reap ===============================================================================
    def _reap(self) -> None:
        for child in list(self.children.values()):
            code = child.proc.poll()
            if code is not None:
                del self.children[child.pid]
                self._exited(child, code)

    def _exited(self, child: Child, code: int) -> None:
        now = time.monotonic()
        fields = dict(pid=child.pid, queues=child.queues, exit=_describe_exit(code),
                      uptime=round(now - child.started, 3))
        if self.stopping or child.retiring:
            self.log.info("worker exited", **fields)
        elif code == 0 and self._burst():
            self._drained[child.queues] = self._drained.get(child.queues, 0) + 1
            self.log.info("worker exited: its queues are empty (INTERVAL=0)", **fields)
        elif child.generation != self.generation:
            self.log.warning("worker of the previous generation died; the new generation replaces it", **fields)
        elif self.handover is not None and not child.ready:
            self.log.error("new worker died before it registered", **fields)
            self._abort_handover(f"new worker {child.pid} exited ({fields['exit']}) before it registered")
        else:
            delay = round(self.policy.died(child.queues, now - child.started, now), 3)
            if self.policy.crash_looping(child.queues):
                self.log.error("CRASH LOOP: workers die right after they start; replacing with backoff",
                               young_deaths=self.policy.young_deaths[child.queues], retry_in=delay, **fields)
            else:
                self.log.warning("worker died unexpectedly; replacing it", retry_in=delay, **fields)

    def _burst(self) -> bool:
        try:
            return float(self.worker_env("-").get("INTERVAL") or defaults.INTERVAL) == 0
        except ValueError:
            return False

    # == 5. roll ===============================================================================
    def _rolling_restart(self) -> None:
        if self.handover is not None:
            self._hup_pending = True
            self.log.info("HUP during a rolling restart: another one follows it")
            return
        try:
            config = self.load_config()
            self._store_for(config)
        except ConfigurationError as exc:
            self.log.error("HUP: configuration not reloaded, workers not restarted", error=str(exc))
            return
        now = time.monotonic()
        self.handover = Handover(self.config, self.generation, now, now + self.handover_timeout)
        self._last_generation += 1
        self.config, self.generation = config, self._last_generation
        self._drained.clear()
        self.policy.forget()
        self.log.info("rolling restart: starting a new generation of workers", generation=self.generation,
                      groups=config.groups)

    def _advance_handover(self) -> None:
        handover = self.handover
        if handover is None:
            return
        if self._spawn_failed:
            reason, self._spawn_failed = self._spawn_failed, ""
            self._abort_handover(reason)
            return
        self._check_registered()
        current = [c for c in self.children.values() if c.generation == self.generation and not c.retiring]
        complete = all(len(self._live(q)) >= self._wanted(q) for q in self.config.groups)
        if complete and all(c.ready for c in current):
            old = [c for c in self.children.values() if c.generation != self.generation and not c.retiring]
            for child in old:
                self._retire(child, "rolling restart")
            self.handover = None
            self.log.info("rolling restart: every new worker registered; the old ones finish their jobs and exit",
                          took=round(time.monotonic() - handover.begun, 3), new=sorted(c.pid for c in current),
                          old=sorted(c.pid for c in old))
            self._follow_pending_hup()
        elif time.monotonic() >= handover.deadline:
            self._abort_handover(f"the new workers did not register within {self.handover_timeout:g}s")

    def _check_registered(self) -> None:
        pending = [c for c in self.children.values()
                   if c.generation == self.generation and not c.ready and not c.retiring]
        if not pending or time.monotonic() < self._ready_retry_at:
            return
        try:
            flags = self._store_for(self.config).registered([c.worker_id for c in pending])
        except _REDIS_DOWN as exc:
            if not self._redis_warned:
                self.log.warning("cannot ask Redis whether the new workers registered; retrying", error=str(exc))
                self._redis_warned = True
            self._ready_retry_at = time.monotonic() + 1.0
            return
        self._redis_warned = False
        for child, registered in zip(pending, flags):
            if registered:
                child.ready = True
                self.log.info("worker registered", pid=child.pid, queues=child.queues,
                              after=round(time.monotonic() - child.started, 3))

    def _abort_handover(self, reason: str) -> None:
        handover = self.handover
        assert handover is not None
        self.handover = None
        self.log.error("ROLLING RESTART ABORTED: the old workers keep serving", reason=reason)
        for child in list(self.children.values()):
            if child.generation == self.generation and not child.retiring:
                self._retire(child, "rolling restart aborted")
        self.config, self.generation = handover.previous, handover.previous_generation
        self._follow_pending_hup()

    def _follow_pending_hup(self) -> None:
        if self._hup_pending:
            self._hup_pending = False
            self._rolling_restart()

    def _move_delayed(self) -> None:
        """The master's share of moving due delayed jobs and retries (:mod:`..scheduling.duty`), as
        each of its workers does: they may all be busy with inline jobs. The workers' own
        ``PYRESQUE_SCHEDULER=0`` opts the master out too."""
        if self.stopping:
            return
        env = self.worker_env("-", self.config)
        if env.get("PYRESQUE_SCHEDULER", "1").strip().lower() in ("0", "false", "no", "off"):
            self._duty = None
            return
        settings = RedisSettings.from_env(env)
        key = (settings.url, settings.prefix)
        if self._duty is None or self._duty[0] != key:
            resque = Resque(settings=settings, client=self._store_for(self.config).redis)
            self._duty = (key, DelayedDuty(resque, f"{self.hostname}:{self.pid}", self.log))
        try:
            self._duty[1].run_if_due()
        except _REDIS_DOWN:
            pass  # the workers report the outage; the next pass tries again

    def _store_for(self, config: PoolConfig) -> DataStore:
        """A connection to the Redis the workers of this config use (the same URL and prefix)."""
        settings = RedisSettings.from_env(self.worker_env("-", config))
        key = (settings.url, settings.prefix)
        if self._store_cache is None or self._store_cache[0] != key:
            self._store_cache = (key, DataStore(settings.client(), Keys(settings.prefix)))
        return self._store_cache[1]

    # == signals ===============================================================================
    def _handle_signals(self) -> None:
        for signum in self.inbox.take():
            action = MASTER_TABLE[signum]
            name = signal.Signals(signum).name
            if action is MasterAction.CHILD_EXITED:
                continue  # the loop reaps
            if action is MasterAction.STOP:
                self.log.info("stopping: forwarding to every worker" if not self.stopping else
                              "forwarding another stop signal to every worker", signal=name)
                self.stopping = True
                self.handover = None
                self._signal_all(signum)
            elif action is MasterAction.FORWARD:
                self.log.info("forwarding to every worker", signal=name)
                self._signal_all(signum)
            elif action in (MasterAction.PAUSE, MasterAction.RESUME):
                self.paused = action is MasterAction.PAUSE
                self.log.info("pausing every worker" if self.paused else "resuming every worker", signal=name)
                self._signal_all(signum)
            elif self.stopping:
                self.log.info("stopping: signal ignored", signal=name)
            elif action is MasterAction.ROLLING_RESTART:
                self._rolling_restart()
            elif action is MasterAction.MORE:
                self._resize(+1)
            elif action is MasterAction.FEWER:
                self._resize(-1)

    def _signal_all(self, signum: int) -> None:
        for child in list(self.children.values()):
            self._send(child, signum)

    @staticmethod
    def _send(child: Child, signum: int) -> None:
        try:
            child.proc.send_signal(signum)  # does nothing once the child is reaped
        except ProcessLookupError:
            pass

    # == 6. stop ===============================================================================
    def _finished(self) -> bool:
        if self.children:
            return False
        if self.stopping:
            return True
        return self._burst() and all(self._wanted(q) == 0 for q in self.config.groups) and bool(self._drained)

    def _show_title(self) -> None:
        notes = []
        if self.stopping:
            notes.append("stopping")
        if self.paused:
            notes.append("paused")
        if self.handover is not None:
            notes.append("rolling restart")
        looping = [q for q in self.config.groups if self.policy.crash_looping(q)]
        if looping:
            notes.append("crash loop: " + " ".join(looping))
        title = f"managing {sorted(self.children)}" + (f" ({'; '.join(notes)})" if notes else "")
        if title != self._title:
            procline.master(title)
            self._title = title

    def _teardown(self) -> None:
        remove_pidfile(self.pidfile)
        self.inbox.close()
        self.log.info("master stopped")


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
