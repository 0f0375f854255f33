"""Verify the two JWTs of every key-service call against configured issuers' JWKS.

The KACLS model: an *authentication* token from the customer's identity provider says who the
user is; an *authorization* token from the platform says what this user may do to which
resource. Each is checked against exactly one configured issuer: its signature under a key
published in that issuer's JWKS (found through OIDC discovery), ``iss``, ``aud``, ``exp`` and
``nbf`` with a small skew, and ``aud`` naming this audience *only*: a token also meant for
another party (``aud: [platform, key service]``) is refused, because that party holds it and
could replay it here (the platform must never hold a token the key service accepts as the
user's authentication). The algorithm comes from the allow-list *and* must be the one the JWK
declares, so ``alg: none`` and HS256 signed with a public key are refused before any signature
check. An unknown ``kid`` triggers one JWKS refresh (rate-limited), which is how a rotated issuer
key is picked up. Every refusal is :class:`~ownkey.errors.AccessDenied` with a one-line reason
that never repeats the token; an issuer that cannot be reached is
:class:`~ownkey.errors.KeyUnavailable` (fail closed, never "accept unverified").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import jwt

from ownkey.errors import AccessDenied, InvalidRequest, KeyUnavailable
from ownkey.policy import canonical_email

__all__ = ["ALLOWED_ALGORITHMS", "Issuer", "JwksCache", "TokenVerifier"]

#: Asymmetric algorithms only: a verifier that holds a public key never accepts an HMAC.
ALLOWED_ALGORITHMS: Final = frozenset({"EdDSA", "ES256", "ES384", "RS256", "PS256"})
DEFAULT_SKEW_SECONDS: Final = 30.0


@dataclass(frozen=True, slots=True)
class Issuer:
    """One trusted issuer: its ``iss`` value (also the discovery base) and the ``aud`` expected."""

    issuer: str
    audience: str


class JwksCache:
    """The published keys of one issuer, fetched on first use and refreshed on an unknown kid."""

    def __init__(
        self,
        issuer: str,
        *,
        http: httpx.Client,
        min_refresh_seconds: float = 5.0,
        max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._jwks_uri: str | None = None

    def _get(self, url: str) -> Mapping[str, Any]:
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise KeyUnavailable("identity issuer unreachable") from exc
        if response.status_code != 200:
            raise KeyUnavailable(f"identity issuer answered HTTP {response.status_code}")
        body = response.json()
        if not isinstance(body, dict):
            raise KeyUnavailable("identity issuer answered a malformed document")
        return body

    def _refresh(self) -> None:
        if self._jwks_uri is None:
            discovery = self._get(self._issuer + "/.well-known/openid-configuration")
            if discovery.get("issuer", "").rstrip("/") != self._issuer:
                raise KeyUnavailable("identity issuer discovery names another issuer")
            self._jwks_uri = str(discovery.get("jwks_uri", ""))
        keys: dict[str, jwt.PyJWK] = {}
        for raw in self._get(self._jwks_uri).get("keys", []):
            if not isinstance(raw, dict) or "d" in raw or not isinstance(raw.get("kid"), str):
                continue  # a private or anonymous key is never trusted
            try:
                keys[raw["kid"]] = jwt.PyJWK(raw)
            except jwt.PyJWTError:
                continue
        self._keys = keys
        self._fetched_at = self._clock()

    def _refresh_bounded(self) -> None:
        """Refresh, but after a failed attempt answer KeyUnavailable at once for
        ``min_refresh_seconds``: an issuer that is down is not asked once per request."""
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < self._min_refresh:
            raise KeyUnavailable("identity issuer unreachable (recent failure)")
        try:
            self._refresh()
        except KeyUnavailable:
            self._failed_at = now
            raise
        self._failed_at = None

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The published key ``kid``. An unknown kid refreshes at most once per
        ``min_refresh_seconds``; a set older than ``max_age_seconds`` is refreshed first, so a
        key the issuer retired stops verifying within that bound."""
        with self._lock:
            age = None if self._fetched_at is None else self._clock() - self._fetched_at
            if age is None or age >= self._max_age:
                self._refresh_bounded()
                return self._keys.get(kid)
            found = self._keys.get(kid)
            if found is None and age >= self._min_refresh:
                self._refresh_bounded()
                found = self._keys.get(kid)
            return found


class TokenVerifier:
    """Checks a token against one issuer; returns its claims or raises AccessDenied."""

    def __init__(
        self,
        issuer: Issuer,
        keys: JwksCache,
        *,
        kind: str,
        skew_seconds: float = DEFAULT_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self._keys = keys
        self._kind = kind
        self._skew = skew_seconds
        self._clock = clock

    def _deny(self, why: str) -> AccessDenied:
        return AccessDenied(f"{self._kind} token refused: {why}", reason="policy")

    def verify(self, token: object) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise self._deny("missing")
        if not token.isascii():  # a JWT is base64url and dots; PyJWT raised UnicodeEncodeError
            raise self._deny("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise self._deny("malformed") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGORITHMS:
            raise self._deny("algorithm not allowed")
        if not isinstance(kid, str):
            raise self._deny("no key id")
        key = self._keys.key(kid)
        if key is None:
            raise self._deny("unknown key id")
        if key.algorithm_name != alg:
            raise self._deny("algorithm does not match the key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.issuer.audience,
                issuer=self.issuer.issuer,
                leeway=self._skew,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise self._deny("expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise self._deny("not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise self._deny("wrong audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise self._deny("wrong issuer") from exc
        except jwt.PyJWTError as exc:
            raise self._deny("invalid") from exc
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) != 1:
            raise self._deny("meant for more than this audience")
        if float(claims["iat"]) > self._clock() + self._skew:
            raise self._deny("issued in the future")
        try:  # the one identity rule: ASCII, a valid address; compared in its canonical form
            claims["email"] = canonical_email("email", claims.get("email"))
        except InvalidRequest:  # absent, not a string, non-ASCII (a look-alike), not an address
            raise self._deny("no email claim (an ASCII email address)") from None
        return claims
