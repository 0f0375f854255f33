"""HTTP answers to ownkey errors, shared by the sync and async clients.

Connection failures and 5xx are :class:`~ownkey.errors.KeyUnavailable` (try again later; the
client never falls back to sending anything in clear); 403 is
:class:`~ownkey.errors.AccessDenied` (render a tombstone); 400 is
:class:`~ownkey.errors.InvalidRequest`.
"""

from __future__ import annotations

import httpx

from ownkey.errors import AccessDenied, InvalidRequest, KeyUnavailable

__all__ = ["raise_for_answer", "unavailable"]


def unavailable(what: str) -> KeyUnavailable:
    return KeyUnavailable(f"{what} unreachable")


def _message(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("message", "")), str(error.get("reason") or "policy")
    except (ValueError, AttributeError):
        return "", "policy"


def raise_for_answer(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 300:
        return
    message, reason = _message(response)
    if status in (401, 403):
        raise AccessDenied(f"{what} refused: {message or status}", reason=reason)
    if status in (400, 422):
        raise InvalidRequest("request", f"{what} refused the request: {message or status}")
    raise KeyUnavailable(f"{what} answered HTTP {status}")
