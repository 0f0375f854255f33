"""Command-line interface (Typer + Rich), thin over the service layer.

Every command prints a human view by default and JSON with ``--json``; bad input exits with code
2 and one line on stderr, never a traceback.
"""

from typing import TYPE_CHECKING

from ownkey._lazy import lazy_names
from ownkey.cli._app import main

if TYPE_CHECKING:
    from ownkey.cli._app import app

__all__ = ["app", "main"]

# ``app`` (every command) is built on first use: ``ownkey key list`` builds and imports only what
# ``key`` needs.
__getattr__, __dir__ = lazy_names(__name__, globals(), {"app": "ownkey.cli._app"}, __all__)
