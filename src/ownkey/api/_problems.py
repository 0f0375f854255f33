"""Errors as ``application/problem+json`` (RFC 9457): one table from ownkey's error tree.

Every error answer carries ``type``, ``title``, ``status`` and ``detail``; ``detail`` is the
error's own message, which by the rule of :mod:`ownkey.errors` never holds key material,
plaintext or a secret. Unexpected exceptions answer 500 with a fixed detail: their text is not
shown. Extensions: ``reason`` and ``tombstone`` on a denial, ``field`` on bad input.

========================  ======  ==========================  ===============================
error                     status  type (``urn:ownkey:problem:``)  meaning for the client
========================  ======  ==========================  ===============================
AccessDenied              403     access-denied               render a tombstone; do not retry
KeyUnavailable            503     key-unavailable             retry after ``Retry-After``
AuditUnavailable          503     audit-unavailable           retry after ``Retry-After``
InvalidRequest            422     invalid-request             fix ``field``
InvalidCiphertext         422     invalid-ciphertext          the sealed bytes do not open
LimitExceeded             422     limit-exceeded              a documented limit was hit
LifecycleError            409     lifecycle-conflict          illegal key-state transition
Conflict                  409     conflict                    the request meets existing state
ConfigError               409     configuration               ownkey is not set up for this
NotFound                  404     not-found                   (also: not yours to see)
OSError (asset store)     503     storage-unavailable         retry after ``Retry-After``
OperationalError (db)     503     database-unavailable        retry after ``Retry-After``
========================  ======  ==========================  ===============================
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ownkey.errors import (
    AccessDenied,
    AuditDamaged,
    AuditUnavailable,
    ConfigError,
    Conflict,
    InvalidCiphertext,
    InvalidRequest,
    KeyUnavailable,
    LifecycleError,
    LimitExceeded,
    NotFound,
    OwnkeyError,
)

__all__ = [
    "PROBLEM_JSON",
    "PROBLEM_PREFIX",
    "RETRY_AFTER_SECONDS",
    "ApiProblem",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
    "problem_schema",
]

_LOG = logging.getLogger("ownkey.api")

PROBLEM_JSON: Final = "application/problem+json"
PROBLEM_PREFIX: Final = "urn:ownkey:problem:"
#: What a client is told to wait before retrying an unavailable key manager or audit sink.
RETRY_AFTER_SECONDS: Final = 2

_BY_ERROR: tuple[tuple[type[OwnkeyError], int, str], ...] = (
    (AccessDenied, 403, "access-denied"),
    (AuditDamaged, 500, "audit-log-damaged"),
    (AuditUnavailable, 503, "audit-unavailable"),
    (KeyUnavailable, 503, "key-unavailable"),
    (InvalidRequest, 422, "invalid-request"),
    (InvalidCiphertext, 422, "invalid-ciphertext"),
    (LimitExceeded, 422, "limit-exceeded"),
    (LifecycleError, 409, "lifecycle-conflict"),
    (Conflict, 409, "conflict"),
    (ConfigError, 409, "configuration"),
    (NotFound, 404, "not-found"),
)
_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    411: "length-required",
    413: "content-too-large",
    415: "unsupported-media-type",
    416: "range-not-satisfiable",
    422: "invalid-request",
}


class ApiProblem(Exception):  # noqa: N818 - it is a problem document, not an error class
    """An answer the API layer itself decides (401, 403, 416, ...), as a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _BY_STATUS.get(status, "error")
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_response(
    status: int,
    slug: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem document answer."""
    body: dict[str, Any] = {
        "type": PROBLEM_PREFIX + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _status_of(exc: OwnkeyError) -> tuple[int, str]:
    return next(
        ((status, slug) for cls, status, slug in _BY_ERROR if isinstance(exc, cls)),
        (500, "internal-error"),
    )


def _extensions_of(exc: OwnkeyError) -> dict[str, Any]:
    extensions: dict[str, Any] = {}
    if isinstance(exc, AccessDenied):
        extensions.update(reason=exc.reason, tombstone=True)
    if isinstance(exc, InvalidRequest):
        extensions["field"] = exc.field
    return extensions


def problem_body(exc: OwnkeyError) -> dict[str, Any]:
    """The problem document of ``exc`` as a route would answer it, for one item of a batch
    (``api/_batch.py``): the same ``type``, ``status``, ``detail`` and extensions."""
    status, slug = _status_of(exc)
    return {
        "type": PROBLEM_PREFIX + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": _one_line(str(exc)),
        **_extensions_of(exc),
    }


def _ownkey_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OwnkeyError)
    status, slug = _status_of(exc)
    extensions = _extensions_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, AccessDenied):
        on_denied = getattr(request.app.state, "on_denied", None)
        if on_denied is not None:
            on_denied(exc.reason)
    if isinstance(exc, KeyUnavailable):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return problem_response(status, slug, _one_line(str(exc)), headers=headers, **extensions)


def _api_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    return problem_response(exc.status, exc.slug, exc.detail, headers=exc.headers, **exc.extensions)


def _field_of(location: Sequence[Any]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(parts) or "request"


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":  # docs/api.md: a body that is not JSON is a 400
        return problem_response(400, "bad-request", "the body is not UTF-8 JSON")
    field = _field_of(first.get("loc", ()))
    message = _one_line(str(first.get("msg", "invalid")))
    return problem_response(422, "invalid-request", f"{field}: {message}", field=field)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    return problem_response(
        status, _BY_STATUS.get(status, "error"), detail, headers=exc.headers or None
    )


def _storage_error(_request: Request, exc: Exception) -> JSONResponse:
    """The asset store failed (a full disk, an S3 outage): retry later, as for a key manager.

    Named by its errno only: the message would carry the blob's path."""
    code = getattr(exc, "errno", None)
    name = errno.errorcode.get(code, type(exc).__name__) if isinstance(code, int) else "error"
    return problem_response(
        503,
        "storage-unavailable",
        f"the asset store failed ({name}); retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    """A dropped or refused database connection: 503, named by its type only (its message may
    carry the URL)."""
    return problem_response(
        503,
        "database-unavailable",
        f"the database failed ({type(exc).__name__}); retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _client_gone(request: Request, _exc: Exception) -> JSONResponse:
    """The client went away before its body was read whole (an upload cut short): nothing was
    stored, and it is the client's doing, not a 500 with a traceback in the node's log. The
    answer is never seen; 400 keeps the node's error counts honest."""
    _LOG.info(
        "%s %s: the client went away before its body ended; nothing stored",
        request.method,
        request.url.path,
    )
    return problem_response(400, "bad-request", "the request body ended early")


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, PendingRollbackError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):  # a connection lost mid-transaction, met as another class of the database driver
        return _database_error(request, exc)
    # The type and where it was raised, never the message (it may hold a value of the request).
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = "?" if frame is None else f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}"
    _LOG.error("unexpected %s at %s: answered 500", type(exc).__name__, where)
    return problem_response(500, "internal-error", "an internal error occurred")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""
    app.add_exception_handler(OwnkeyError, _ownkey_error)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(InterfaceError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


def problem_schema() -> dict[str, Any]:
    """The JSON Schema of a problem document, for the OpenAPI components."""
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "urn:ownkey:problem:<slug>"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "reason": {
                "type": "string",
                "description": "On access-denied: why (revoked, disabled, destroyed, ...).",
            },
            "tombstone": {
                "type": "boolean",
                "description": "On access-denied: render the content as a tombstone.",
            },
            "field": {"type": "string", "description": "On invalid-request: the bad field."},
        },
    }
