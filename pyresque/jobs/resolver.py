"""Resolve a payload's ``class`` to Python code, safely.

The name comes from Redis, which other programs write, so it is never imported blindly. It
resolves only to

1. a class (or function) registered with :func:`register`, under its own name or an alias
   (``PHP_Job``, ``Mailer::Send``, ``App\\Jobs\\Mail``), or
2. an attribute of a module the operator allowed: a module loaded with ``APP_INCLUDE`` /
   ``--include`` (its top-level classes resolve by bare name), or a dotted
   ``package.module.Class`` whose module lies under an allowed prefix (``--allow package``).

Anything else fails the job with :class:`JobClassNotFound` naming what was searched, and
nothing is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Callable, Iterable, TypeVar, overload

from ..exceptions import ConfigurationError, JobClassNotFound

T = TypeVar("T")

_registry: dict[str, Any] = {}


@overload
def register(target: T) -> T: ...
@overload
def register(target: str | None = None, *, aliases: Iterable[str] = ()) -> Callable[[T], T]: ...


def register(target: Any = None, *, aliases: Iterable[str] = ()) -> Any:
    """Make a job class (or function) runnable by name.

    ``@register`` uses the class's ``__name__``; ``@register("PHP_Job")`` a wire name of your
    choice; ``aliases`` adds more (php namespaces, Ruby ``A::B`` names).
    """

    def apply(obj: T, name: str | None) -> T:
        names = [name or getattr(obj, "__name__", None), *aliases]
        if not names[0]:
            raise TypeError(f"cannot register {obj!r} without a name")
        if not callable(getattr(obj, "perform", None)) and not callable(obj):
            raise TypeError(f"{obj!r} has no perform()")
        for wire_name in names:
            _registry[str(wire_name)] = obj
        return obj

    if target is None or isinstance(target, str):
        return lambda obj: apply(obj, target)
    return apply(target, None)


def registered() -> dict[str, Any]:
    return dict(_registry)


def lookup(name: str) -> Any:
    """The registered class for a wire name, or ``None``; never imports anything."""
    return _registry.get(name)


def unregister(name: str) -> None:
    _registry.pop(name, None)


def is_file_include(spec: str) -> bool:
    """Does this ``APP_INCLUDE`` entry name a file (else an importable module)?"""
    return spec.endswith(".py") or os.sep in spec


def load_include(path_or_module: str) -> ModuleType:
    """Load ``APP_INCLUDE``: a ``.py`` file path or an importable module name."""
    if is_file_include(path_or_module):
        path = os.path.abspath(path_or_module)
        if not os.path.isfile(path):
            raise ConfigurationError(f"APP_INCLUDE ({path_or_module}) does not exist")
        name = "pyresque_include_" + os.path.splitext(os.path.basename(path))[0]
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"APP_INCLUDE ({path_or_module}) cannot be loaded as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        directory = os.path.dirname(path)
        if directory not in sys.path:
            # Last, so the include can import its siblings but a stray json.py beside it
            # cannot stand in for the standard library's, or for an installed package.
            sys.path.append(directory)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(path_or_module)
    except ImportError as exc:
        raise ConfigurationError(f"APP_INCLUDE ({path_or_module}) cannot be imported: {exc}") from None


class JobResolver:
    """Maps wire class names to Python objects within what the operator allowed."""

    def __init__(self, includes: Iterable[ModuleType] = (), allowed_prefixes: Iterable[str] = ()) -> None:
        self.includes = list(includes)
        self.allowed_prefixes = tuple(p.strip().rstrip(".") for p in allowed_prefixes if p.strip())
        self._cache: dict[str, Any] = {}

    def resolve(self, name: str) -> Any:
        found = self._cache.get(name)
        if found is not None:
            return found
        found = self._lookup(name)
        self._cache[name] = found
        return found

    def _lookup(self, name: str) -> Any:
        if name in _registry:
            return _registry[name]
        for module in self.includes:
            candidate = module.__dict__.get(name)
            if candidate is not None and _is_job(candidate):
                return candidate
        module_name, _, attr = name.rpartition(".")
        if module_name and attr and self._allowed(module_name):
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise JobClassNotFound(f"Could not find job class {name}: cannot import {module_name} ({exc})") from None
            candidate = getattr(module, attr, None)
            if candidate is not None and _is_job(candidate):
                return candidate
        raise JobClassNotFound(f"Could not find job class {name}. {self.searched()}")

    def known(self) -> dict[str, Any]:
        """Every job this resolver can name without importing: registered and included classes."""
        found = {name: obj for module in self.includes for name, obj in vars(module).items() if _is_job(obj)}
        found.update(_registry)
        return found

    def _allowed(self, module_name: str) -> bool:
        if not module_name.isidentifier() and not all(part.isidentifier() for part in module_name.split(".")):
            return False
        return any(module_name == p or module_name.startswith(p + ".") for p in self.allowed_prefixes)

    def searched(self) -> str:
        parts = [f"registered: {', '.join(sorted(_registry)) or 'none'}"]
        if self.includes:
            parts.append(f"included modules: {', '.join(m.__name__ for m in self.includes)}")
        parts.append(f"allowed module prefixes: {', '.join(self.allowed_prefixes) or 'none'}")
        return "Searched " + "; ".join(parts) + "."


def _is_job(obj: Any) -> bool:
    return isinstance(obj, type) and callable(getattr(obj, "perform", None))
