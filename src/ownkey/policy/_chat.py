"""Team Chat (0008): who triggers protection, and whose keys a chat or channel needs.

The seed's sentences, in the order this module applies them:

- "All messages, files, emojis, and attachments can be encrypted if any member of the channel or
  chat is a CMK-licensed user" -- a member counts when licensed in an org that protects 0008.
- "Code snippets are encrypted if the creator is a CMK-licensed user." -- for a snippet the
  creator alone is the trigger; the keys then follow the container as for messages.
- "An encrypted channel is encrypted using the owner's key, even if external participation is
  allowed." -- a channel needs its owner's org CK and nothing else; if the owner's org does not
  protect 0008 the channel stays under the platform key.
- "Chats between two users of different organizations will be encrypted with both organizations'
  keys if both users have licensed CMK. If only one person is a CMK-licensed user, a Zoom-provided
  key will be used for the non-licensed user." -- each org present brings its CK if it has a
  licensed member present, else the platform key; all of them are needed to open.
"""

from __future__ import annotations

from ownkey.catalog import ContainerKind
from ownkey.policy._plan import KeyRef, Reason, Rule
from ownkey.policy._request import CODE_SNIPPET, OrgSettings, PolicyRequest

__all__ = ["TEAM_CHAT", "team_chat_keys"]

TEAM_CHAT = "0008"


def _why_not(name: str, org: OrgSettings) -> str:
    if not org.cmk:
        return f"{name} has no customer key (cmk is false)"
    return f"{name} has a customer key but did not enable {TEAM_CHAT}"


def _members(request: PolicyRequest) -> list[tuple[str, str]]:
    """(user, org) of every member, the sender or channel owner included, without repeats."""
    asset = request.asset
    first = [(asset.owner, asset.org)] if asset.owner is not None else []
    pairs = first + [(member.user, member.org) for member in asset.container.members]
    return list(dict.fromkeys(pairs))  # linear; the first occurrence keeps its place


def _qualifies(request: PolicyRequest, user: str, org_name: str) -> bool:
    org = request.orgs[org_name]
    return org.protects(TEAM_CHAT) and org.licenses(user)


def _trigger(request: PolicyRequest, reasons: list[Reason]) -> bool:
    """Whether the chat or channel is CMK-protected at all (before choosing keys)."""
    asset = request.asset
    if asset.component == CODE_SNIPPET:
        creator = asset.creator or asset.owner
        assert creator is not None  # 0008 is user-owned; the request checked the owner
        creator_org = request.org_of(creator)
        if _qualifies(request, creator, creator_org):
            reasons.append(
                Reason(
                    Rule.CODE_SNIPPET_CREATOR,
                    f"the snippet's creator {creator} is a CMK-licensed user of {creator_org}, "
                    f"which protects {TEAM_CHAT}",
                )
            )
            return True
        org = request.orgs[creator_org]
        why = (
            _why_not(creator_org, org)
            if not org.protects(TEAM_CHAT)
            else f"{creator} is not CMK-licensed in {creator_org}"
        )
        reasons.append(
            Reason(
                Rule.CODE_SNIPPET_CREATOR,
                f"code snippets are encrypted only if their creator is a CMK-licensed user: {why}; "
                "the platform key protects it",
            )
        )
        return False
    licensed = [user for user, org in _members(request) if _qualifies(request, user, org)]
    if licensed:
        reasons.append(
            Reason(
                Rule.TEAM_CHAT_ANY_MEMBER,
                f"the {asset.container.kind.value} is CMK-protected because a member is a "
                f"CMK-licensed user of an org protecting {TEAM_CHAT}: {', '.join(licensed)}",
            )
        )
        return True
    reasons.append(
        Reason(
            Rule.TEAM_CHAT_ANY_MEMBER,
            f"no member of the {asset.container.kind.value} is a CMK-licensed user of an org "
            f"protecting {TEAM_CHAT}; the platform key protects it",
        )
    )
    return False


def _channel_keys(request: PolicyRequest, reasons: list[Reason]) -> list[KeyRef]:
    owner_org = request.asset.org
    org = request.orgs[owner_org]
    if org.protects(TEAM_CHAT):
        external = sorted({m.org for m in request.asset.container.members} - {owner_org})
        also = f" (external members from {', '.join(external)} do not add keys)" if external else ""
        reasons.append(
            Reason(
                Rule.TEAM_CHAT_CHANNEL_OWNER,
                f"a channel is encrypted with its owner's key only: {owner_org}'s customer "
                f"key{also}",
            )
        )
        return [KeyRef.customer(owner_org)]
    reasons.append(
        Reason(
            Rule.TEAM_CHAT_CHANNEL_OWNER,
            f"a channel is encrypted with its owner's key only, and {_why_not(owner_org, org)}; "
            "the platform key protects it",
        )
    )
    return [KeyRef.platform()]


def _chat_keys(request: PolicyRequest, reasons: list[Reason]) -> list[KeyRef]:
    by_org: dict[str, list[str]] = {}
    for user, org_name in _members(request):  # grouped once: linear in the members
        by_org.setdefault(org_name, []).append(user)
    keys: list[KeyRef] = []
    for org_name in sorted(by_org):
        org = request.orgs[org_name]
        licensed = [user for user in by_org[org_name] if org.licenses(user)]
        if org.protects(TEAM_CHAT) and licensed:
            keys.append(KeyRef.customer(org_name))
            text = f"{org_name}'s side uses its customer key ({licensed[0]} is CMK-licensed)"
        else:
            keys.append(KeyRef.platform())
            why = (
                _why_not(org_name, org)
                if not org.protects(TEAM_CHAT)
                else (f"no member from {org_name} is CMK-licensed")
            )
            text = f"{org_name}'s side uses the platform key ({why})"
        reasons.append(Reason(Rule.TEAM_CHAT_CROSS_ORG, text))
    if len(keys) > 1:
        reasons.append(
            Reason(
                Rule.TEAM_CHAT_CROSS_ORG,
                "every listed key is needed to open the chat, so each org's revocation is "
                "effective",
            )
        )
    return keys


def team_chat_keys(request: PolicyRequest, reasons: list[Reason]) -> list[KeyRef]:
    """The keys of a 0008 asset that is neither excluded nor under advanced chat encryption."""
    if not _trigger(request, reasons):
        return [KeyRef.platform()]
    if request.asset.container.kind is ContainerKind.CHANNEL:
        return _channel_keys(request, reasons)
    return _chat_keys(request, reasons)
