"""Class names come from Redis: resolve only what the operator allowed, import nothing else."""

from __future__ import annotations

import sys

import pytest

import pyresque
from pyresque.exceptions import ConfigurationError, JobClassNotFound
from pyresque.jobs.resolver import JobResolver, load_include, unregister


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
        JobResolver(allowed_prefixes=["myapp"]).resolve(name)
    assert f"Could not find job class {name}" in str(info.value) and "allowed module prefixes: myapp" in str(info.value)
    assert not side_effect_module.exists()
    assert set(sys.modules) - before == set()


def test_allowed_prefix_imports_only_under_it(side_effect_module):
    resolver = JobResolver(allowed_prefixes=["evil_mod"])
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
