"""The interpreters pyresque starts never import a stray ``json.py`` from the working directory
or from beside an ``APP_INCLUDE`` in place of the standard library's: worker, forking helper and
pool workers alike. (Module names found in the working directory still load: the pool's deploy
test, tests/pool/test_master.py, includes ``stream_jobs`` from the release directory.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyresque import Resque
from pyresque.process import interpreter
from support import TESTS, WorkerProcess, wait_for

#: What each stray module does when imported: leave a marker naming itself and the importer.
STRAY = ("import os\n"
         "open(os.path.join({where!r}, 'imported-' + __name__ + '-' + str(os.getpid())), 'w').close()\n")
STRAY_NAMES = ("json", "traceback")
JOBS = """\
import sibling


class StrayOk:
    @staticmethod
    def perform():
        return sibling.VALUE


class StrayFail:
    @staticmethod
    def perform():
        raise RuntimeError("stray boom")
"""


@pytest.fixture
def stray(tmp_path):
    """A working directory and an include directory, each with a stray json.py and traceback.py."""
    cwd, app = tmp_path / "cwd", tmp_path / "app"
    for where in (cwd, app):
        where.mkdir()
        for name in STRAY_NAMES:
            (where / f"{name}.py").write_text(STRAY.format(where=str(where)))
    (app / "strayjobs.py").write_text(JOBS)
    (app / "sibling.py").write_text("VALUE = 'from a sibling'\n")
    return cwd, app


def markers(*dirs: Path) -> list[str]:
    return sorted(p.name for d in dirs for p in d.iterdir() if p.name.startswith("imported-"))


def console_script(name: str) -> str:
    """The installed entry point: what an operator runs (its own directory is sys.path[0])."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is not installed next to {sys.executable}"
    return str(path)


def _probe(tmp_path, cwd, command_prefix):
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "probe_path.py").write_text(
        "import sys, pyresque\n"
        "print(repr((sys.path, pyresque.__file__, sys.argv)))\n")
    env = {**os.environ, "PYTHONPATH": str(probe_dir)}
    out = subprocess.run([*command_prefix, interpreter.PACKAGE_DIR, "probe_path", "a", "b"], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    return eval(out.stdout)  # noqa: S307 - our own probe's repr


@pytest.mark.parametrize("flags", ["as built", "without -P (Python 3.9/3.10)"])
def test_a_started_interpreter_has_the_working_directory_last_on_its_path(stray, tmp_path, flags):
    cwd, _ = stray
    built = interpreter.python_command("x")[:-2]  # [python, -P, -c, bootstrap] on 3.11+
    prefix = built if flags == "as built" else [sys.executable, "-c", interpreter._BOOTSTRAP]
    path, package_file, argv = _probe(tmp_path, cwd, prefix)
    assert "" not in path and path[-1] == str(cwd) and path.count(str(cwd)) == 1  # last, after the stdlib
    assert os.path.dirname(interpreter.PACKAGE_DIR) not in path  # this pyresque, without its directory
    assert package_file == os.path.join(interpreter.PACKAGE_DIR, "__init__.py")
    assert argv == [str(tmp_path / "probe" / "probe_path.py"), "a", "b"]
    assert markers(cwd) == []


def _run_jobs(redis_url):
    resque = Resque(redis_url)
    ok, bad = resque.enqueue("default", "StrayOk"), resque.enqueue("default", "StrayFail")
    return resque, ok, bad


def _check_jobs(resque, ok, bad, r, stray, what):
    """Both jobs done (or a stray module imported: a process that imports one seldom gets far)."""
    wait_for(lambda: markers(*stray) or (resque.status(ok).status == 4 and resque.status(bad).status == 3),
             timeout=20, what=what)
    assert markers(*stray) == []
    assert resque.status(ok).result == "from a sibling"  # the include still imports its siblings
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert failure["error"] == "stray boom" and failure["backtrace"]  # the real traceback module


def test_worker_and_forking_helper_import_no_stray_module(redis_url, r, tmp_path, stray):
    cwd, app = stray
    resque, ok, bad = _run_jobs(redis_url)
    with WorkerProcess(redis_url, tmp_path, cwd=cwd, command=[console_script("pyresque-worker")],
                       APP_INCLUDE=str(app / "strayjobs.py"), PYTHONPATH=str(TESTS.parent)) as worker:
        worker.worker_id(r)
        _check_jobs(resque, ok, bad, r, stray, f"both jobs\n{worker.log()}")
    assert markers(cwd, app) == []


def test_pool_workers_import_no_stray_module(redis_url, r, tmp_path, stray):
    cwd, app = stray
    resque, ok, bad = _run_jobs(redis_url)
    with WorkerProcess(redis_url, tmp_path, cwd=cwd, command=[console_script("pyresque-worker")], COUNT="2",
                       PWD=str(cwd), APP_INCLUDE=str(app / "strayjobs.py"), PYTHONPATH=str(TESTS.parent)) as master:
        wait_for(lambda: markers(cwd, app) or len(r.smembers("resque:workers")) == 2,
                 what=f"two pool workers\n{master.log()}")
        _check_jobs(resque, ok, bad, r, stray, f"both jobs\n{master.log()}")
    assert markers(cwd, app) == []
