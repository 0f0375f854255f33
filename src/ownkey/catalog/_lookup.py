"""Lookups over the catalog: by service ID, and the set of known IDs."""

from __future__ import annotations

from types import MappingProxyType

from ownkey.catalog._model import AssetType
from ownkey.catalog._services import ASSET_TYPES
from ownkey.errors import NotFound

__all__ = ["SERVICE_IDS", "asset_type"]

_BY_ID = MappingProxyType({entry.service_id: entry for entry in ASSET_TYPES})
if len(_BY_ID) != len(ASSET_TYPES):  # pragma: no cover - guards the data at import time
    raise RuntimeError("duplicate service ID in the catalog")

#: Every service ID of the seed, as 4-character strings.
SERVICE_IDS: frozenset[str] = frozenset(_BY_ID)


def asset_type(service_id: str) -> AssetType:
    """Return the catalog entry for ``service_id`` (a 4-character string such as ``"0008"``).

    Raises :class:`~ownkey.errors.NotFound` for an ID the seed does not list: an unknown service
    must never silently fall back to some default protection.
    """
    try:
        return _BY_ID[service_id]
    except KeyError:
        raise NotFound(f"unknown service ID {service_id!r}") from None
