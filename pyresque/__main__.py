"""``python -m pyresque`` runs the ``pyresque`` command."""

from .cli import main

main()
