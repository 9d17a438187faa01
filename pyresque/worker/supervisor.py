"""Child supervision: where a forking worker's job runs, and how the parent watches it.

The worker loop (:mod:`pyresque.worker.worker`) decides *what* runs and records the outcome;
a :class:`ChildSupervisor` runs it in a child process and says how that went. Per job:

1. **ready a child**: the forking helper's next child (:mod:`.forking_helper`), the one forked
   ahead, or a fresh fork; a helper that died is replaced, and a child that died while it
   waited for its job gets one more try;
2. **hand over** the job through the child's pipe (:mod:`.horse` is the child's side);
3. **fork ahead**: the next job's child is forked while this one runs (prefork), so no job
   waits for a fork;
4. **watch** without polling: ``select`` on the child's report pipe, its pidfd, the signal
   wakeup fd and the helper's socket; between wakes, the time limit (TERM, then KILL
   ``RESQUE_TERM_TIMEOUT`` later) and the loop's own timers (heartbeat, the master check);
5. **read the outcome**: the child's report, or how it died (signal, exit code, time limit);
6. **reap** children that reported later, off the critical path, or keep the child for the next
   job (``fork_every``);
7. **retire** an idle launched helper to give its memory back, and **stop** it all at exit.

Signals reach the loop, not this object: the loop's handler calls :meth:`kill` when a signal
means the job must die.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Any, Callable

from ..jobs import job as jobmod
from ..jobs.resolver import JobResolver
from ..process.memory import give_back_free_memory
from ..process.signal_inbox import SignalInbox
from ..wire import payload as wire
from ..wire import procline
from . import horse
from .forking_helper import Zygote, ZygoteGone
from .options import WorkerOptions


class ChildSupervisor:
    """Runs one job at a time in a child process for one worker parent, and watches it."""

    def __init__(
        self,
        options: WorkerOptions,
        resolver: JobResolver,
        inbox: SignalInbox,
        log: Any,
        *,
        on_signals: Callable[[], None],
        on_wake: Callable[[], None],
        next_wake: Callable[[], float],
        on_started: Callable[[jobmod.Job], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.options = options
        self.resolver = resolver
        self.inbox = inbox
        self.log = log
        self._on_signals = on_signals  # the signal wakeup fd is readable: the loop takes them
        self._on_wake = on_wake  # the loop's timers (heartbeat, master check), at each wake
        self._next_wake = next_wake  # when the loop's next timer is due (monotonic)
        self._on_started = on_started  # the job's start line, once the child has the job
        self._stopping = stopping  # the worker is shutting down: no child kept or forked ahead
        self.child_pid: int | None = None  # the child running the job in hand
        self._warm: horse.Horse | None = None  # forked ahead (no helper)
        self._kept: horse.Horse | None = None  # fork-every: the child that serves the next job
        self._kept_served = 0
        self._zygote: Zygote | None = None
        self._zygote_due = False  # start a forking helper with the next job
        self._exiting: list[int] = []  # reported their job; reaped later
        self._job_deadline: float | None = None
        self._job_limit: float | None = None
        self._timed_out: float | None = None
        self._kill_deadline: float | None = None

    def start(self) -> None:
        """Start the forking helper, if the options want one: before any Redis connection exists."""
        if self.options.fork and self.options.prefork:
            self._zygote = self._start_helper()

    # == 1-6. one job ==========================================================================
    def run(self, job: jobmod.Job, limit: float | None) -> jobmod.Outcome:
        """Run the job in a child (fresh, or the kept one in fork-every mode) and wait for it."""
        child, served = (self._kept, self._kept_served) if self._kept else (self._next_child(), 0)
        self._kept = None
        since = int(time.time())
        try:
            child.send(job, since)
        except OSError:  # the waiting child died (OOM killer, an operator's kill): one more try
            self._discard(child)
            child, served = self._next_child(), 0
            child.send(job, since)
        self._on_started(job)
        served += 1
        self.child_pid = child.pid
        self._job_deadline = time.monotonic() + limit if limit else None
        self._job_limit = limit
        self._timed_out = None
        procline.set_title(procline.forked(child.pid, since))
        if self.options.prefork and not self._stopping() and served >= self.options.fork_every:
            self._fork_ahead(child)  # the next child is forked while this job runs
        try:
            message, status, retiring = self._watch(child.pid, child.result_r)
        finally:
            self.child_pid = None
            self._kill_deadline = None
            self._job_deadline = None
        if status is None and not retiring and not self._stopping() and self._timed_out is None:
            self._kept, self._kept_served = child, served  # fork-every: it serves the next job too
        else:
            self._discard(child, reported=status is None)
        return self._outcome(message, status)

    def _outcome(self, message: bytes, status: int | None) -> jobmod.Outcome:
        if self._timed_out is not None:
            return jobmod.Outcome(False, exception="pyresque.JobTimeout",
                                  error=f"Job exceeded its time limit of {self._timed_out:g}s and was killed")
        outcome = jobmod.Outcome.from_message(message) if message else None
        if outcome is not None:
            return outcome
        if status is None:  # a report that is not one: treat the child as having died
            return jobmod.Outcome(False, exception="pyresque.DirtyExit", error="Job sent an unreadable report")
        if os.WIFSIGNALED(status):
            return jobmod.Outcome(False, exception="pyresque.DirtyExit", error=wire.DIRTY_EXIT_ABNORMAL)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        if code != 0:
            return jobmod.Outcome(False, exception="pyresque.DirtyExit", error=f"Job exited with exit code {code}")
        return jobmod.Outcome(True)  # exited 0 without a word (os._exit(0) in the job): done, as php

    def _next_child(self) -> horse.Horse:
        """A child ready for a job: from the helper, the one forked ahead, or a new one."""
        if self._zygote is None and self._zygote_due:
            self._zygote_due = False
            self._zygote = self._start_helper()
        if self._zygote is not None:
            try:
                return self._zygote.take()
            except (ZygoteGone, OSError) as exc:
                self.log.warning("forking helper died, starting a new one", error=str(exc))
                self._zygote.stop()
                self._zygote = self._start_helper()
                return self._zygote.take()
        child, self._warm = self._warm, None
        return child or self._spawn()

    def _fork_ahead(self, current: horse.Horse) -> None:
        if self._zygote is not None:
            try:
                self._zygote.request()
            except OSError as exc:
                self._helper_died(exc)
        else:
            self._warm = self._spawn((current.job_w, current.result_r))

    def _start_helper(self) -> Zygote:
        if self.options.helper_includes is not None:
            return Zygote.launch(self.options.helper_includes, self.resolver.allowed,
                                 self.options.fork_every, self.options.max_child_memory_mb)
        return Zygote.start(self.resolver, self.inbox.fds, self.options.fork_every,
                            self.options.max_child_memory_mb)

    def _spawn(self, busy_fds: tuple[int, ...] = ()) -> horse.Horse:
        """Fork a child for the next job; it closes the parent's fds it has no business with."""
        return horse.spawn(self.resolver, self.inbox.fds + busy_fds, self.options.fork_every,
                           self.options.max_child_memory_mb)

    # -- 4. watch ----------------------------------------------------------------------------
    def _watch(self, pid: int, result_r: int) -> tuple[bytes, int | None, bool]:
        """Wait for the child's report without polling; act on signals and timers meanwhile.

        Returns (report, wait status, retiring). The status is ``None`` when the child reported:
        it is reaped later, its teardown off the critical path. A child that died without a
        report is reaped here and its status returned.
        """
        pidfd = _pidfd_open(pid)
        buffer = b""
        watch = [result_r, self.inbox.fd] + ([pidfd] if pidfd >= 0 else [])
        if self._zygote is not None:
            watch.append(self._zygote.fileno())
        report = None
        try:
            while report is None:
                ready, _, _ = select.select(watch, [], [], self._wake_timeout())
                if self.inbox.fd in ready:
                    self._on_signals()
                if self._zygote is not None and self._zygote.fileno() in ready:
                    try:
                        self._zygote.drain()  # exit notices of earlier children
                    except (ZygoteGone, OSError) as exc:  # the child is still ours to watch
                        watch.remove(self._zygote.fileno())
                        self._helper_died(exc)
                if result_r in ready and result_r in watch:
                    data = os.read(result_r, 65536)
                    if data:
                        buffer += data
                        report = horse.parse_report(buffer)
                        continue
                    watch.remove(result_r)
                    if pidfd < 0:
                        break
                if pidfd >= 0 and pidfd in ready:
                    break
                self._timers(pid)
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        if report is not None:
            return report[0], None, report[1]
        return b"", self._status_of(pid), True

    def _wake_timeout(self) -> float:
        deadlines = [self._next_wake()]
        if self._job_deadline is not None:
            deadlines.append(self._job_deadline)
        if self._kill_deadline is not None:
            deadlines.append(self._kill_deadline)
        return max(0.0, min(deadlines) - time.monotonic())

    def _timers(self, pid: int) -> None:
        if self._job_deadline is not None and time.monotonic() >= self._job_deadline:
            self._timed_out = self._job_limit
            self._job_deadline = None
            self.log.warning("job timed out, terminating it", child=pid, limit=self._job_limit)
            _killpg(pid, signal.SIGTERM)
            self._kill_deadline = time.monotonic() + self.options.term_timeout
        if self._kill_deadline is not None and time.monotonic() >= self._kill_deadline:
            self.log.warning("child ignored TERM, killing it", child=pid)
            _killpg(pid, signal.SIGKILL)
            self._kill_deadline = None
        self._on_wake()

    def kill(self, force: bool = False) -> None:
        """The job in hand must die: TERM first (``TERM_CHILD``, unless ``force``), else KILL."""
        pid = self.child_pid
        if pid is None:
            return
        if self.options.term_child and not force:
            self.log.info("sending TERM to child", child=pid, timeout=self.options.term_timeout)
            _killpg(pid, signal.SIGTERM)
            self._kill_deadline = time.monotonic() + self.options.term_timeout
        else:
            self.log.info("killing child", child=pid)
            _killpg(pid, signal.SIGKILL)

    # -- 5-6. how it ended, reaping ----------------------------------------------------------
    def _status_of(self, pid: int) -> int:
        """The wait status of a child that died without a report."""
        if self._zygote is None:
            try:
                return os.waitpid(pid, 0)[1]
            except ChildProcessError:  # a child of a helper that died: we cannot know its status
                return signal.SIGKILL
        try:
            return self._zygote.status_of(pid)
        except (ZygoteGone, OSError) as exc:
            self._helper_died(exc)
            return signal.SIGKILL  # reads as "Job exited abnormally"

    def _discard(self, child: horse.Horse, reported: bool = True) -> None:
        """Done with a child: close its pipes; it exits (or has); reap it later or let the helper."""
        child.close()
        if not reported:
            return  # already reaped by _watch
        if child.reaped_elsewhere and self._zygote is not None:
            self._zygote.forget(child.pid)
        elif not child.reaped_elsewhere:
            self._exiting.append(child.pid)

    def reap(self, block: bool = False) -> None:
        """Collect children that reported their job and are now exiting."""
        for pid in list(self._exiting):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._exiting.remove(pid)

    def _helper_died(self, exc: BaseException) -> None:
        """The forking helper is gone: drop it; the next job starts a new one."""
        if self._zygote is not None:
            self.log.warning("forking helper died; a new one starts with the next job", error=str(exc))
            self._zygote.abandon()
            self._zygote = None
            self._zygote_due = True

    # == 7. retire, stop =======================================================================
    def retire_idle_helper(self, idle_since: float) -> None:
        """An idle worker gives back its forking helper's memory; the next job starts a new one.

        Only the launched helper (a fresh interpreter) retires: a helper forked from this
        worker must be forked before any Redis connection exists, which is only at start-up."""
        limit = self.options.helper_idle
        if (self._zygote is None or limit <= 0 or self.options.helper_includes is None
                or time.monotonic() - idle_since < limit):
            return
        self._cancel_waiting_children()
        self._zygote.stop()
        self._zygote = None
        self._zygote_due = True
        give_back_free_memory()
        self.log.info("forking helper retired while idle; the next job starts a new one", idle_for=limit)

    def stop(self) -> None:
        """At the worker's exit: no child waits for a job, no helper is left, every child reaped."""
        self._cancel_waiting_children()
        if self._zygote is not None:
            self._zygote.stop()
            self._zygote = None
        self.reap(block=True)

    def _cancel_waiting_children(self) -> None:
        for child in (self._warm, self._kept):
            if child is not None:
                child.cancel()
        self._warm = self._kept = None


def _pidfd_open(pid: int) -> int:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return -1
    try:
        return int(opener(pid))
    except OSError:
        return -1


def _killpg(pid: int, signum: int) -> None:
    """Signal the child's process group (the job and anything it spawned); gone is fine."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
