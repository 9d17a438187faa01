"""The ``pyresque``, ``pyresque-worker`` and ``pyresque-scheduler`` commands (click): parse,
delegate to the library, print. One module per command group."""

from .main import main, scheduler_main, worker_main

__all__ = ["main", "scheduler_main", "worker_main"]
