"""Resolve a payload's ``class`` to Python code, safely.

The name comes from Redis, which other programs write, so it is never imported blindly. It
resolves only to

1. a class (or function) registered with :func:`register`, under its own name or an alias
   (``PHP_Job``, ``Mailer::Send``, ``App\\Jobs\\Mail``), or
2. an attribute of a module the operator allowed: a module loaded with ``APP_INCLUDE`` /
   ``--include`` (its top-level classes resolve by bare name), or a dotted
   ``package.module.Class`` whose module the operator allowed (``--allow package``: it and
   its submodules; ``--allow package.module:``: that module only).

Anything else fails the job with :class:`JobClassNotFound` naming what was searched, and
nothing is imported. Nor is anything an allowed module raises on import (``sys.exit``
included) let out: it fails the job that named it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Any, Callable, Iterable, TypeVar, overload

from ..exceptions import ConfigurationError, JobClassNotFound

T = TypeVar("T")

_registry: dict[str, Any] = {}
_primary: dict[int, tuple[Any, str]] = {}  # id(obj) -> (obj, the name it was first registered under)


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
        _primary.setdefault(id(obj), (obj, str(names[0])))
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
    obj = _registry.pop(name, None)
    if obj is not None and not any(other is obj for other in _registry.values()):
        _primary.pop(id(obj), None)


def canonical_name(target: Any) -> str:
    """One name per job class whichever of its names (``Limited``, ``App\\Limited``) a payload
    used: what its ``@unique`` lock and ``@limit_concurrency`` slots are keyed by, on the
    producer's side and the worker's, so an alias cannot bypass them. The name it was first
    registered under; for a class never registered, ``module.qualname``."""
    entry = _primary.get(id(target))
    if entry is not None and entry[0] is target:
        return entry[1]
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{getattr(target, '__module__', None)}.{qualname}"


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
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(name, None)
            raise include_error(path_or_module, exc, path) from exc
        return module
    try:
        return importlib.import_module(path_or_module)
    except ImportError as exc:
        raise ConfigurationError(f"APP_INCLUDE ({path_or_module}) cannot be imported: {exc}") from exc
    except (Exception, SystemExit) as exc:
        raise include_error(path_or_module, exc) from exc


def include_error(spec: str, exc: BaseException, path: str | None = None) -> ConfigurationError:
    """One line for an include that broke on import: the file, the line and the error, as a
    missing include gets, instead of a traceback through importlib (VVERBOSE shows that; the
    exception is the ``__cause__``)."""
    where: tuple[str, int | None] | None = None
    if isinstance(exc, SyntaxError):
        where = (exc.filename or path or spec, exc.lineno)
        error = f"SyntaxError: {exc.msg}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        # the include's own frame if it raised there, else the deepest frame outside importlib
        ours = [f for f in frames if path is not None and os.path.abspath(f.filename) == path]
        theirs = [f for f in frames if "importlib" not in f.filename and f.filename != __file__]
        candidates = ours or theirs or list(frames)
        if candidates:
            where = (candidates[-1].filename, candidates[-1].lineno)
        message = str(exc).splitlines()[0] if str(exc) else ""
        error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    at = f" at {where[0]}:{where[1]}" if where is not None and where[1] is not None else (
        f" in {where[0]}" if where is not None else "")
    return ConfigurationError(f"APP_INCLUDE ({spec}) failed to load{at}: {error}")


class JobResolver:
    """Maps wire class names to Python objects within what the operator allowed.

    ``allowed`` entries (``ALLOWED_MODULES`` / ``--allow``): ``app`` allows the module ``app``
    and every module under it; ``app.jobs:`` (a trailing colon, as in ``module:object``) allows
    the module ``app.jobs`` only. No part of an entry or of a dotted class name may start with
    ``_``: ``__main__`` would run a package's script, private modules were never meant to be
    named from outside, and dunders reach the interpreter's machinery.
    """

    def __init__(self, includes: Iterable[ModuleType] = (), allowed: Iterable[str] = ()) -> None:
        self.includes = list(includes)
        entries = [_allowed_entry(spec) for spec in allowed if spec.strip()]
        self.allowed = tuple(name + (":" if exact else "") for name, exact in entries)
        self._exact = frozenset(name for name, exact in entries if exact)
        self._prefixes = tuple(name for name, exact in entries if not exact)
        self._cache: dict[str, Any] = {}

    def resolve(self, name: str) -> Any:
        """The object for ``name``, importing an allowed module if need be; else :class:`JobClassNotFound`."""
        found = self._cache.get(name)
        if found is not None:
            return found
        found = self._lookup(name, load=True)
        self._cache[name] = found
        return found

    def resolve_loaded(self, name: str) -> Any | None:
        """As :meth:`resolve`, but never imports: only registered and included classes and
        modules already in ``sys.modules``. For names read outside a job (a dead worker's
        record), where importing would let whoever writes Redis run module code at will."""
        found = self._cache.get(name)
        if found is not None:
            return found
        try:
            return self._lookup(name, load=False)
        except JobClassNotFound:
            return None

    def _lookup(self, name: str, load: bool) -> Any:
        if name in _registry:
            return _registry[name]
        if not name.startswith("_"):
            for module in self.includes:
                candidate = module.__dict__.get(name)
                if candidate is not None and _is_job(candidate):
                    return candidate
        module_name, _, attr = name.rpartition(".")
        if module_name and not _plain_dotted(name):
            raise JobClassNotFound(f"Could not find job class {name}: a dotted name is identifiers, none "
                                   f"starting with '_' (no __main__, dunder or private part). {self.searched()}")
        if module_name and self._allowed(module_name):
            candidate = self._attribute(name, module_name, attr, load)
            if candidate is not None and _is_job(candidate):
                return candidate
        raise JobClassNotFound(f"Could not find job class {name}. {self.searched()}")

    def _attribute(self, name: str, module_name: str, attr: str, load: bool) -> Any:
        if not load:
            module = sys.modules.get(module_name)
            return getattr(module, attr, None) if isinstance(module, ModuleType) else None
        try:
            return getattr(importlib.import_module(module_name), attr, None)
        except ImportError as exc:
            raise JobClassNotFound(f"Could not find job class {name}: cannot import {module_name} ({exc})") from None
        except BaseException as exc:  # the module's own code (a sys.exit at import) must not end the worker
            raise JobClassNotFound(f"Could not load job class {name}: {type(exc).__name__}: {exc}") from None

    def known(self) -> dict[str, Any]:
        """Every job this resolver can name without importing: registered and included classes."""
        found = {name: obj for module in self.includes for name, obj in vars(module).items()
                 if not name.startswith("_") and _is_job(obj)}
        found.update(_registry)
        return found

    def _allowed(self, module_name: str) -> bool:
        return module_name in self._exact or any(
            module_name == p or module_name.startswith(p + ".") for p in self._prefixes)

    def searched(self) -> str:
        parts = [f"registered: {', '.join(sorted(_registry)) or 'none'}"]
        if self.includes:
            parts.append(f"included modules: {', '.join(m.__name__ for m in self.includes)}")
        parts.append(f"allowed modules: {', '.join(self.allowed) or 'none'}")
        hint = ("" if self.includes or self.allowed else
                " No job code is loaded: start the worker with APP_INCLUDE=path/to/jobs.py (or --include).")
        return ("Searched " + "; ".join(parts) + "." + hint + " A job class must be defined in an APP_INCLUDE "
                "file or module, registered with @pyresque.register, or in a module allowed by ALLOWED_MODULES.")


def _plain_dotted(name: str) -> bool:
    return all(part.isidentifier() and not part.startswith("_") for part in name.split("."))


def _allowed_entry(spec: str) -> tuple[str, bool]:
    """``app`` -> (``app``, prefix); ``app.jobs:`` -> (``app.jobs``, exactly that module)."""
    text = spec.strip()
    exact = text.endswith(":")
    name = text[:-1] if exact else text.rstrip(".")
    if not _plain_dotted(name):
        raise ConfigurationError(
            f"ALLOWED_MODULES entry {spec!r} is not a module name: write 'app' (app and the modules under it) "
            "or 'app.jobs:' (that module only); no part may start with '_'")
    return name, exact


def _is_job(obj: Any) -> bool:
    return isinstance(obj, type) and callable(getattr(obj, "perform", None))
