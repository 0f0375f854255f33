"""The org flags: the one table of an org's boolean settings besides ``cmk``.

Every place that names them reads this table: the policy request (:class:`OrgSettings` and its
parser), the published request schema, the org directory's columns, the CLI's ``--FLAG``
options and the API's models. A new flag is one row here, one field of :class:`OrgSettings`,
one migration adding its column, and the rule in the engine that reads it.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["ORG_FLAGS", "ORG_FLAG_HELP"]

#: Flag name -> what it means, in the order every listing uses.
ORG_FLAG_HELP = MappingProxyType(
    {
        "large_org": "The org is a large organisation (may protect log and index data).",
        "log_index_encryption": "Protect log and index data under the CK (large orgs only).",
        "compliance_archival": "Compliance archival is on (needed for 0006).",
        "advanced_chat_encryption": "Advanced chat encryption: team chat is encrypted on the "
        "client.",
        "hybrid": "CMK hybrid is on (needed for 1001): client-side chat keys.",
    }
)

#: The flag names, in table order.
ORG_FLAGS: tuple[str, ...] = tuple(ORG_FLAG_HELP)
