"""The web room: ``pyresque web``'s HTTP API, its docs page and the Prometheus ``/metrics``.

Only this room imports the ``pyresque[web]`` extra (the ASGI framework, uvicorn,
prometheus-client); everything it serves comes from the same library functions the CLI uses.
``create_app`` (app.py) is the entry point; importing this package alone loads none of the extra.
"""

from __future__ import annotations

from typing import Any

#: Top-level modules of the ``web`` extra: a ``ModuleNotFoundError`` naming one of them means the
#: extra is not installed (and the CLI says ``pip install 'pyresque[web]'``).
EXTRA_MODULES = frozenset({"fastapi", "starlette", "pydantic", "pydantic_core", "uvicorn", "anyio",
                           "prometheus_client", "h11"})

INSTALL_HINT = "pip install 'pyresque[web]'"


def missing_extra(exc: ImportError) -> bool:
    """Is ``exc`` the web extra being absent (rather than a bug in an import)?"""
    name = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and name.split(".")[0] in EXTRA_MODULES


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'pyresque.web' has no attribute {name!r}")
