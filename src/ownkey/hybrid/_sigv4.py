"""AWS Signature Version 4 verification of the requests AWS KMS sends an XKS proxy (pure).

A request in, a :class:`Verdict` out: no I/O, the clock is an argument, the secrets a mapping
from access key id to secret access key (several at once, so a secret rotates without
downtime: the signer names its access key id). What is checked, per the XKS proxy API spec's
Appendix A and AWS's SigV4 rules:

* ``Authorization: AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request,
  SignedHeaders=..., Signature=...``, one of it;
* the access key id is configured; the region and the service (``kms-xks-proxy``) are ours;
* ``host`` and ``x-amz-date`` are signed, the credential date is ``x-amz-date``'s day, and
  ``x-amz-date`` is within ``max_skew_seconds`` (300) of ``now``, past or future (replay);
* the signature recomputed over the canonical request (method, URI, query, the signed headers,
  SHA-256 of the body) equals the one sent, compared in constant time.

A verdict's ``why`` names the check that failed, never a secret or a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, unquote

__all__ = ["ALGORITHM", "XKS_SERVICE", "SignedRequest", "Verdict", "verify"]

ALGORITHM: Final = "AWS4-HMAC-SHA256"
#: The service name KMS signs XKS proxy requests for (spec, Appendix A).
XKS_SERVICE: Final = "kms-xks-proxy"
MAX_SKEW_SECONDS: Final = 300.0
_AUTH: Final = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-f]{64})\s*\Z"
)
_AMZ_DATE: Final = re.compile(r"\d{8}T\d{6}Z\Z")
_SPACES: Final = re.compile(r"\s+")


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers: ``path`` as sent (percent-encoded), ``query`` without ``?``,
    ``headers`` as (name, value) pairs in any case, ``body`` the exact bytes."""

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Verdict:
    ok: bool
    #: The access key id the request names (empty when it names none); safe to log.
    access_key_id: str = ""
    why: str = ""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else ():
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _canonical_request(request: SignedRequest, signed: list[str]) -> str | None:
    values: dict[str, list[str]] = {}
    for name, value in request.headers:
        values.setdefault(name.lower(), []).append(_SPACES.sub(" ", value.strip()))
    if any(name not in values for name in signed):
        return None
    headers = "".join(f"{name}:{','.join(values[name])}\n" for name in signed)
    return "\n".join(
        (
            request.method.upper(),
            quote(unquote(request.path) or "/", safe="/~"),
            _canonical_query(request.query),
            headers,
            ";".join(signed),
            hashlib.sha256(request.body).hexdigest(),
        )
    )


def verify(
    request: SignedRequest,
    *,
    secrets: Mapping[str, str],
    region: str,
    now: float,
    service: str = XKS_SERVICE,
    max_skew_seconds: float = MAX_SKEW_SECONDS,
) -> Verdict:
    """The verdict on ``request``'s SigV4 signature at time ``now`` (seconds since the epoch)."""
    found = [v for n, v in request.headers if n.lower() == "authorization"]
    if len(found) != 1:
        return Verdict(False, why="no single Authorization header")
    match = _AUTH.match(found[0].strip())
    if match is None:
        return Verdict(False, why="Authorization is not AWS4-HMAC-SHA256")
    scope = match["cred"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return Verdict(False, why="malformed credential scope")
    access_key_id, day, signed_region, signed_service, _ = scope
    if len(access_key_id) > 128:  # the caller's claim is logged: keep it bounded
        return Verdict(False, why="access key id over 128 characters")
    if access_key_id not in secrets:
        return Verdict(False, access_key_id, "unknown access key id")
    if signed_region != region or signed_service != service:
        return Verdict(False, access_key_id, "credential scope names another region or service")
    signed = match["signed"].split(";")
    if signed != sorted(set(signed)) or "host" not in signed or "x-amz-date" not in signed:
        return Verdict(False, access_key_id, "host and x-amz-date must be signed (sorted)")
    amz_date = next((v.strip() for n, v in request.headers if n.lower() == "x-amz-date"), "")
    if not _AMZ_DATE.match(amz_date) or amz_date[:8] != day:
        return Verdict(False, access_key_id, "x-amz-date missing or not the credential's day")
    at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    if abs(now - at) > max_skew_seconds:
        return Verdict(False, access_key_id, "x-amz-date too far from now (replay?)")
    canonical = _canonical_request(request, signed)
    if canonical is None:
        return Verdict(False, access_key_id, "a signed header is missing")
    to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            f"{day}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        )
    )
    key = _hmac(("AWS4" + secrets[access_key_id]).encode("utf-8"), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["sig"]):
        return Verdict(False, access_key_id, "signature does not match")
    return Verdict(True, access_key_id)
