"""Command lines for the Python interpreters pyresque starts: the forking helper, pool workers.

``python -m`` puts the working directory first on ``sys.path``, ahead of the standard library
and site-packages: a stray ``json.py`` or ``traceback.py`` there would be imported in place of
the real one, in a process that runs with the worker's rights. These interpreters put it
last instead (``-P`` on Python 3.11+, the same by hand before, then an append): the release a
pool worker starts in (``PYRESQUE_WORKDIR``) still provides ``APP_INCLUDE`` modules and
``ALLOWED_MODULES`` packages, but nothing in it can stand in for the standard library or an
installed package. (A module that is nowhere else, such as an optional dependency that is not
installed, can still come from it: keep the working directory the application's own.)

They load this very pyresque from the directory it was loaded from, without putting that
directory on the path (it may be site-packages, or a checkout full of scripts).
"""

from __future__ import annotations

import os
import sys

#: Where this pyresque lives: what a started interpreter imports, whatever its ``sys.path`` says.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run by ``python -c`` with argv [-c, package dir, module, *args]; kept to what ``-m`` loads
# anyway (importlib.util, runpy), since every child of the forking helper copies its pages.
_BOOTSTRAP = """\
import os, sys
if not getattr(sys.flags, "safe_path", False):
    del sys.path[0]
try:
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
except OSError:
    pass
import importlib.util, runpy
root, module = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
spec = importlib.util.spec_from_file_location("pyresque", root + "/__init__.py", submodule_search_locations=[root])
package = importlib.util.module_from_spec(spec)
sys.modules["pyresque"] = package
spec.loader.exec_module(package)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""

#: ``-P``: no ``sys.path`` entry for the ``-c`` code (Python 3.11+; before, the bootstrap removes it).
_SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()


def python_command(module: str, *args: str) -> list[str]:
    """``python -m <module> <args>`` of this pyresque, the working directory last on ``sys.path``."""
    return [sys.executable, *_SAFE_PATH, "-c", _BOOTSTRAP, PACKAGE_DIR, module, *args]
