"""The package's shape: rooms by concern, imports flowing downward only, modules kept small.

README's "Architecture" section draws the same picture; this test is what keeps it true.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyresque

PACKAGE = Path(pyresque.__file__).parent

# Lowest first. A module may import from its own room and from any room before it, never from
# one after it. Top-level modules count as rooms of their own.
LAYERS: list[set[str]] = [
    {"defaults", "exceptions"},
    {"wire"},
    {"log"},  # above wire: the console renders Redis text through wire.terminal
    {"process"},
    {"store"},
    {"jobs"},
    {"queue"},
    {"scheduling"},
    {"worker"},
    {"pool"},
    {"admin"},
    {"web"},  # the HTTP API and /metrics: above everything it serves, below the CLI that starts it
    {"cli", "__main__"},
]
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}
ROOMS = {"wire", "process", "store", "jobs", "scheduling", "worker", "pool", "admin", "web", "cli"}
TOP_LEVEL = {"__init__.py", "__main__.py", "queue.py", "defaults.py", "exceptions.py", "log.py"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def _targets(path: Path, root: Path) -> list[tuple[int, str]]:
    """Every pyresque module that ``path`` imports (anywhere in it: lazy imports count too)."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == root.name]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == root.name:
                module = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub, root) else module))
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(root: Path) -> list[str]:
    """``file:line: room -> room`` for each import that goes up (or into the public API)."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = _room(_module_name(path, root))
        if own == "__init__":
            continue  # the public API re-exports from every room, lazily
        for line, target in _targets(path, root):
            room = _room(target)
            if room == own:
                continue
            if room == "__init__" or RANK.get(room, -1) > RANK.get(own, len(LAYERS)):
                problems.append(f"{path.relative_to(root.parent)}:{line}: {own} -> {room} ({target})")
    return problems


def test_imports_flow_downward_only():
    assert upward_imports(PACKAGE) == []


def test_every_room_and_top_level_module_has_a_layer():
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert rooms == ROOMS
    assert (rooms | modules) - set(RANK) == set()


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule itself can fail: a wire module importing the store, a lazy import of the CLI."""
    root = tmp_path / "pyresque"
    for room in ("wire", "store", "worker", "cli"):
        (root / room).mkdir(parents=True)
        (root / room / "__init__.py").write_text('"""room"""\n')
    (root / "__init__.py").write_text("from .wire import keys\n")
    (root / "defaults.py").write_text("X = 1\n")
    (root / "wire" / "keys.py").write_text("from .. import defaults\nfrom ..store.datastore import DataStore\n")
    (root / "store" / "datastore.py").write_text("from ..wire import keys\nimport pyresque.wire.keys\n")
    (root / "worker" / "loop.py").write_text("def f():\n    from ..cli import main\n    from .. import Resque\n")
    (root / "cli" / "main.py").write_text("from pyresque.worker import loop\n")
    assert upward_imports(root) == [
        "pyresque/wire/keys.py:2: wire -> store (pyresque.store.datastore)",
        "pyresque/worker/loop.py:2: worker -> cli (pyresque.cli.main)",
        "pyresque/worker/loop.py:3: worker -> __init__ (pyresque)",
    ]


def test_at_most_eight_modules_at_the_top():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert len(top) <= 8 and top <= TOP_LEVEL | {"py.typed"}, top


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= 600


def test_no_module_carries_another_rooms_prefix():
    """``cli_worker.py`` beside ``cli/`` is a folder trying to exist."""
    prefixes = ROOMS | {"datastore"}
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if any(p.stem.startswith(f"{prefix}_") for prefix in prefixes)]
    assert offenders == []


def test_the_public_api_is_importable_from_the_package():
    """Everything README shows users importing comes from ``pyresque`` itself."""
    for name in pyresque.__all__:
        assert getattr(pyresque, name) is not None, name
    readme = (PACKAGE.parent / "README.rst").read_text()
    deep = [line.strip() for line in readme.splitlines()
            if line.strip().startswith(("from pyresque.", "import pyresque."))]
    assert deep == []
