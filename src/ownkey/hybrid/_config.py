"""The key service's home: ``hybrid.json`` (settings), ``hybrid.db`` (state), ``keys/`` (keys).

The home belongs to the customer and to the key service alone; nothing in it is shared with the
platform. ``hybrid.json`` names the org it serves, the two trusted issuers (the customer's
identity provider for authentication, the platform for authorization), the emails allowed the
privileged (export / eDiscovery) unwrap, and the key: a key id in any ownkey provider, the
embedded ``local`` store under ``keys/`` by default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from ownkey.envelope import Ed25519Signer
from ownkey.errors import ConfigError, InvalidRequest
from ownkey.hybrid._tokens import DEFAULT_SKEW_SECONDS, Issuer
from ownkey.hybrid._values import check_issuer
from ownkey.keys import KeyProvider
from ownkey.policy import canonical_email, check_org
from ownkey.providers import build_provider

__all__ = [
    "AUDIT_SEED_FILE",
    "CONFIG_FILE",
    "DB_FILE",
    "HybridConfig",
    "init_home",
    "load_audit_signer",
    "load_config",
    "open_provider",
]

CONFIG_FILE: Final = "hybrid.json"
DB_FILE: Final = "hybrid.db"
KEYS_DIR: Final = "keys"
#: The Ed25519 seed that signs the audit chain's checkpoints (0600, created by ``init``).
AUDIT_SEED_FILE: Final = "audit-signing.seed"


def load_audit_signer(home: Path) -> Ed25519Signer | None:
    """The checkpoint signer of this home, or None for a home made before checkpoints."""
    path = home / AUDIT_SEED_FILE
    if not path.exists():
        return None
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others; chmod 600 it")
    seed = bytes.fromhex(path.read_text(encoding="ascii").strip())
    return Ed25519Signer(seed)


@dataclass(frozen=True)
class HybridConfig:
    """Everything ``ownkey hybrid serve`` needs to know, from ``hybrid.json``."""

    home: Path
    org: str
    key_id: str
    authentication: Issuer
    authorization: Issuer
    privileged: tuple[str, ...] = ()
    provider_kind: str = "local"
    provider_settings: Mapping[str, str] = field(default_factory=dict)
    skew_seconds: float = DEFAULT_SKEW_SECONDS
    jwks_min_refresh_seconds: float = 5.0
    #: ``normal`` or ``full``: how an audit record reaches the disk (HybridStore, issue 25).
    audit_sync: str = "normal"

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw.pop("home")
        raw["privileged"] = list(self.privileged)
        raw["provider_settings"] = dict(self.provider_settings)
        return raw


def open_provider(
    home: Path, kind: str, settings: Mapping[str, str], env: Mapping[str, str] | None = None
) -> KeyProvider:
    """The key provider of this home; the ``local`` store lives in ``home/keys``."""
    base = dict(os.environ if env is None else env)
    base["OWNKEY_HOME"] = str(home / KEYS_DIR)
    for name in ("OWNKEY_ROOT_KEY", "OWNKEY_ROOT_KEY_FILE"):
        base.pop(name, None)  # never the platform's root key
    (home / KEYS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    return build_provider(kind, settings, env=base, name="hybrid")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def check_issuers(authentication: Issuer, authorization: Issuer) -> None:
    """The user's authentication must come from an issuer the platform cannot sign for: the
    customer's identity provider, never the platform's grant issuer nor anything served from
    the platform's origin (scheme, host and port: another path there is the platform's too),
    or the platform would mint the user's authentication as well as the grant, and unwrap
    anything. InvalidRequest naming ``idp`` otherwise."""
    if _origin(authentication.issuer) == _origin(authorization.issuer):
        raise InvalidRequest("idp", "must be the customer's identity provider, not the platform")


def init_home(
    home: Path,
    *,
    org: str,
    authentication: Issuer,
    authorization: Issuer,
    privileged: tuple[str, ...] = (),
    provider_kind: str = "local",
    provider_settings: Mapping[str, str] | None = None,
    skew_seconds: float = DEFAULT_SKEW_SECONDS,
    jwks_min_refresh_seconds: float = 5.0,
) -> HybridConfig:
    """Create a home with a fresh key in the provider; refuse to overwrite an existing one.

    Every value is checked before anything is created (InvalidRequest names it)."""
    check_org("org", org)
    check_issuer("idp", authentication.issuer)
    check_issuer("platform", authorization.issuer)
    check_issuers(authentication, authorization)
    privileged = tuple(canonical_email("privileged", email) for email in privileged)
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{home}: cannot be the key service's home ({exc.strerror})") from None
    path = home / CONFIG_FILE
    if path.exists():
        raise ConfigError(f"{path} exists; a key service home is initialised once")
    settings = dict(provider_settings or {})
    seed_path = home / AUDIT_SEED_FILE
    fd = os.open(seed_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(os.urandom(32).hex())
    provider = open_provider(home, provider_kind, settings)
    key_id = provider.create_key(label=f"hybrid-{org}")
    config = HybridConfig(
        home=home,
        org=org,
        key_id=key_id,
        authentication=authentication,
        authorization=authorization,
        privileged=privileged,
        provider_kind=provider_kind,
        provider_settings=settings,
        skew_seconds=skew_seconds,
        jwks_min_refresh_seconds=jwks_min_refresh_seconds,
    )
    path.write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")
    return config


def load_config(home: Path) -> HybridConfig:
    path = home / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        config = HybridConfig(
            home=home,
            org=str(raw["org"]),
            key_id=str(raw["key_id"]),
            authentication=Issuer(**raw["authentication"]),
            authorization=Issuer(**raw["authorization"]),
            privileged=tuple(canonical_email("privileged", e) for e in raw.get("privileged", ())),
            provider_kind=str(raw.get("provider_kind", "local")),
            provider_settings={str(k): str(v) for k, v in raw.get("provider_settings", {}).items()},
            skew_seconds=float(raw.get("skew_seconds", DEFAULT_SKEW_SECONDS)),
            jwks_min_refresh_seconds=float(raw.get("jwks_min_refresh_seconds", 5.0)),
            audit_sync=str(raw.get("audit_sync", "normal")),
        )
        check_issuers(config.authentication, config.authorization)
        return config
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} missing; run `ownkey hybrid init` first") from exc
    except InvalidRequest as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise ConfigError(f"{path} is malformed") from exc
