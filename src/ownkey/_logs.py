"""The node's log lines: one line per event, an ISO 8601 time, the request's id, text or JSON.

``ownkey serve --log-format text|json`` (or ``OWNKEY_LOG_FORMAT``) picks the format of every
line, uvicorn's access and error lines and ownkey's own alike:

- ``text``: ``2026-12-08T01:02:03.456Z INFO uvicorn.access [rid=4f2a...] 127.0.0.1:5123 - "GET
  /readyz HTTP/1.1" 200``; a traceback stays on the same line (its line breaks written ``\\n``);
- ``json``: one JSON object a line: ``time``, ``level``, ``logger``, ``message``, ``request_id``
  (when the event belongs to a request), ``exception`` (when there is one), and for an access
  line ``client``, ``method``, ``path``, ``status``.

The request id comes from :data:`REQUEST_ID`, set per request by the API
(``X-Request-Id``: the client's when well formed, else a fresh one; :func:`accept_request_id`)
and copied into every thread that serves the request. Redaction (:mod:`ownkey._redact`) runs on
every handler before these formatters, so no credential reaches a line in either format.

A leaf: the standard library only (the CLI configures logging before the API is imported).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import uuid
from typing import Any, Final

from ownkey._redact import redact, uvicorn_log_config

__all__ = [
    "LOG_FORMATS",
    "LOG_FORMAT_ENV",
    "REQUEST_ID",
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "TextFormatter",
    "accept_request_id",
    "log_config",
]

LOG_FORMATS: Final = ("text", "json")
LOG_FORMAT_ENV: Final = "OWNKEY_LOG_FORMAT"
REQUEST_ID_HEADER: Final = "X-Request-Id"
#: The id of the request being served in this context ("" outside a request).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("ownkey_request_id", default="")

_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def accept_request_id(given: str | None) -> str:
    """The client's ``X-Request-Id`` when well formed (1-128 of ``A-Z a-z 0-9 . _ : -``, and
    nothing the redaction would hide: a token is never echoed or logged), else a fresh one."""
    if given and _WELL_FORMED.fullmatch(given) and redact(given) == given:
        return given
    return uuid.uuid4().hex


def _iso(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _exception(record: logging.LogRecord) -> str:
    """The record's traceback (the redacting filter has already rewritten ``exc_text``)."""
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record.exc_text or ""


def _access(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access line as fields: its arguments are (client, method, path, version,
    status)."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, _version, status = args
    return {"client": str(client), "method": str(method), "path": str(path), "status": status}


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER [rid=ID] MESSAGE``, one line per event."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = REQUEST_ID.get()
        parts = [_iso(record.created), record.levelname, record.name]
        if request_id:
            parts.append(f"[rid={request_id}]")
        parts.append(record.getMessage())
        exception = _exception(record)
        if exception:
            parts.append(exception)
        if record.stack_info:
            parts.append(record.stack_info)
        line = " ".join(parts)
        return line.replace("\r", "\\r").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per event (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(_access(record))
        exception = _exception(record)
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration (:func:`ownkey._redact.uvicorn_log_config`: redaction on
    every handler) with every handler writing ``log_format`` lines."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    config = uvicorn_log_config()
    formatter = {"()": f"{__name__}.{'Json' if log_format == 'json' else 'Text'}Formatter"}
    config["formatters"] = {name: dict(formatter) for name in config["formatters"]}
    return config
