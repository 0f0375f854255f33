"""Adapters to key managers (local, PKCS#11, KMIP, AWS KMS).

Each provider implements :class:`ownkey.keys.KeyProvider` and translates its manager's errors
into ownkey's error tree. :class:`LocalKeyProvider` holds keys in this process: the provider of
the tests. :class:`LocalKeyStoreProvider` is the embedded ``local`` store, keys sealed at rest
under a root key. :class:`Pkcs11Provider`, :class:`KmipProvider` and :class:`AwsKmsProvider` need
their SDK (the ``pkcs11``, ``kmip`` and ``aws`` extras) and are imported on first use;
:func:`build_provider` makes any of them from plain settings.
"""

from __future__ import annotations

import importlib
from typing import Any

from ownkey.providers._factory import PROVIDER_KINDS, build_provider, provider_settings
from ownkey.providers._local import LocalKeyProvider
from ownkey.providers._local_store import JsonKeyFile, LocalKeyRecords, LocalKeyStoreProvider

__all__ = [
    "PROVIDER_KINDS",
    "AwsKmsProvider",
    "JsonKeyFile",
    "KmipProvider",
    "LocalKeyProvider",
    "LocalKeyRecords",
    "LocalKeyStoreProvider",
    "Pkcs11Provider",
    "build_provider",
    "provider_settings",
]

_LAZY = {
    "AwsKmsProvider": "ownkey.providers._aws_kms",
    "KmipProvider": "ownkey.providers._kmip",
    "Pkcs11Provider": "ownkey.providers._pkcs11",
}


def __getattr__(name: str) -> Any:
    """Import an SDK-backed provider only when it is asked for (its SDK is an extra)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ownkey.providers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
