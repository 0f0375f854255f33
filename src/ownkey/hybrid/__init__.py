"""CMK Hybrid (service 1001): the key service the *customer* runs, KACLS-shaped.

``ownkey hybrid serve`` runs :func:`build_app` over a :class:`KeyService`: JSON endpoints
``wrap``, ``unwrap``, ``rewrap``, ``digest``, ``privilegedunwrap`` and ``status``; every call
carries the user's authentication token (customer's identity provider) and the platform's
authorization token, both verified against their issuer's JWKS; the DEK is wrapped in a key
provider with org, service and conversation bound as associated data; revocations per user,
conversation or org apply on the next call; every call is a record of a hash chain. The
platform's half (authorization tokens for members, ciphertext storage) is
:mod:`ownkey.hybrid.platform`. See docs/hybrid.md.
"""

from typing import Any

from ownkey.hybrid._config import HybridConfig, init_home, load_config
from ownkey.hybrid._service import HYBRID_SERVICE_ID, ROLES, KeyService
from ownkey.hybrid._signing import SigningKeys
from ownkey.hybrid._store import REVOCATION_KINDS, HybridStore
from ownkey.hybrid._tokens import ALLOWED_ALGORITHMS, Issuer, JwksCache, TokenVerifier

__all__ = [
    "ALLOWED_ALGORITHMS",
    "HYBRID_SERVICE_ID",
    "REVOCATION_KINDS",
    "ROLES",
    "HybridConfig",
    "HybridStore",
    "Issuer",
    "JwksCache",
    "KeyService",
    "SigningKeys",
    "TokenVerifier",
    "build_app",
    "build_service",
    "init_home",
    "load_config",
]


def __getattr__(name: str) -> Any:
    """The HTTP app needs FastAPI: imported only when asked for (the client and the test
    issuer import this package without it)."""
    if name in ("build_app", "build_service"):
        from ownkey.hybrid import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'ownkey.hybrid' has no attribute {name!r}")
