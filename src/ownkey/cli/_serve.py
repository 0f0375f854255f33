"""``ownkey serve``: the REST API on this node (uvicorn), over ``OWNKEY_HOME`` or
``OWNKEY_DATABASE_URL``.

Any number of nodes can serve one PostgreSQL database: each follows the others' changes through
``LISTEN/NOTIFY`` and re-checks keys, rules and org settings every ``--recheck-interval``
seconds (docs/api.md, "Several nodes").

``serve`` never migrates: it starts against a schema at this build's newest migration, or ahead
of it where the rolling-upgrade rule allows, and otherwise refuses with one line (behind: run
``ownkey db upgrade``; docs/operations.md, "Upgrades"). It logs one line at start (every worker
does) naming this build and the database's schema revision.

Every log line is one event with an ISO 8601 time and, inside a request, its ``X-Request-Id``:
``--log-format json`` (or ``OWNKEY_LOG_FORMAT=json``) writes one JSON object a line
(:mod:`ownkey._logs`), and no credential reaches either format (:mod:`ownkey._redact`).
"""

from __future__ import annotations

import atexit
import enum
import os
from typing import TYPE_CHECKING, Annotated

import typer

from ownkey.cli._common import PORT_MAX, PORT_MIN

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ownkey.service import Runtime

EXIT_BAD_INPUT = 2
_RECHECK_ENV = "OWNKEY_RECHECK_INTERVAL"

#: The most worker processes one ``ownkey serve`` starts. Each is a whole node (its own Runtime,
#: database pool and caches), so more than a few per core only costs memory: a typo such as
#: ``--workers 100000`` must be refused, not fork until the machine runs out of memory.
MAX_WORKERS = 32
#: The longest ``--recheck-interval``: it bounds how late a node sees a revocation whose change
#: notification was lost, so it stays within an hour (and finite).
MAX_RECHECK_SECONDS = 3600.0


class LogFormat(enum.StrEnum):
    """How each log line is written: text (ISO time, level, logger, request id) or JSON."""

    TEXT = "text"
    JSON = "json"


class LogLevel(enum.StrEnum):
    """uvicorn's log levels (an unknown one is refused with the list, not a traceback)."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"
    TRACE = "trace"


def worker_app() -> FastAPI:
    """The app of one worker process (a uvicorn factory): its own Runtime, closed at exit."""
    from ownkey.api import create_app
    from ownkey.service import Runtime

    runtime = Runtime.open(
        recheck_interval=float(os.environ.get(_RECHECK_ENV, "1.0")), migrate=False
    )
    atexit.register(runtime.close)
    _say_build(runtime)
    return create_app(runtime, node_sync=True)


def _say_build(runtime: Runtime, log_format: str | None = None, log_level: str = "info") -> None:
    """The build-info line (this build, its newest migration, the database's schema revision)
    through the node's log, in its format and with its redaction: in a worker, uvicorn has
    configured logging already; otherwise it is configured here as ``uvicorn.run`` will."""
    import logging

    from ownkey.cli._db import build_info

    logger = logging.getLogger("uvicorn.error")
    if log_format is not None:
        import logging.config

        from uvicorn.config import LOG_LEVELS

        from ownkey._logs import log_config

        logging.config.dictConfig(log_config(log_format))
        logger.setLevel(LOG_LEVELS[log_level])
    logger.info(build_info(runtime.database.schema()))


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on.", min=PORT_MIN, max=PORT_MAX)
    ] = 8000,
    recheck_interval: Annotated[
        float,
        typer.Option(
            "--recheck-interval",
            help="Seconds between re-reads of keys, rules and org settings (a bound when a "
            "change notification is lost).",
            min=0.05,
            max=MAX_RECHECK_SECONDS,
        ),
    ] = 1.0,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="uvicorn's log level.")
    ] = LogLevel.INFO,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            envvar="OWNKEY_LOG_FORMAT",
            help="One line per event: text, or json (one JSON object a line).",
        ),
    ] = LogFormat.TEXT,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes; each opens its own Runtime, like separate nodes.",
            min=1,
            max=MAX_WORKERS,
        ),
    ] = 1,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json)."""
    try:
        import uvicorn

        from ownkey.api import create_app
    except ImportError:
        typer.echo("ownkey: serve needs the 'api' extra: pip install 'ownkey[api]'", err=True)
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    import os

    from ownkey._logs import log_config
    from ownkey.cli._common import errors
    from ownkey.service import Runtime
    from ownkey.service._witness import interval_from

    if workers > 1:
        from ownkey.storage import Database

        with errors():  # a schema this build cannot run against: one line, before any fork
            Database.open(migrate=False).close()
        os.environ[_RECHECK_ENV] = str(recheck_interval)
        uvicorn.run(
            "ownkey.cli._serve:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level.value,
            log_config=log_config(log_format.value),
        )
        return

    with errors():  # an unreachable database is one line, never a traceback with its URL
        witness_interval = interval_from(os.environ)
        opened = Runtime.open(recheck_interval=recheck_interval, migrate=False)
    with opened as runtime:
        _say_build(runtime, log_format.value, log_level.value)
        app = create_app(runtime, node_sync=True, witness_interval=witness_interval)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level.value,
            log_config=log_config(log_format.value),  # no credential in any line (issue 23)
        )
