"""Class names come from Redis: resolve only what the operator allowed, import nothing else."""

from __future__ import annotations

import json
import sys
import time

import pytest

import pyresque
from pyresque import Resque
from pyresque.exceptions import ConfigurationError, JobClassNotFound
from pyresque.jobs.resolver import JobResolver, canonical_name, load_include, unregister
from support import ROOT, WorkerProcess, wait_for


@pytest.fixture
def side_effect_module(tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "class Job:\n    @staticmethod\n    def perform(*a):\n        return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("evil_mod", None)


@pytest.mark.parametrize("name", ["os.system", "subprocess.Popen", "evil_mod.Job", "builtins.eval", "__import__",
                                  "importlib.import_module", "..evil_mod.Job", "evil_mod"])
def test_names_outside_the_allowed_set_are_refused_without_import(name, side_effect_module):
    before = set(sys.modules)
    with pytest.raises(JobClassNotFound) as info:
        JobResolver(allowed=["myapp"]).resolve(name)
    assert f"Could not find job class {name}" in str(info.value) and "allowed modules: myapp" in str(info.value)
    assert not side_effect_module.exists()
    assert set(sys.modules) - before == set()


def test_allowed_prefix_imports_only_under_it(side_effect_module):
    resolver = JobResolver(allowed=["evil_mod"])
    assert resolver.resolve("evil_mod.Job").perform() == 1
    assert side_effect_module.exists()


def test_registered_names_and_aliases():
    @pyresque.register("Mailer::Send", aliases=["App\\Jobs\\Mail"])
    class Mail:
        @staticmethod
        def perform():
            return "ok"

    try:
        resolver = JobResolver()
        assert resolver.resolve("Mailer::Send") is Mail and resolver.resolve("App\\Jobs\\Mail") is Mail
        with pytest.raises(JobClassNotFound):
            resolver.resolve("Mail")
    finally:
        unregister("Mailer::Send")
        unregister("App\\Jobs\\Mail")


def test_canonical_name_is_the_first_registered_name_whatever_alias_is_dropped():
    @pyresque.register("Canon", aliases=["App\\Canon"])
    class Canon:
        @staticmethod
        def perform():
            pass

    try:
        assert canonical_name(Canon) == "Canon"
        unregister("Canon")  # still registered under its alias: its locks keep their key
        assert canonical_name(Canon) == "Canon"
        unregister("App\\Canon")
        assert canonical_name(Canon) == f"{__name__}.{Canon.__qualname__}"
    finally:
        unregister("Canon")
        unregister("App\\Canon")


def test_include_exposes_its_job_classes_by_bare_name(tmp_path):
    path = tmp_path / "app_jobs.py"
    path.write_text("class Hello:\n    def perform(self):\n        return 'hi'\n\nclass NotAJob:\n    pass\n")
    resolver = JobResolver([load_include(str(path))])
    assert resolver.resolve("Hello")().perform() == "hi"
    with pytest.raises(JobClassNotFound):
        resolver.resolve("NotAJob")


def test_missing_include_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_include(str(tmp_path / "missing.py"))


_JOB = "class Job:\n    @staticmethod\n    def perform(*a):\n        return __name__\n"


@pytest.fixture
def app_package(tmp_path, monkeypatch):
    """``rsv_app``: a package whose modules leave a marker when imported; ``boom`` exits at import."""
    package = tmp_path / "rsv_app"
    (package / "jobs").mkdir(parents=True)
    markers = tmp_path / "imported"
    markers.mkdir()

    def module(relative: str, body: str = "") -> None:
        name = f"rsv_app/{relative}".removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        (package / relative).write_text(f"open({str(markers / name)!r}, 'w').close()\n{body}{_JOB}"
                                        "class _Hidden(Job):\n    pass\n")

    module("__init__.py")
    module("__main__.py", "import sys\nsys.exit(3)\n")
    module("_private.py")
    module("jobs/__init__.py")
    module("jobs/sub.py")
    module("other.py")
    module("boom.py", "import sys\nsys.exit(3)\n")
    module("interrupted.py", "raise KeyboardInterrupt('at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield markers
    for name in [m for m in sys.modules if m == "rsv_app" or m.startswith("rsv_app.")]:
        del sys.modules[name]


def _imported(markers) -> set[str]:
    return {path.name for path in markers.iterdir()}


@pytest.mark.parametrize("name", ["rsv_app.__main__.Job", "rsv_app._private.Job", "rsv_app.jobs._Hidden",
                                  "rsv_app.jobs.__class__", "rsv_app.__init__.Job", "rsv_app.jobs.Job.__base__"])
def test_main_private_and_dunder_parts_never_resolve_and_import_nothing(name, app_package):
    with pytest.raises(JobClassNotFound, match="none starting with '_'") as info:
        JobResolver(allowed=["rsv_app"]).resolve(name)
    assert str(info.value).startswith(f"Could not find job class {name}:")
    assert _imported(app_package) == set()


def test_private_top_level_classes_of_an_include_do_not_resolve_by_bare_name(tmp_path):
    path = tmp_path / "private_jobs.py"
    path.write_text("class _Hidden:\n    def perform(self):\n        return 1\n")
    resolver = JobResolver([load_include(str(path))])
    with pytest.raises(JobClassNotFound):
        resolver.resolve("_Hidden")
    assert "_Hidden" not in resolver.known()


def test_an_entry_with_a_trailing_colon_allows_that_module_only(app_package):
    exact = JobResolver(allowed=["rsv_app.jobs:"])
    assert exact.resolve("rsv_app.jobs.Job").perform() == "rsv_app.jobs"
    for name in ("rsv_app.jobs.sub.Job", "rsv_app.other.Job", "rsv_app.Job"):
        with pytest.raises(JobClassNotFound, match="allowed modules: rsv_app.jobs:"):
            exact.resolve(name)
    assert _imported(app_package) == {"rsv_app", "rsv_app.jobs"}  # the package, to reach its module
    prefix = JobResolver(allowed=["rsv_app.jobs"])  # as `--allow app` always did: submodules too
    assert prefix.resolve("rsv_app.jobs.sub.Job").perform() == "rsv_app.jobs.sub"
    with pytest.raises(JobClassNotFound):
        prefix.resolve("rsv_app.other.Job")
    assert "rsv_app.other" not in _imported(app_package)


@pytest.mark.parametrize("entry", ["_app", "app._private", "app.__main__", "app:Job", "app..jobs", "app.jobs::"])
def test_allow_entries_that_name_no_plain_module_are_refused(entry):
    with pytest.raises(ConfigurationError, match="ALLOWED_MODULES entry"):
        JobResolver(allowed=[entry])


@pytest.mark.parametrize("module, reason", [("boom", "SystemExit: 3"), ("interrupted", "KeyboardInterrupt: at import")])
def test_whatever_an_allowed_module_raises_at_import_is_a_job_class_not_found(module, reason, app_package):
    resolver = JobResolver(allowed=["rsv_app"])
    for _ in range(2):  # Python forgets a module that failed: the next job tries again, same answer
        with pytest.raises(JobClassNotFound) as info:
            resolver.resolve(f"rsv_app.{module}.Job")
        assert str(info.value) == f"Could not load job class rsv_app.{module}.Job: {reason}"


def test_resolve_loaded_never_imports(app_package):
    resolver = JobResolver(allowed=["rsv_app"])
    assert resolver.resolve_loaded("rsv_app.other.Job") is None
    assert _imported(app_package) == set()
    import rsv_app.other

    assert resolver.resolve_loaded("rsv_app.other.Job") is rsv_app.other.Job
    assert resolver.resolve_loaded("rsv_app.__main__.Job") is None and "rsv_app.__main__" not in _imported(app_package)


def test_a_worker_refuses_main_contains_an_exit_at_import_and_keeps_serving(redis_url, r, tmp_path, app_package):
    resque = Resque(redis_url)
    main_id = resque.enqueue("default", "rsv_app.__main__.Job")
    boom_id = resque.enqueue("default", "rsv_app.boom.Job")
    good_id = resque.enqueue("default", "rsv_app.jobs.Job")
    with WorkerProcess(redis_url, tmp_path, ALLOWED_MODULES="rsv_app",
                       PYTHONPATH=f"{tmp_path}:{ROOT}") as worker:
        worker.worker_id(r)
        wait_for(lambda: resque.status(good_id).status == 4, what=f"the good job done\n{worker.log()}")
        time.sleep(0.2)
        assert worker.process.poll() is None, worker.log()
    failures = {f["payload"]["id"]: f for f in map(json.loads, r.lrange("resque:failed", 0, -1))}
    assert set(failures) == {main_id, boom_id}
    assert failures[main_id]["exception"] == "pyresque.JobClassNotFound"
    assert failures[main_id]["error"].startswith("Could not find job class rsv_app.__main__.Job: ")
    assert failures[boom_id]["error"] == "Could not load job class rsv_app.boom.Job: SystemExit: 3"
    assert "rsv_app.__main__" not in _imported(app_package)


def test_an_include_directory_goes_last_on_sys_path(tmp_path, monkeypatch):
    """Its siblings import; a stray json.py beside it cannot stand in for the stdlib's
    (the real processes: tests/process/test_interpreter.py)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "json.py").write_text("raise RuntimeError('the stray json.py was imported')\n")
    (tmp_path / "last_sibling.py").write_text("VALUE = 7\n")
    (tmp_path / "last_include.py").write_text("import json\nimport last_sibling\nVALUE = last_sibling.VALUE\n")
    try:
        assert load_include(str(tmp_path / "last_include.py")).VALUE == 7
        assert sys.path[-1] == str(tmp_path)
    finally:
        for name in ("pyresque_include_last_include", "last_sibling"):
            sys.modules.pop(name, None)


def test_an_include_that_breaks_on_import_is_one_configuration_error_naming_file_and_line(tmp_path, monkeypatch):
    syntax = tmp_path / "syntax_jobs.py"
    syntax.write_text("class Job:\n    def perform(self)\n        pass\n")
    with pytest.raises(ConfigurationError) as info:
        load_include(str(syntax))
    assert str(info.value).startswith(f"APP_INCLUDE ({syntax}) failed to load at {syntax}:2: SyntaxError")
    assert isinstance(info.value.__cause__, SyntaxError)  # VVERBOSE prints its traceback
    assert "pyresque_include_syntax_jobs" not in sys.modules  # a fixed file loads on the next try
    helper = tmp_path / "helper_mod.py"
    helper.write_text("def settle():\n    raise ValueError('no database configured')\n")
    (tmp_path / "raising_jobs.py").write_text("import helper_mod\n\nhelper_mod.settle()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError) as info:
        load_include(str(tmp_path / "raising_jobs.py"))  # the include's own line, not the helper's
    assert "raising_jobs.py:3: ValueError: no database configured" in str(info.value)
    (tmp_path / "raising_mod.py").write_text("import helper_mod\nhelper_mod.settle()\n")
    with pytest.raises(ConfigurationError, match=r"\(raising_mod\) failed to load at .*helper_mod.py:2: ValueError"):
        load_include("raising_mod")  # a module name: the deepest frame outside importlib
    sys.modules.pop("helper_mod", None)


def test_a_class_not_found_says_how_classes_are_loaded():
    message = str(pytest.raises(JobClassNotFound, JobResolver().resolve, "Missing").value)
    assert message.startswith("Could not find job class Missing.")
    assert "No job code is loaded: start the worker with APP_INCLUDE=" in message
    for hint in ("APP_INCLUDE", "@pyresque.register", "ALLOWED_MODULES"):
        assert hint in message
    loaded = str(pytest.raises(JobClassNotFound, JobResolver(allowed=["app"]).resolve, "Missing").value)
    assert "No job code is loaded" not in loaded and "ALLOWED_MODULES" in loaded
