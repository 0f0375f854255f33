"""Command-line interface (Typer + Rich), thin over the service layer.

Every command prints a human view by default and JSON with ``--json``; bad input exits with code
2 and one line on stderr, never a traceback.
"""

from typing import Any

from ownkey.cli._app import main, whole_app

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    """``app`` (every command) is built on first use (PEP 562): ``ownkey key list`` builds and
    imports only what ``key`` needs."""
    if name == "app":
        return whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
