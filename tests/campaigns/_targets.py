"""The fuzz targets of campaign 1: every parser that meets outside input.

Each returns the outcome's name; every documented refusal is named, anything else escapes and
is counted as a crash by the runner. The API target checks that no answer is a 500 and that
every error is a problem document of a documented (status, type).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import typer

from ownkey.api._data import _object_request, _parse_range
from ownkey.api._problems import ApiProblem
from ownkey.cli._common import checked, duration, moment
from ownkey.envelope import EncryptionContext, ScopeKey, open_message, seal_message
from ownkey.errors import InvalidCiphertext, InvalidRequest, PolicyError
from ownkey.policy import (
    MAX_DURATION,
    MAX_TIME,
    check_id,
    check_service_id,
    explain,
    parse_request_json,
)
from ownkey.service._request import address_of
from tests.campaigns._fuzz import b64

KEY = ScopeKey(b"sk-fuzz", bytes(range(32)))
CONTEXT = EncryptionContext(
    org="acme", service_id="0008", scope="chat-1", asset_id="m1", component="message"
)
ENVELOPE = seal_message(KEY, b"hello fuzz", CONTEXT)

#: (status, type) pairs that docs/api.md documents; 2xx answers are fine as they are.
DOCUMENTED: frozenset[tuple[int, str]] = frozenset(
    {
        (400, "bad-request"),
        (401, "unauthorized"),
        (403, "access-denied"),
        (403, "forbidden"),
        (404, "not-found"),
        (405, "method-not-allowed"),
        (409, "lifecycle-conflict"),
        (409, "configuration"),
        (409, "conflict"),
        (413, "limit-exceeded"),
        (415, "unsupported-media-type"),
        (416, "range-not-satisfiable"),
        (422, "invalid-request"),
        (422, "invalid-ciphertext"),
        (422, "limit-exceeded"),
        (503, "key-unavailable"),
        (503, "audit-unavailable"),
        (503, "storage-unavailable"),
        (503, "database-unavailable"),
    }
)


def envelope(data: bytes) -> str:
    """A mutated envelope opens to nothing but InvalidCiphertext (one opaque error)."""
    try:
        plain = open_message(KEY, data, CONTEXT)
    except InvalidCiphertext:
        return "InvalidCiphertext"
    assert data == ENVELOPE, "a changed envelope opened"
    assert plain == b"hello fuzz"
    return "ok"


def policy_request(data: bytes) -> str:
    try:
        explain(parse_request_json(data))
    except PolicyError:
        return "PolicyError"
    return "ok"


def protector_request(data: bytes) -> str:
    """The Protector's own fields (scope, asset_id, the context of open) by the one id rule."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # the harness's own decoding: a library call takes dicts
        return "not-json"
    try:
        address_of(value)
    except InvalidRequest:  # the service layer's own fields: not a policy question
        return "InvalidRequest"
    return "ok"


def range_header(data: bytes) -> str:
    size = int.from_bytes(data[:2], "big")
    header = data[2:].decode("latin-1")
    try:
        found = _parse_range(header, size)
    except ApiProblem as problem:
        status = problem.status
        if status != 416:
            raise AssertionError(f"a Range header answered {status}") from None
        return "416"
    if found is None:
        return "whole"
    start, end = found
    assert 0 <= start < end <= size, (header, size, found)
    return "206"


def ownkey_request_header(data: bytes) -> str:
    """``Ownkey-Request`` (latin-1 as HTTP delivers it) then the address it names."""
    try:
        request = _object_request(data.decode("latin-1"), "obj-1")
        address_of(request)
    except InvalidRequest:
        return "InvalidRequest"
    return "ok"


def _exit_2(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except typer.Exit as exc:
        code = exc.exit_code
    if code != 2:
        raise AssertionError(f"a CLI value exited {code}, not 2")
    return "exit-2", None


def cli_values(data: bytes) -> str:
    """Every CLI option of a time, a duration, a service or an id: a value in range, or exit 2."""
    # how Python hands argv bytes that are not UTF-8 to a program: lone surrogates
    kind, text = data[:1], data[1:].decode("utf-8", "surrogateescape")
    if kind in (b"t", b"T"):
        outcome, value = _exit_2(lambda: moment("--since", text))
        assert value is None or 0 <= value <= MAX_TIME
    elif kind in (b"d", b"D"):
        outcome, value = _exit_2(lambda: duration("--waiting-period", text))
        assert value is None or 0 < value <= MAX_DURATION
    elif kind in (b"s", b"S"):
        outcome, _ = _exit_2(lambda: checked(check_service_id, "--service", text))
    else:
        outcome, _ = _exit_2(lambda: checked(check_id, "--scope", text))
    return outcome


CLI_SEEDS = (
    b"t2026-11-01", b"t1796149629", b"t1796149629000", b"tinf", b"d7d", b"d0d", b"d15m",
    b"s0008", b"s0024", b"ichat-1", b"iasset\x00", b"t2026-11-01T10:00:00Z",
)  # fmt: skip
RANGE_SEEDS = (
    b"\x10\x00bytes=0-99", b"\x00\x10bytes=-5", b"\x00\x10bytes=5-", b"\x00\x00bytes=0-0",
    b"\x00\x10bytes=9-3", b"\x00\x10bytes=0-1,2-3",
)  # fmt: skip


def valid_policy_request() -> dict[str, Any]:
    return {
        "orgs": {
            "acme": {"cmk": True, "services": ["0008"], "licensed_users": ["ann@acme.test"]},
            "globex": {"cmk": False},
        },
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "owner": "ann@acme.test",
            "owner_kind": "user",
            "component": "message",
            "container": {
                "kind": "chat",
                "members": [{"user": "bo@globex.test", "org": "globex"}],
            },
        },
    }


def policy_seeds() -> list[bytes]:
    request = valid_policy_request()
    protector = {**request, "scope": "chat-1", "asset_id": "m1"}
    return [json.dumps(request).encode(), json.dumps(protector).encode()]


def header_seeds() -> list[bytes]:
    asset = valid_policy_request()["asset"]
    return [json.dumps({"asset": asset, "scope": "chat-1"}).encode(), b"{}", b"[]"]


def api_seeds() -> list[bytes]:
    """Bodies for the API target: route index byte, then the JSON body."""
    asset = valid_policy_request()["asset"]
    request = {"asset": asset, "scope": "chat-1", "asset_id": "m1"}
    bodies = [
        {"request": request, "data": b64(b"hi")},
        {"request": request, "sealed": b64(ENVELOPE)},
        valid_policy_request(),
        {"service_id": "0008", "scope": "chat-1", "since": 1_700_000_000},
        {"scope": "c", "until": 1e20},
        {"waiting_period_days": 7},
        {"users": ["x@acme.test"], "licensed": True},
        {"kind": "rekey", "services": ["0008"]},
    ]
    return [bytes([index]) + json.dumps(body).encode() for index, body in enumerate(bodies)]


API_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/v1/seal", "platform"),
    ("POST", "/v1/open", "platform"),
    ("POST", "/v1/policy/explain", "platform"),
    ("POST", "/v1/orgs/acme/revocations", "acme"),
    ("POST", "/v1/orgs/acme/revocations/preview", "acme"),
    ("POST", "/v1/orgs/acme/key/destruction", "acme"),
    ("POST", "/v1/orgs/acme/users", "acme"),
    ("POST", "/v1/orgs/acme/jobs/preview", "acme"),
    ("PATCH", "/v1/orgs/acme/settings", "acme"),
    ("PUT", "/v1/objects/obj-1", "platform"),
    ("GET", "/v1/objects/obj-1", "platform"),
    ("GET", "/v1/orgs/acme/audit/events", "acme"),
)


def _header_bytes(data: bytes, limit: int) -> bytes:
    """What an HTTP client can put in a header: any byte but CR, LF and NUL."""
    return data[:limit].translate(None, b"\r\n\x00")


def api_target(client: Any, tokens: dict[str, dict[str, str]]) -> Callable[[bytes], str]:
    """Route by the first byte; the rest is the body (or the header / query for PUT and GET)."""

    def target(data: bytes) -> str:
        if not data:
            return "empty"
        method, path, who = API_ROUTES[data[0] % len(API_ROUTES)]
        rest = data[1:]
        headers = dict(tokens[who])
        if method == "PUT":
            raw = {**headers, "Ownkey-Request": _header_bytes(rest, 4000)}
            answer = client.put(path, content=b"payload", headers=raw)
        elif method == "GET" and path.startswith("/v1/objects/"):
            answer = client.get(path, headers={**headers, "Range": _header_bytes(rest, 200)})
        elif method == "GET":
            query = urllib.parse.quote(rest[:500], safe="=&")
            answer = client.get(f"{path}?{query}", headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            answer = client.request(method, path, content=rest, headers=headers)
        status = answer.status_code
        assert status != 500, answer.text
        if status >= 400:
            kind = str(answer.json().get("type", "")).removeprefix("urn:ownkey:problem:")
            assert (status, kind) in DOCUMENTED, (status, kind, answer.text[:200])
            return f"{status} {kind}"
        return str(status)

    return target
