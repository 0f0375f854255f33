"""Application layer: the one builder, the Protector, and a deployment's façades.

One builder (``_builder.py``) composes a :class:`Protector` (``seal``/``open``, streams, ranges,
``explain``, ``rekey``; its ``admin``, :class:`Administration`, runs key lifecycle, revocation,
rotation, backfill and the cache) from settings and a profile: :class:`MemoryProfile` behind
:func:`build_protector`, :class:`SqlProfile` behind :meth:`Runtime.open`. :class:`Runtime` is one
deployment (what the CLI, the API and the demo open); it builds and closes, and hands out
:class:`OrgOperations`, :class:`KeyOperations` and :class:`JobOperations`.
"""

from typing import TYPE_CHECKING

from ownkey._lazy import lazy_names

if TYPE_CHECKING:
    from ownkey.errors import PlanChanged  # re-exported where it was first defined
    from ownkey.service._admin import Administration, Rotation
    from ownkey.service._assets import AssetPreview, AssetService
    from ownkey.service._background import BackgroundJobs
    from ownkey.service._build import build_protector
    from ownkey.service._builder import Effects, MemoryProfile, SqlDeployment, SqlProfile
    from ownkey.service._coverage import Coverage, ServiceCoverage
    from ownkey.service._directory import Org, OrgDirectory, User
    from ownkey.service._hybrid_objects import (
        AssetCiphertexts,
        DirectoryOrgUsers,
        is_client_side,
    )
    from ownkey.service._job_ops import JobOperations, backfill_notice
    from ownkey.service._jobs import JobRunner, RekeyPreview, ShredCandidate
    from ownkey.service._key_ops import KeyOperations
    from ownkey.service._nodes import NodeSync
    from ownkey.service._objects import ObjectRange, Objects
    from ownkey.service._org_ops import OrgOperations, OrgUpdate
    from ownkey.service._plan import PlanView, PolicyFn, policy_engine, view_plan
    from ownkey.service._protector import Protector
    from ownkey.service._readiness import Readiness, ReadinessReport
    from ownkey.service._request import AssetAddress, address_of, policy_part
    from ownkey.service._runtime import Runtime
    from ownkey.service._settings import ProtectorSettings
    from ownkey.service._witness import AuditWitness, Witnessed, witness

__all__ = [
    "Administration",
    "AssetAddress",
    "AssetCiphertexts",
    "AssetPreview",
    "AssetService",
    "AuditWitness",
    "BackgroundJobs",
    "Coverage",
    "DirectoryOrgUsers",
    "Effects",
    "JobOperations",
    "JobRunner",
    "KeyOperations",
    "MemoryProfile",
    "NodeSync",
    "ObjectRange",
    "Objects",
    "Org",
    "OrgDirectory",
    "OrgOperations",
    "OrgUpdate",
    "PlanChanged",
    "PlanView",
    "PolicyFn",
    "Protector",
    "ProtectorSettings",
    "Readiness",
    "ReadinessReport",
    "RekeyPreview",
    "Rotation",
    "Runtime",
    "ServiceCoverage",
    "ShredCandidate",
    "SqlDeployment",
    "SqlProfile",
    "User",
    "Witnessed",
    "address_of",
    "backfill_notice",
    "build_protector",
    "is_client_side",
    "policy_engine",
    "policy_part",
    "view_plan",
    "witness",
]

#: Where each public name lives: importing ``ownkey.service`` loads none of them, so that a
#: command importing one (``Runtime``) pays for its own modules only (tests/cli/test_startup.py).
_HOMES: dict[str, str] = {
    "PlanChanged": "ownkey.errors",
    "Administration": "ownkey.service._admin",
    "Rotation": "ownkey.service._admin",
    "AssetPreview": "ownkey.service._assets",
    "AssetService": "ownkey.service._assets",
    "BackgroundJobs": "ownkey.service._background",
    "build_protector": "ownkey.service._build",
    "Effects": "ownkey.service._builder",
    "MemoryProfile": "ownkey.service._builder",
    "SqlDeployment": "ownkey.service._builder",
    "SqlProfile": "ownkey.service._builder",
    "Coverage": "ownkey.service._coverage",
    "ServiceCoverage": "ownkey.service._coverage",
    "Org": "ownkey.service._directory",
    "OrgDirectory": "ownkey.service._directory",
    "User": "ownkey.service._directory",
    "AssetCiphertexts": "ownkey.service._hybrid_objects",
    "DirectoryOrgUsers": "ownkey.service._hybrid_objects",
    "is_client_side": "ownkey.service._hybrid_objects",
    "JobOperations": "ownkey.service._job_ops",
    "backfill_notice": "ownkey.service._job_ops",
    "JobRunner": "ownkey.service._jobs",
    "RekeyPreview": "ownkey.service._jobs",
    "ShredCandidate": "ownkey.service._jobs",
    "KeyOperations": "ownkey.service._key_ops",
    "NodeSync": "ownkey.service._nodes",
    "ObjectRange": "ownkey.service._objects",
    "Objects": "ownkey.service._objects",
    "OrgOperations": "ownkey.service._org_ops",
    "OrgUpdate": "ownkey.service._org_ops",
    "PlanView": "ownkey.service._plan",
    "PolicyFn": "ownkey.service._plan",
    "policy_engine": "ownkey.service._plan",
    "view_plan": "ownkey.service._plan",
    "Protector": "ownkey.service._protector",
    "Readiness": "ownkey.service._readiness",
    "ReadinessReport": "ownkey.service._readiness",
    "AssetAddress": "ownkey.service._request",
    "address_of": "ownkey.service._request",
    "policy_part": "ownkey.service._request",
    "Runtime": "ownkey.service._runtime",
    "ProtectorSettings": "ownkey.service._settings",
    "AuditWitness": "ownkey.service._witness",
    "Witnessed": "ownkey.service._witness",
    "witness": "ownkey.service._witness",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES, __all__)
