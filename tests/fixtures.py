"""Job fixtures for forked workers: loaded by workers with APP_INCLUDE=tests/fixtures.py.

Children never talk to Redis, so jobs report through files in $JOB_RECORD_DIR.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pyresque

RECORD_DIR = os.environ.get("JOB_RECORD_DIR", "/tmp")


def record(name: str, data: object) -> None:
    path = os.path.join(RECORD_DIR, f"{name}.{os.getpid()}.{time.monotonic_ns()}.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle)
    os.replace(path + ".tmp", path)


def records(directory: str, name: str) -> list:
    out = []
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(name + ".") and entry.endswith(".json"):
            with open(os.path.join(directory, entry)) as handle:
                out.append(json.load(handle))
    return out


def _title() -> str:
    with open("/proc/self/cmdline", "rb") as handle:
        return handle.read().replace(b"\0", b" ").decode().strip()


@pyresque.register("PHP_Job", aliases=["App\\Jobs\\PhpJob"])
class PhpJob:
    """php-resque style: an instance with self.args, setUp/perform/tearDown."""

    calls: list = []

    def setUp(self):
        self.calls = ["setUp"]

    def perform(self):
        self.calls.append("perform")
        return {"args": self.args, "queue": self.queue, "id": self.job.id}

    def tearDown(self):
        self.calls.append("tearDown")
        record("php_job", {"calls": self.calls, "args": self.args, "pid": os.getpid(), "ppid": os.getppid(),
                           "title": _title()})


@pyresque.register("SomeJob")
class RubyJob:
    """Ruby style: perform(*args) as a static method, with Ruby's per-class hooks."""

    @staticmethod
    def before_perform_log(*args):
        record("ruby_hook_before", list(args))

    @staticmethod
    def around_perform_wrap(inner, *args):
        record("ruby_hook_around_in", list(args))
        result = inner()
        record("ruby_hook_around_out", list(args))
        return result

    @staticmethod
    def perform(*args):
        record("ruby_job", {"args": list(args), "t": time.time()})
        return len(args)

    @staticmethod
    def after_perform_log(*args):
        record("ruby_hook_after", list(args))


@pyresque.register
class SleepJob:
    @staticmethod
    def perform(seconds):
        record("sleep_started", {"seconds": seconds, "pid": os.getpid(), "title": _title()})
        time.sleep(seconds)
        record("sleep_finished", {"seconds": seconds})
        return "slept"


@pyresque.register
class IdempotentSleepJob:
    requeue_on_dirty_exit = True

    @staticmethod
    def perform(seconds):
        record("idem_started", {"pid": os.getpid()})
        time.sleep(seconds)


@pyresque.register
class FailJob:
    @staticmethod
    def perform(message):
        raise RuntimeError(message)


@pyresque.register
class ExitJob:
    @staticmethod
    def perform(code):
        os._exit(code)


@pyresque.register
class SelfKillJob:
    @staticmethod
    def perform():
        os.kill(os.getpid(), signal.SIGKILL)


@pyresque.register
class SkipJob:
    def setUp(self):
        raise pyresque.DontPerform("not today")

    def perform(self):
        record("skip_job_ran", {})


@pyresque.register
class NoopJob:
    @staticmethod
    def perform(*args):
        return None


@pyresque.register
class IgnoreTermJob:
    @staticmethod
    def perform(seconds):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record("ignore_term_started", {"pid": os.getpid()})
        time.sleep(seconds)


@pyresque.register
class SysExitJob:
    @staticmethod
    def perform():
        raise SystemExit(3)


@pyresque.register
class InterruptJob:
    @staticmethod
    def perform():
        raise KeyboardInterrupt()


@pyresque.register
class BadConstructorJob:
    def __init__(self):
        raise TypeError("cannot build")

    def perform(self):
        return 1


@pyresque.register
class UnserialisableResultJob:
    @staticmethod
    def perform():
        return {1, 2, 3}


@pyresque.register
class HookRaisesJob:
    @staticmethod
    def before_perform_check(*args):
        raise ValueError("hook says no")

    @staticmethod
    def perform():
        record("hook_raises_ran", {})


@pyresque.register
class SetUpRaisesJob:
    def setUp(self):
        raise LookupError("setUp broke")

    def perform(self):
        record("setup_raises_ran", {})


@pyresque.register
@pyresque.timeout(1)
class SlowJobWithLimit:
    @staticmethod
    def perform(seconds):
        record("slow_limited_started", {"pid": os.getpid()})
        time.sleep(seconds)
        record("slow_limited_finished", {})


@pyresque.register
@pyresque.retry(attempts=4, backoff=[0.3, 0.6, 0.6], on=(OSError,))
class FlakyJob:
    """php style: fails twice, succeeds on its third run."""

    def perform(self):
        record("flaky", {"attempt": self.job.attempt, "t": time.time()})
        if self.job.attempt < 3:
            raise OSError(f"flaky attempt {self.job.attempt}")
        return {"succeeded_on": self.job.attempt}


@pyresque.register
@pyresque.retry(attempts=3, backoff="exponential", base=0.1, cap=1, give_up_on=("ValueError",))
class HopelessJob:
    @staticmethod
    def perform(kind):
        if kind == "value":
            raise ValueError("never retried")
        raise RuntimeError("always broken")


@pyresque.register
@pyresque.unique()
class UniqueJob:
    @staticmethod
    def perform(n):
        record("unique_ran", {"n": n, "pid": os.getpid()})


@pyresque.register
@pyresque.limit_concurrency(2, lease=30)
class LimitedJob:
    @staticmethod
    def perform(n):
        start = time.time()
        time.sleep(0.3)
        record("limited", {"n": n, "start": start, "end": time.time()})


@pyresque.register("Unique", aliases=["App\\Unique"])
@pyresque.unique()
class AliasedUniqueJob:
    @staticmethod
    def perform(n):
        record("aliased_unique_ran", {"n": n})


@pyresque.register("Limited", aliases=["App\\Limited"])
@pyresque.limit_concurrency(1, lease=30)
class AliasedLimitedJob:
    """One slot for both its names: two jobs sent under the two never run at once."""

    @staticmethod
    def perform(n):
        start = time.time()
        time.sleep(0.5)
        record("aliased_limited", {"n": n, "start": start, "end": time.time()})


@pyresque.register
class PidJob:
    @staticmethod
    def perform(n):
        record("pid_job", {"n": n, "pid": os.getpid()})
        return os.getpid()


@pyresque.register
class CrashJob:
    @staticmethod
    def perform():
        os.kill(os.getpid(), signal.SIGKILL)


@pyresque.register
class BadPolicyJob:
    retry_attempts = 0  # nonsense in the attribute form: refused before the job runs

    @staticmethod
    def perform():
        record("bad_policy_ran", {})


@pyresque.register
class SignalMaskJob:
    @staticmethod
    def perform():
        with open("/proc/self/status") as handle:
            fields = dict(line.split(":\t", 1) for line in handle if ":\t" in line)
        record("signal_mask", {"ignored": int(fields["SigIgn"], 16), "caught": int(fields["SigCgt"], 16)})


@pyresque.register
class NapJob:
    """Sleeps in short naps: Python code between them, so a threaded worker can interrupt it."""

    @staticmethod
    def perform(seconds):
        record("nap_started", {"seconds": seconds, "pid": os.getpid()})
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.01)
        record("nap_finished", {"seconds": seconds})
        return "napped"


@pyresque.register
class ForkHandlersJob:
    """Which modules with at-fork handlers the child inherited (each handler runs per fork)."""

    @staticmethod
    def perform():
        import sys

        return sorted(name for name in ("threading", "logging", "subprocess", "random") if name in sys.modules)


@pyresque.register
class GateJob:
    """Runs until the test opens its gate (``WorkerProcess.open_gate``): a job that is surely still
    running while the test looks, without a guessed duration. Waits in naps, so a threaded worker
    can interrupt it."""

    @staticmethod
    def perform(name):
        record("gate_started", {"name": name, "pid": os.getpid(), "ppid": os.getppid(), "title": _title()})
        gate = os.path.join(RECORD_DIR, f"gate-{name}")
        while not os.path.exists(gate):
            time.sleep(0.01)
        record("gate_finished", {"name": name})
        return "passed"


@pyresque.register
class ChaosJob:
    """A short job that says it finished: the kill-chaos test counts these per job."""

    @staticmethod
    def perform(n, seconds):
        time.sleep(seconds)
        record("chaos_done", {"n": n, "pid": os.getpid()})
        return n
