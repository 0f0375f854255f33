"""Application layer: the composition root and the Protector.

:func:`build_protector` wires settings, providers, stores, audit and policy into a
:class:`Protector` (``seal``/``open``, streams, ranges, ``explain``, ``rekey``) whose ``admin``
(:class:`Administration`) runs key lifecycle, revocation, rotation, backfill and the cache.
:class:`Runtime` is one deployment composed from settings (database, stores, providers, audit,
org directory, Protector): what the CLI, the API and the demo open.
"""

from ownkey.service._admin import Administration, Rotation
from ownkey.service._assets import AssetPreview, AssetService, PlanChanged
from ownkey.service._background import BackgroundJobs
from ownkey.service._build import build_protector
from ownkey.service._directory import Org, OrgDirectory, User
from ownkey.service._jobs import JobRunner, RekeyPreview, ShredCandidate
from ownkey.service._nodes import NodeSync
from ownkey.service._objects import ObjectRange, Objects
from ownkey.service._plan import PlanView, PolicyFn, policy_engine, view_plan
from ownkey.service._protector import Protector
from ownkey.service._request import AssetAddress, address_of, policy_part
from ownkey.service._runtime import Coverage, OrgUpdate, Runtime, ServiceCoverage
from ownkey.service._settings import ProtectorSettings
from ownkey.service._witness import AuditWitness, Witnessed, witness

__all__ = [
    "Administration",
    "AssetAddress",
    "AssetPreview",
    "AssetService",
    "AuditWitness",
    "BackgroundJobs",
    "Coverage",
    "JobRunner",
    "NodeSync",
    "ObjectRange",
    "Objects",
    "Org",
    "OrgDirectory",
    "OrgUpdate",
    "PlanChanged",
    "PlanView",
    "PolicyFn",
    "Protector",
    "ProtectorSettings",
    "RekeyPreview",
    "Rotation",
    "Runtime",
    "ServiceCoverage",
    "ShredCandidate",
    "User",
    "Witnessed",
    "address_of",
    "build_protector",
    "policy_engine",
    "policy_part",
    "view_plan",
    "witness",
]
