"""README.rst's Quickstart, run as a newcomer would paste it: in a fresh virtualenv, with the
README's own dev Redis, each ``$`` line in one shell, each output compared with the README's.

The README is the script. From its Quickstart section this reads the ``console`` blocks (``$``
commands, the lines below each one being its expected stdout) and the ``python`` block (the
job file, named in the paragraph before it). Placeholders: ``…`` stands for any text, and on a
line of its own for any number of lines; ``<name>`` for one word, bound where it first appears
and the same wherever it appears again (in commands too). A command ending in ``# exits N``
must exit N, any other 0. Two departures, both what a person does too: ``pip install
'pyresque[…]'`` installs this checkout instead of the package index's pyresque, and ``pyresque
redis``, which the README runs in a second terminal, runs beside the shell.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).parent.parent
ELLIPSIS = "…"
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
EXITS = re.compile(r"#\s*exits (\d+)\b")
SECOND_TERMINAL = "pyresque redis"
STEP_TIMEOUT = 60


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Quickstart:
    steps: list[Step]
    job_file: str
    job_code: str


def quickstart_section(readme: str) -> list[str]:
    lines = readme.splitlines()
    start = lines.index("Quickstart")
    assert lines[start + 1].startswith("---")
    for end in range(start + 2, len(lines) - 1):
        if lines[end + 1].startswith("---") and lines[end + 1].strip("-") == "" and lines[end].strip():
            return lines[start + 2:end]
    raise AssertionError("the Quickstart section has no end")


def blocks(section: list[str]) -> list[tuple[str, list[str], str]]:
    """(language, lines with the indent removed, the paragraph before it) of each code-block."""
    found = []
    paragraph: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(section):
        line = section[i]
        match = re.match(r"\.\. code-block:: (\w+)$", line)
        if not match:
            if line.strip():
                current.append(line)
            elif current:
                paragraph, current = current, []
            i += 1
            continue
        i += 1
        body: list[str] = []
        while i < len(section) and (not section[i].strip() or section[i].startswith("    ")):
            body.append(section[i][4:])
            i += 1
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        found.append((match.group(1), body, " ".join(current or paragraph)))
        paragraph, current = [], []
    return found


def parse(readme: str) -> Quickstart:
    steps: list[Step] = []
    job_file = job_code = None
    for language, body, before in blocks(quickstart_section(readme)):
        if language == "python":
            names = re.findall(r"``([\w./-]+\.py)``", before)
            assert names, f"the paragraph before the job file names no .py file: {before!r}"
            job_file, job_code = names[-1], "\n".join(body) + "\n"
            continue
        assert language == "console", language
        for line in body:
            if line.startswith("$ "):
                steps.append(Step(line[2:]))
            else:
                assert steps, f"output before any command: {line!r}"
                steps[-1].expected.append(line)
    assert steps and job_file and job_code
    return Quickstart(steps, job_file, job_code)


# -- matching output against the README's lines -----------------------------------------------
def line_pattern(expected: str, bound: dict[str, str]) -> tuple[re.Pattern[str], dict[str, str]]:
    """A regex for one expected line, and which of its groups binds which placeholder."""
    pattern = ""
    groups: dict[str, str] = {}
    for piece in re.split(r"(…|<[a-z][a-z0-9-]*>)", expected):
        if piece == ELLIPSIS:
            pattern += ".*"
        elif PLACEHOLDER.fullmatch(piece):
            name = piece[1:-1]
            if name in bound:
                pattern += re.escape(bound[name])
            elif name in groups:
                pattern += f"(?P={groups[name]})"
            else:
                groups[name] = f"g{len(groups)}"
                pattern += rf"(?P<{groups[name]}>\S+?)"
        else:
            pattern += re.escape(piece)
    return re.compile(pattern + r"\Z"), {group: name for name, group in groups.items()}


def match_lines(expected: list[str], actual: list[str], bound: dict[str, str]) -> dict[str, str] | None:
    """The bindings that make ``actual`` read as ``expected``, or ``None``."""
    if not expected:
        return bound if not actual else None
    head, rest = expected[0], expected[1:]
    if head == ELLIPSIS:  # any number of lines
        for skip in range(len(actual) + 1):
            found = match_lines(rest, actual[skip:], bound)
            if found is not None:
                return found
        return None
    if not actual:
        return None
    pattern, names = line_pattern(head, bound)
    matched = pattern.match(actual[0])
    if not matched:
        return None
    return match_lines(rest, actual[1:], {**bound, **{names[g]: v for g, v in matched.groupdict().items()}})


def substitute(command: str, bound: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        assert match.group(1) in bound, f"{match.group(0)} is used before the README shows it: {command!r}"
        return bound[match.group(1)]
    return PLACEHOLDER.sub(value, command)


# -- a shell that runs the steps ---------------------------------------------------------------
class Shell:
    """One bash, fed the README's lines: ``. activate``, ``export`` and ``&`` act as they would
    in a terminal. stdout is what each command printed; stderr (logs) goes to a file."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self._log = open(log, "wb")
        self.process = subprocess.Popen(["bash", "--norc", "--noprofile"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        self._pending = b""

    def run(self, command: str, timeout: float = STEP_TIMEOUT) -> tuple[int, str]:
        marker = f"__quickstart_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{command}\nprintf '%s %s\\n' {marker} \"$?\"\n".encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        data = self._pending
        end = re.compile(rf"{marker} (\d+)\n".encode())
        while not end.search(data):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{command!r} did not finish within {timeout}s; printed {data!r}"
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"the shell ended during {command!r}"
                data += chunk
        found = end.search(data)
        assert found is not None
        self._pending = data[found.end():]
        return int(found.group(1)), data[:found.start()].decode()

    def close(self) -> None:
        for child in psutil.Process(self.process.pid).children(recursive=True) if self.process.poll() is None else []:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()


class SecondTerminal:
    """``pyresque redis``, left running while the shell goes on."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(["bash", "--norc", "--noprofile", "-c", f"exec {command}"], cwd=cwd, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def lines(self, count: int, timeout: float = 30) -> list[str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        data = b""
        while data.count(b"\n") < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the second terminal printed only {data!r}"
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"the second terminal's command ended: {data!r} {self.stderr()}"
                data += chunk
        return data.decode().splitlines()

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode()

    def ctrl_c(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def newcomer_env() -> dict[str, str]:
    """This machine's environment without the test run's virtualenv or any Resque settings."""
    ours = {os.path.realpath(sys.prefix), os.path.realpath(str(ROOT))}
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry and not any(os.path.realpath(entry).startswith(prefix) for prefix in ours)]
    skip = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX",
            "QUEUE", "APP_INCLUDE", "INTERVAL", "BLOCKING", "LOGGING", "COUNT", "PIDFILE"}
    env = {key: value for key, value in os.environ.items() if key not in skip and not key.startswith("PYRESQUE_")}
    env["PATH"] = os.pathsep.join(path)
    return env


def copy_checkout(target: Path) -> Path:
    """The checkout's sources, so pip's build leaves nothing behind in it."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                    "results", ".tox")
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


# -- the test ----------------------------------------------------------------------------------
def test_the_parser_reads_the_quickstart_it_is_meant_to():
    quickstart = parse((ROOT / "README.rst").read_text())
    commands = [step.command for step in quickstart.steps]
    assert commands[0].startswith("python3 -m venv .venv")
    assert any(command.startswith("pip install 'pyresque[") for command in commands)
    assert SECOND_TERMINAL in commands
    assert any("APP_INCLUDE=" + quickstart.job_file in command and command.endswith("&") for command in commands)
    assert any(command.startswith("pyresque failed retry") for command in commands)
    assert "class " in quickstart.job_code and "@pyresque.register" in quickstart.job_code
    assert len(quickstart.steps) + sum(len(step.expected) for step in quickstart.steps) <= 45


@pytest.mark.parametrize("expected, actual, ok", [
    (["Enqueued X: <id>"], ["Enqueued X: abc"], {"id": "abc"}),
    (["…", "<id>: done"], ["<id> waiting", "abc: done"], {"id": "abc"}),
    (["…"], [], {}),
    (["a"], ["a", "b"], None),
    (["<id> <id>"], ["x y"], None),
    (["updated …, result 1"], ["updated 2026, result 2"], None),
])
def test_matching_reads_placeholders_as_the_readme_means_them(expected, actual, ok):
    assert match_lines(expected, actual, {}) == ok


def test_the_quickstart_works_as_written(tmp_path):
    quickstart = parse((ROOT / "README.rst").read_text())
    project = tmp_path / "project"
    project.mkdir()
    checkout = copy_checkout(tmp_path / "checkout")
    env = newcomer_env()
    venv_env = {**env, "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"}
    (project / quickstart.job_file).write_text(quickstart.job_code)
    shell = Shell(project, env, tmp_path / "shell-stderr.log")
    terminals: list[SecondTerminal] = []
    bound: dict[str, str] = {}
    try:
        for step in quickstart.steps:
            command = substitute(step.command, bound)
            if command == SECOND_TERMINAL:
                assert ELLIPSIS not in step.expected, "a second terminal's output needs a known line count"
                terminal = SecondTerminal(command, project, venv_env)
                terminals.append(terminal)
                printed = terminal.lines(len(step.expected))
            else:
                pip = re.match(r"pip install '(pyresque)(\[[\w,]+\])?'", command)
                if pip:
                    command = command.replace(pip.group(0), f"pip install '{checkout}{pip.group(2) or ''}'")
                wanted = EXITS.search(command)
                code, output = shell.run(command, timeout=300 if pip else STEP_TIMEOUT)
                log = (tmp_path / "shell-stderr.log").read_text(errors="replace")[-3000:]
                assert code == (int(wanted.group(1)) if wanted else 0), f"{command!r} exited {code}:\n{output}\n{log}"
                printed = output.splitlines()
            found = match_lines(step.expected, printed, bound)
            assert found is not None, (f"$ {command}\nREADME shows:\n" + "\n".join(step.expected)
                                       + "\nbut it printed:\n" + "\n".join(printed))
            bound = found
        started = psutil.Process(shell.process.pid).children(recursive=True)
        assert _wait_gone(started), "the worker was still running after the README's QUIT"
        for terminal in terminals:  # "Ctrl-C stops the Redis"
            assert terminal.ctrl_c() == 0, terminal.stderr()
    finally:
        for terminal in terminals:
            terminal.close()
        shell.close()


def _wait_gone(processes: list[psutil.Process], timeout: float = 15) -> bool:
    def alive(proc: psutil.Process) -> bool:
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while any(alive(proc) for proc in processes):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
