"""Catalog of protected asset types: the seed's 25 service IDs as data. Pure core.

``asset_type("0008")`` answers what a service covers, what the seed excludes, who may own it and
which of the seed's notes apply; the policy engine reads nothing else about services.
"""

from ownkey.catalog._lookup import SERVICE_IDS, asset_type
from ownkey.catalog._model import AssetType, ContainerKind, Group, OwnerKind
from ownkey.catalog._render import render_catalog_markdown
from ownkey.catalog._services import ASSET_TYPES

__all__ = [
    "ASSET_TYPES",
    "SERVICE_IDS",
    "AssetType",
    "ContainerKind",
    "Group",
    "OwnerKind",
    "asset_type",
    "render_catalog_markdown",
]
