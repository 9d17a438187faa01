"""The worker command's first-contact behaviour (issue #14, item 6): errors that name the
environment variable, ``--version``, ``--burst``, RQ-style queue arguments, one-line include
errors, a validated ``LOGGING``, removal exit codes and ``peek`` that does not print 10 MB."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

from pyresque import Resque
from support import JOBS, TESTS, wait_for

VERSION = importlib.metadata.version("pyresque")
_DROPPED = ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB", "PREFIX", "QUEUE", "APP_INCLUDE", "LOGGING",
            "INTERVAL", "BLOCKING", "VVERBOSE", "COUNT", "ALLOWED_MODULES")


def run(redis_url, *args, timeout=30, entry=None, **env_extra):
    """``python -m pyresque ARGS`` (or an entry point's function, with its program name)."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env["PYTHONPATH"] = str(TESTS.parent)
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(env_extra)
    if entry is None:
        command = [sys.executable, "-m", "pyresque", *args]
    else:  # the console script's own function: its prog_name and options, without relying on PATH
        command = [sys.executable, "-c", f"import sys; sys.argv[0] = {entry!r}; "
                   f"from pyresque.cli.main import {entry.split('-')[1]}_main as m; m()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def one_line_error(done, code=2):
    assert done.returncode == code, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


# -- 1. required values named by their environment variable -----------------------------------
def test_no_queue_names_the_queue_variable_and_the_argument_form(redis_url):
    line = one_line_error(run(redis_url, "worker"))
    assert "QUEUE=default" in line and "pyresque worker default high" in line
    assert "Missing option" not in line
    line = one_line_error(run(redis_url, entry="pyresque-worker"))
    assert "QUEUE=default" in line and "pyresque-worker default high" in line


def test_pool_without_a_config_names_its_variable():
    line = one_line_error(run(None, "pool"))
    assert "RESQUE_POOL_CONFIG" in line and "--config" in line


@pytest.mark.parametrize("command, variable, option", [(["worker", "default"], "INTERVAL", "--interval"),
                                                        (["scheduler"], "RESQUE_SCHEDULER_INTERVAL", "--interval")])
def test_a_bad_value_from_the_environment_names_the_variable(redis_url, command, variable, option):
    done = run(redis_url, *command, **{variable: "soon"})
    assert done.returncode == 2 and f"Invalid value for {variable} ('{option}'): 'soon'" in done.stderr
    typed = run(redis_url, *command, option, "soon")  # typed on the command line: the option alone
    assert typed.returncode == 2 and f"Invalid value for '{option}': 'soon'" in typed.stderr


# -- 2. --version --------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", [None, "pyresque-worker", "pyresque-scheduler"])
def test_version_is_the_package_name_and_version(entry):
    done = run(None, "--version", entry=entry)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pyresque {VERSION}"


# -- 3. --burst ----------------------------------------------------------------------------------
def test_burst_drains_the_queue_and_exits_0(redis_url, r):
    resque = Resque(redis_url)
    jobs = [resque.enqueue("default", "NoopJob", n) for n in range(3)]
    done = run(redis_url, "worker", "--burst", "default", APP_INCLUDE=JOBS, INTERVAL="5")
    assert done.returncode == 0, done.stderr
    assert all(resque.status(job).status == 4 for job in jobs)
    assert r.llen("resque:queue:default") == 0 and not r.smembers("resque:workers")


def test_interval_0_still_means_burst(redis_url):
    resque = Resque(redis_url)
    job = resque.enqueue("default", "NoopJob")
    done = run(redis_url, "worker", APP_INCLUDE=JOBS, QUEUE="default", INTERVAL="0")
    assert done.returncode == 0, done.stderr
    assert resque.status(job).status == 4


# -- 4. queues as arguments ----------------------------------------------------------------------
def test_queue_arguments_serve_those_queues_in_order(redis_url, r):
    resque = Resque(redis_url)
    job = resque.enqueue("low", "NoopJob")
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(REDIS_URL=redis_url, APP_INCLUDE=JOBS, INTERVAL="0.1", PYTHONPATH=str(TESTS.parent))
    worker = subprocess.Popen([sys.executable, "-m", "pyresque", "worker", "high", "low"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        ids = wait_for(lambda: [m.decode() for m in r.smembers("resque:workers")], what="the worker to register")
        assert ids[0].endswith(f":{worker.pid}:high,low")
        wait_for(lambda: resque.status(job).status == 4, what="the job on the second queue")
    finally:
        worker.terminate()
        worker.communicate(timeout=15)


@pytest.mark.parametrize("given", [{"QUEUE": "default"}, {}])
def test_queue_option_and_arguments_together_are_a_usage_error(redis_url, given):
    args = ["worker", "high"] + ([] if given else ["--queue", "default"])
    line = one_line_error(run(redis_url, *args, **given))
    assert "queues given twice" in line and ("QUEUE=default" if given else "--queue=default") in line


# -- 5. include errors and the missing-include hints ---------------------------------------------
def test_an_include_with_a_syntax_error_is_one_line_naming_file_and_line(redis_url, tmp_path):
    bad = tmp_path / "broken_jobs.py"
    bad.write_text("import os\n\ndef perform(:\n    pass\n")
    line = one_line_error(run(redis_url, "worker", "default", APP_INCLUDE=str(bad)))
    assert f"{bad}:3" in line and "SyntaxError" in line


def test_an_include_that_raises_is_one_line_and_vverbose_shows_the_traceback(redis_url, tmp_path):
    bad = tmp_path / "raising_jobs.py"
    bad.write_text("import os\nSETTING = os.environ['NO_SUCH_SETTING_FOR_PYRESQUE']\n")
    line = one_line_error(run(redis_url, "worker", "default", APP_INCLUDE=str(bad)))
    assert f"{bad}:2" in line and "KeyError" in line and "NO_SUCH_SETTING_FOR_PYRESQUE" in line
    verbose = run(redis_url, "worker", "default", APP_INCLUDE=str(bad), VVERBOSE="1")
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1] == line


def test_a_worker_without_includes_warns_once_at_start(redis_url):
    done = run(redis_url, "worker", "--burst", "default")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "no job classes loaded" in line]
    assert len(warnings) == 1 and "APP_INCLUDE" in warnings[0] and "--include" in warnings[0]
    with_include = run(redis_url, "worker", "--burst", "default", APP_INCLUDE=JOBS)
    assert with_include.returncode == 0 and "no job classes loaded" not in with_include.stderr


def test_a_job_of_an_unknown_class_fails_naming_what_loads_classes(redis_url, r):
    resque = Resque(redis_url)
    resque.enqueue("default", "NoSuchJob")
    assert run(redis_url, "worker", "--burst", "default").returncode == 0
    error = json.loads(r.lindex("resque:failed", 0))["error"]
    assert error.startswith("Could not find job class NoSuchJob.")  # php-resque's message comes first
    for hint in ("APP_INCLUDE", "registered", "ALLOWED_MODULES"):
        assert hint in error


# -- 6. LOGGING ----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["worker", "default"], ["scheduler"], ["pool", "--config", "x.ini"]])
def test_an_unknown_log_format_is_refused(redis_url, command, tmp_path):
    (tmp_path / "x.ini").write_text("[pool]\ndefault = 1\n")
    env = {"LOGGING": "xml"}
    done = subprocess.run([sys.executable, "-m", "pyresque", *command], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path, env={**{k: v for k, v in os.environ.items() if k not in _DROPPED},
                                             "REDIS_URL": redis_url, **env})
    line = one_line_error(done)
    assert "LOGGING='xml'" in line and "console" in line and "json" in line and "LOGGING=1" in line


def test_php_logging_1_means_console(redis_url):
    done = run(redis_url, "worker", "--burst", "default", APP_INCLUDE=JOBS, LOGGING="1")
    assert done.returncode == 0, done.stderr
    assert "worker started" in done.stderr and not done.stderr.lstrip().startswith("{")


# -- 7. one exit-code rule for removals ----------------------------------------------------------
def test_a_removal_that_matches_nothing_exits_1_and_says_so(redis_url, r):
    resque = Resque(redis_url)
    resque.enqueue("default", "NoopJob")
    for args in (["dequeue", "default", "--id", "0123456789abcdef0123456789abcdef"],
                 ["dequeue", "default", "--class", "NoSuchJob"],
                 ["delayed", "remove", "--id", "0123456789abcdef0123456789abcdef"],
                 ["delayed", "remove", "--class", "NoSuchJob"],
                 ["failed", "remove", "--class", "NoSuchJob"]):
        line = one_line_error(run(redis_url, *args), code=1)
        assert "nothing matched" in line, args
    assert r.llen("resque:queue:default") == 1
    empty = run(redis_url, "dequeue", "nothing-here", "--all")  # emptying what is empty: done
    assert empty.returncode == 0 and empty.stdout.strip() == "Removed 0 jobs from nothing-here"


# -- 8. peek shortens a huge payload ---------------------------------------------------------------
def test_peek_shortens_each_job_unless_full_and_json_is_whole(redis_url, r):
    resque = Resque(redis_url)
    big = "x" * 100_000
    job_id = resque.enqueue("default", "BigJob", big)
    shown = run(redis_url, "peek", "default")
    assert shown.returncode == 0
    line = shown.stdout.strip()
    assert len(line) < 2300 and line.startswith('0: BigJob ["xxx') and line.endswith(f"id={job_id}")
    assert f"… ({len(json.dumps([big])) - 2000} more bytes; --full shows all)" in line
    full = run(redis_url, "peek", "default", "--full").stdout.strip()
    assert full == f"0: BigJob {json.dumps([big])} id={job_id}"
    whole = json.loads(run(redis_url, "peek", "default", "--json").stdout)
    assert whole["payload"]["args"] == [big]
    assert r.llen("resque:queue:default") == 1
