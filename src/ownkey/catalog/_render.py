"""Render ``docs/catalog.md``, the table a customer reads: what is protected and what is not.

The document is generated so that it cannot drift from the data the policy engine uses; a test
compares the committed file with :func:`render_catalog_markdown`.
"""

from __future__ import annotations

from ownkey.catalog._model import AssetType, Group, OwnerKind
from ownkey.catalog._services import ASSET_TYPES

__all__ = ["render_catalog_markdown"]

_HEADER = """\
<!-- Generated from src/ownkey/catalog by scripts/gen-catalog-doc. Do not edit by hand. -->
# What ownkey protects

Each row is one asset type of the product page, with the Service ID that appears in the encryption
context sent to your key manager (and so in its own usage log). "Protected" components are sealed
under your organisation's customer key (CK) once your organisation has a CK, has enabled the
service, and the asset's owner is CMK-licensed where the service needs it. "Not protected"
components always stay under the platform's own key (PK), whatever the settings.
How each rule is applied is in [policy.md](policy.md).
"""

_NOTES = """\
## Notes

- **Enabling and licences.** A service is protected once the organisation has a CK and has
  enabled it. Assets owned by a user need a CMK-licensed owner (for recordings, the meeting
  organiser, whatever the attendees); call queues, Zoom Rooms and account-owned assets need no
  licence. `9999` needs neither enabling nor licences.
- **Team Chat (`0008`).** A chat or channel is protected when any member is a CMK-licensed user of
  an organisation protecting `0008`. A channel uses its owner's organisation key only, even with
  external members. A chat between organisations needs every present organisation's CK (or the
  PK for an organisation without a licensed member): each side's revocation is effective. Code
  snippets follow their creator's licence. With Advanced Chat Encryption the content is
  client-side encrypted and the platform never holds the key.
- **Compliance archives (`0006`)** are protected only while compliance archival is on.
- **AI-generated derivatives** (summaries, next steps, AI-generated data) are sealed under the
  service of the asset they were made from.
- **Third-party model** (marked *3P*): "if the feature uses a third-party model provider, that
  provider may only encrypt the data they receive with regular encryption." ownkey reports such a
  copy as `third_party_egress`.
- **Log and index data** (marked *LI*): "Large organizations can also enable the encryption of
  certain log and index data used for searching and AI when it is stored at rest." ownkey puts log
  and index data under the CK only for large organisations that opted in.
- **Hybrid chat data (`1001`)** is encrypted on the client with the organisation's hybrid key; the
  platform never holds it.
"""

_OWNER_TITLES = {
    OwnerKind.USER: "user",
    OwnerKind.CALL_QUEUE: "call queue",
    OwnerKind.ROOM: "room",
    OwnerKind.ACCOUNT: "account",
}


def _code_list(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{name}`" for name in names) if names else "-"


def _notes(entry: AssetType) -> str:
    marks = []
    if not entry.needs_enabling:
        marks.append("no enabling, no licence")
    if entry.requires_setting == "compliance_archival":
        marks.append("needs compliance archival")
    if entry.client_side:
        marks.append("client-side")
    if entry.third_party_model_note:
        marks.append("3P")
    if entry.large_org_log_index_note:
        marks.append("LI")
    if entry.ai_generated:
        marks.append("AI-generated: " + _code_list(tuple(sorted(entry.ai_generated))))
    return "; ".join(marks) if marks else "-"


def _row(entry: AssetType) -> str:
    owners = ", ".join(_OWNER_TITLES[kind] for kind in OwnerKind if kind in entry.owner_kinds)
    not_protected = _code_list(entry.excluded)
    if entry.excluded_note:
        not_protected += f': "{entry.excluded_note}"'
    cells = (
        f"`{entry.service_id}`",
        entry.name,
        entry.seed,
        _code_list(entry.included),
        not_protected,
        owners,
        _notes(entry),
    )
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render_catalog_markdown() -> str:
    """Return the whole ``docs/catalog.md`` text (ends with one newline)."""
    parts = [_HEADER]
    for group in Group:
        entries = [entry for entry in ASSET_TYPES if entry.group is group]
        parts.append(f"## {group.heading}\n")
        parts.append(
            "| Service ID | Asset | What the product page says | Protected | Not protected "
            "| Owners | Notes |\n|---|---|---|---|---|---|---|"
        )
        parts.extend(_row(entry) for entry in entries)
        parts.append("")
    parts.append(_NOTES)
    return "\n".join(parts)
