"""ownkey: customer managed keys for a multi-tenant collaboration platform.

The front door is :class:`Protector` (``seal``/``open`` for messages, ``seal_stream``/
``open_stream``/``open_range`` for large assets, ``explain`` for the policy), built by
:func:`build_protector` from settings; every error it raises on purpose is an
:class:`OwnkeyError` (the tree is in :mod:`ownkey.errors`). The hazardous layer, the envelope
format, lives in :mod:`ownkey.envelope`.

The service layer is imported on first use, so ``import ownkey`` stays cheap for tools that only
need the errors or the envelope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    PlanChanged,
    PolicyError,
    RetiredScopeKey,
)

if TYPE_CHECKING:
    from ownkey.service import Protector, ProtectorSettings, build_protector

__all__ = [
    "AccessDenied",
    "AuditDamaged",
    "AuditUnavailable",
    "ConfigError",
    "Conflict",
    "InvalidCiphertext",
    "InvalidRequest",
    "KeyUnavailable",
    "LifecycleError",
    "LimitExceeded",
    "NotFound",
    "OwnkeyError",
    "PlanChanged",
    "PolicyError",
    "Protector",
    "ProtectorSettings",
    "RetiredScopeKey",
    "__version__",
    "build_protector",
]

_LAZY = {"Protector", "ProtectorSettings", "build_protector"}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # One version number, pyproject.toml's, read from the installed package's metadata.
        from importlib.metadata import version

        return version("ownkey")
    if name in _LAZY:
        from ownkey import service

        return getattr(service, name)
    raise AttributeError(f"module 'ownkey' has no attribute {name!r}")
