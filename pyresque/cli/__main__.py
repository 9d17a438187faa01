"""``python -m pyresque.cli`` runs the ``pyresque`` command, as ``python -m pyresque`` does."""

from .main import main

main()
