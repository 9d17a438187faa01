"""A pidfile for process managers (``PIDFILE``): written at start, removed at exit.

Written whole and never through a symlink: the pid goes to a new file in the pidfile's
directory (``O_CREAT|O_EXCL|O_NOFOLLOW``: a name someone planted is refused, not followed),
which then replaces the pidfile by ``rename``. A reader never sees an empty or half-written
file, and a symlink planted at the path (``/run/app/worker.pid -> /etc/passwd``) is replaced
itself: its target, which a worker running as root could write, stays untouched. A symlinked
*directory* (Capistrano's ``shared/pids``) still works: only the last component is not followed.
"""

from __future__ import annotations

import os

from ..exceptions import ConfigurationError

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_pidfile(path: str | None) -> None:
    """Write this process's pid to ``path`` (nothing when unset); a path we cannot write is a
    configuration error, reported before the process does any work."""
    if not path:
        return
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(temporary, _NEW_FILE, 0o644)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise ConfigurationError(f"could not write PIDFILE {path}: {exc.strerror}") from None


def remove_pidfile(path: str | None) -> None:
    """Remove it at exit; one already gone (an operator's cleanup) is fine."""
    if not path:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
