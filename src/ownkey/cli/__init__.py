"""Command-line interface (Typer + Rich), thin over the service layer.

Every command prints a human view by default and JSON with ``--json``; bad input exits with code
2 and one line on stderr, never a traceback.
"""

from ownkey.cli._app import app, main

__all__ = ["app", "main"]
