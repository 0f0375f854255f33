"""Rotating JWT signing keys (Ed25519, ``EdDSA``) published as a JWKS.

Both token issuers of the hybrid flow use it: the platform's authorization issuer
(:mod:`ownkey.hybrid.platform`) and the test identity provider (:mod:`ownkey.testing.oidc`).
Keys are Ed25519 seeds turned into OKP JWKs, so the only JOSE code is PyJWT's and the only key
generation is ``os.urandom`` (the seed is the private key, RFC 8032). Rotation adds a new current
key and keeps the old ones published until :meth:`SigningKeys.retire`, so tokens already issued
keep verifying while verifiers pick up the new ``kid`` from the JWKS.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt

from ownkey.envelope import Ed25519Signer, sha256
from ownkey.errors import ConfigError

__all__ = ["SIGNING_ALGORITHM", "SigningKeys", "b64url"]

SIGNING_ALGORITHM = "EdDSA"


def b64url(data: bytes) -> str:
    """Unpadded base64url, the JOSE spelling."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Key:
    __slots__ = ("kid", "private", "public_jwk", "seed")

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        public = Ed25519Signer(seed).public_key()
        self.kid = b64url(sha256(public)[:12])
        self.public_jwk: dict[str, str] = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(public),
            "kid": self.kid,
            "alg": SIGNING_ALGORITHM,
            "use": "sig",
        }
        self.private = jwt.PyJWK({**self.public_jwk, "d": b64url(seed)}).key


class SigningKeys:
    """A current signing key plus the older keys still published; ``repr`` hides the seeds."""

    def __init__(
        self,
        *,
        random: Callable[[int], bytes] = os.urandom,
        seeds: list[bytes] | None = None,
        path: Path | None = None,
    ) -> None:
        self._random = random
        self._lock = threading.Lock()
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: list[_Key] = [_Key(seed) for seed in seeds or [random(32)]]

    @classmethod
    def persistent(cls, path: Path) -> SigningKeys:
        """Keys kept in ``path`` (mode 0600), created on first use, rewritten on rotation.

        A process serving with these keys re-reads the file when it changes, so a rotation made
        by another process (``python -m ownkey.api.hybrid_platform --rotate``) applies to the next
        token and the next JWKS answer without a restart."""
        if path.exists():
            keys = cls(seeds=_read_seeds(path), path=path)
            keys._stamp = _stamp(path)
            return keys
        keys = cls(path=path)
        keys._save()
        return keys

    def _save(self) -> None:
        if self._path is None:
            return
        raw = json.dumps({"seeds": [base64.b64encode(k.seed).decode() for k in self._keys]})
        temp = self._path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(raw)
        os.replace(temp, self._path)
        self._stamp = _stamp(self._path)

    def _follow(self) -> None:
        """Reload from the file if another process rewrote it (caller holds the lock)."""
        if self._path is None:
            return
        stamp = _stamp(self._path)
        if stamp != self._stamp:
            self._keys = [_Key(seed) for seed in _read_seeds(self._path)]
            self._stamp = stamp

    def __repr__(self) -> str:
        return f"<SigningKeys current={self.current_kid} keys=<redacted>>"

    @property
    def current_kid(self) -> str:
        with self._lock:
            self._follow()
            return self._keys[-1].kid

    def rotate(self) -> str:
        """Make a fresh key current; older keys stay published. Returns the new ``kid``."""
        with self._lock:
            self._follow()
            self._keys.append(_Key(self._random(32)))
            self._save()
            return self._keys[-1].kid

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid`` (never the current key): its tokens stop verifying."""
        with self._lock:
            self._follow()
            if kid == self._keys[-1].kid:
                raise ValueError("the current signing key cannot be retired; rotate first")
            self._keys = [key for key in self._keys if key.kid != kid]
            self._save()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS document (no private member ever)."""
        with self._lock:
            self._follow()
            return {"keys": [dict(key.public_jwk) for key in self._keys]}

    def sign(self, claims: Mapping[str, Any], *, kid: str | None = None) -> str:
        """A compact JWS of ``claims`` under the current key (or the published key ``kid``)."""
        with self._lock:
            self._follow()
            key = self._keys[-1] if kid is None else next(k for k in self._keys if k.kid == kid)
        return jwt.encode(
            dict(claims), key.private, algorithm=SIGNING_ALGORITHM, headers={"kid": key.kid}
        )


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _read_seeds(path: Path) -> list[bytes]:
    try:
        seeds = [
            base64.b64decode(s, validate=True) for s in json.loads(path.read_text("utf-8"))["seeds"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ConfigError(f"the signing key file {path} is unreadable") from exc
    if not seeds or any(len(seed) != 32 for seed in seeds):
        raise ConfigError(f"the signing key file {path} does not hold 32-byte Ed25519 seeds")
    return seeds
