"""``explain``: the policy decision for one asset, every step with a reason that names its rule.

The order of the rules matters and is the order below:

1. an excluded component always gets the platform key (nothing overrides the seed's exclusions);
2. hybrid chat data (1001) and advanced chat encryption (0008) are client-side: the platform
   never holds the key, so no CK or PK question arises;
3. Team Chat (0008) follows its member rules (``_chat.py``);
4. every other service is protected by its org's CK when the org has one, enabled the service
   (9999 needs no enabling), meets the service's setting (0006: compliance archival), and the
   owner holds a licence where one is needed (users; not call queues, rooms or the account);
5. log and index data keeps a CK only for large orgs that opted in;
6. a third-party model's copy is flagged, and AI-generated derivatives are noted, without
   changing the keys of the stored asset.

Pure: no I/O, no clock, no randomness. For a valid :class:`PolicyRequest` it never raises.
"""

from __future__ import annotations

from ownkey.catalog import AssetType, OwnerKind, asset_type
from ownkey.policy._chat import TEAM_CHAT, team_chat_keys
from ownkey.policy._plan import KeyRef, KeyType, ProtectionPlan, Reason, Rule
from ownkey.policy._request import DataClass, PolicyRequest

__all__ = ["explain"]

_OWNER_WORDS = {
    OwnerKind.CALL_QUEUE: "a call queue",
    OwnerKind.ROOM: "a Zoom Room",
    OwnerKind.ACCOUNT: "the account",
}
_SETTING_RULES = {"compliance_archival": Rule.COMPLIANCE_ARCHIVAL}


def _label(entry: AssetType) -> str:
    return f"{entry.service_id} ({entry.name})"


def _single_org_keys(request: PolicyRequest, entry: AssetType, reasons: list[Reason]) -> KeyRef:
    asset = request.asset
    org = request.orgs[asset.org]
    platform = KeyRef.platform()
    if not org.cmk:
        reasons.append(
            Reason(Rule.ORG_ENABLEMENT, f"{asset.org} has no customer key (cmk is false)")
        )
        return platform
    if not entry.needs_enabling:
        reasons.append(
            Reason(
                Rule.PERSONAL_IDENTIFIERS,
                f"{_label(entry)} needs no enabling and ignores licensing: it is under "
                f"{asset.org}'s customer key for the whole account",
            )
        )
        return KeyRef.customer(asset.org)
    if entry.service_id not in org.services:
        reasons.append(
            Reason(
                Rule.ORG_ENABLEMENT,
                f"{asset.org} has a customer key but did not enable {_label(entry)}",
            )
        )
        return platform
    reasons.append(
        Reason(Rule.ORG_ENABLEMENT, f"{asset.org} has a customer key and enabled {_label(entry)}")
    )
    if entry.requires_setting is not None:
        rule = _SETTING_RULES[entry.requires_setting]
        if not org.setting(entry.requires_setting):
            reasons.append(
                Reason(rule, f"{entry.requires_setting} is off for {asset.org}: no protection")
            )
            return platform
        reasons.append(Reason(rule, f"{entry.requires_setting} is on for {asset.org}"))
    if asset.owner_kind is not OwnerKind.USER:
        reasons.append(
            Reason(
                Rule.NO_LICENCE_NEEDED,
                f"owned by {_OWNER_WORDS[asset.owner_kind]}, which needs no CMK licence",
            )
        )
        return KeyRef.customer(asset.org)
    holder = entry.licence_holder
    rule = Rule.ORGANISER_LICENCE if holder == "meeting organiser" else Rule.OWNER_LICENCE
    aside = ", whatever the attendees' licences" if rule is Rule.ORGANISER_LICENCE else ""
    if org.licenses(asset.owner):
        reasons.append(
            Reason(rule, f"the {holder} {asset.owner} is a CMK-licensed user of {asset.org}{aside}")
        )
        return KeyRef.customer(asset.org)
    reasons.append(
        Reason(rule, f"the {holder} {asset.owner} is not a CMK-licensed user of {asset.org}{aside}")
    )
    return platform


def _content_keys(request: PolicyRequest, entry: AssetType, reasons: list[Reason]) -> list[KeyRef]:
    asset = request.asset
    org = request.orgs[asset.org]
    if entry.excludes(asset.component):
        reasons.append(
            Reason(
                Rule.EXCLUDED_COMPONENT,
                f"{asset.component} is excluded from {_label(entry)} by the product page "
                f'("{entry.excluded_note}"); it always gets the platform key',
            )
        )
        return [KeyRef.platform()]
    if entry.client_side:
        reasons.append(
            Reason(
                Rule.HYBRID_CHAT,
                f"{_label(entry)} is encrypted on the client with {asset.org}'s hybrid key; "
                "the platform never holds it",
            )
        )
        return [KeyRef.hybrid(asset.org)]
    if entry.service_id == TEAM_CHAT and org.advanced_chat_encryption:
        if org.cmk:
            reasons.append(
                Reason(
                    Rule.ADVANCED_CHAT_ENCRYPTION,
                    f"{asset.org} has advanced chat encryption on: the {asset.component} is "
                    f"encrypted on the client with {asset.org}'s key; the platform never holds it",
                )
            )
            return [KeyRef.hybrid(asset.org)]
        reasons.append(
            Reason(
                Rule.ADVANCED_CHAT_ENCRYPTION,
                f"advanced chat encryption is a CMK feature and {asset.org} has no customer key "
                "(cmk is false), so it does not apply",
            )
        )
    if entry.service_id == TEAM_CHAT:
        return team_chat_keys(request, reasons)
    return [_single_org_keys(request, entry, reasons)]


def _log_index_keys(
    request: PolicyRequest, keys: list[KeyRef], reasons: list[Reason]
) -> list[KeyRef]:
    result = []
    for key in keys:
        if key.type is KeyType.HYBRID:
            reasons.append(Reason(Rule.LOG_INDEX, "client-side content keeps its client-side key"))
        if key.type is not KeyType.CUSTOMER or key.org is None:
            result.append(key)
            continue
        org = request.orgs[key.org]
        if org.large_org and org.log_index_encryption:
            reasons.append(
                Reason(
                    Rule.LOG_INDEX,
                    f"{key.org} is a large org that enabled log and index encryption: "
                    "its customer key applies",
                )
            )
            result.append(key)
        else:
            missing = "is not a large org" if not org.large_org else "did not enable it"
            reasons.append(
                Reason(
                    Rule.LOG_INDEX,
                    f"log and index data is under the customer key only for large orgs that "
                    f"enabled it; {key.org} {missing}: the platform key replaces its key",
                )
            )
            result.append(KeyRef.platform())
    if not any(reason.rule is Rule.LOG_INDEX for reason in reasons):
        reasons.append(
            Reason(Rule.LOG_INDEX, "log and index data: the content has no customer key to keep")
        )
    return result


def _notes(request: PolicyRequest, entry: AssetType, reasons: list[Reason]) -> bool:
    """Add the AI notes; return ``third_party_egress``."""
    asset = request.asset
    if asset.component in entry.ai_generated:
        reasons.append(
            Reason(
                Rule.AI_DERIVATIVE,
                f"{asset.component} is AI-generated; it is sealed under the service of its "
                f"source asset, {entry.service_id}",
            )
        )
    if not asset.third_party_model:
        return False
    what = (
        "this AI Companion feature uses a third-party model"
        if entry.third_party_model_note or asset.component in entry.ai_generated
        else "a third-party model received this asset"
    )
    reasons.append(
        Reason(
            Rule.THIRD_PARTY_MODEL,
            f"{what}: the copy the provider receives has only its regular encryption, not the "
            "keys listed here",
        )
    )
    return True


def explain(request: PolicyRequest) -> ProtectionPlan:
    """Decide which keys must all be available to open ``request.asset``, and say why."""
    entry = asset_type(request.asset.service_id)
    reasons: list[Reason] = []
    keys = _content_keys(request, entry, reasons)
    if request.asset.data_class is DataClass.LOG_INDEX:
        keys = _log_index_keys(request, keys, reasons)
    egress = _notes(request, entry, reasons)
    return ProtectionPlan.of(entry.service_id, keys, reasons, third_party_egress=egress)
