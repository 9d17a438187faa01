"""A pidfile for process managers (``PIDFILE``): written at start, removed at exit."""

from __future__ import annotations

import os

from ..exceptions import ConfigurationError


def write_pidfile(path: str | None) -> None:
    """Write this process's pid to ``path`` (nothing when unset); a path we cannot write is a
    configuration error, reported before the process does any work."""
    if not path:
        return
    try:
        with open(path, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    except OSError as exc:
        raise ConfigurationError(f"could not write PIDFILE {path}: {exc.strerror}") from None


def remove_pidfile(path: str | None) -> None:
    """Remove it at exit; one already gone (an operator's cleanup) is fine."""
    if not path:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
