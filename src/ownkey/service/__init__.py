"""Application layer: the composition root and the Protector.

:func:`build_protector` wires settings, providers, stores, audit and policy into a
:class:`Protector` (``seal``/``open``, streams, ranges, ``explain``, ``rekey``) whose ``admin``
(:class:`Administration`) runs key lifecycle, revocation, rotation, backfill and the cache.
"""

from ownkey.service._admin import Administration, Rotation
from ownkey.service._build import build_protector
from ownkey.service._plan import PlanView, PolicyFn, policy_engine, view_plan
from ownkey.service._protector import Protector
from ownkey.service._request import AssetAddress, address_of, policy_part
from ownkey.service._settings import ProtectorSettings

__all__ = [
    "Administration",
    "AssetAddress",
    "PlanView",
    "PolicyFn",
    "Protector",
    "ProtectorSettings",
    "Rotation",
    "address_of",
    "build_protector",
    "policy_engine",
    "policy_part",
    "view_plan",
]
