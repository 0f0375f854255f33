"""``ownkey hybrid serve``: run the key service of one home with uvicorn."""

from __future__ import annotations

from pathlib import Path

from ownkey._redact import uvicorn_log_config
from ownkey.hybrid._app import build_app, build_service, build_xks
from ownkey.hybrid._config import load_config

__all__ = ["serve"]


def serve(home: Path, *, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve until interrupted. Plain HTTP on loopback by default: put TLS in front of it."""
    import uvicorn

    config = load_config(home)
    service = build_service(config)
    app = build_app(service, build_xks(config, service))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        log_config=uvicorn_log_config(),  # a traceback's token or JWT is redacted too
    )
