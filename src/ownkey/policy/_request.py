"""The policy request of docs/policy.md, parsed into frozen dataclasses and validated.

Parsing is strict on purpose: an admin dry-running policy and the platform asking for a plan must
never get an answer for a request that was silently read differently from what they meant. An
unknown field, service, component or owner kind, a wrong JSON type, a member whose org is not
listed, or a duplicated key is a :class:`~ownkey.errors.PolicyError` naming the field. Optional
fields have the defaults published in ``docs/policy-request.schema.json``.

The dataclasses validate their cross-references themselves, so a request built in Python is held
to the same rules as one parsed from JSON; :func:`~ownkey.policy.explain` then never fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from ownkey.catalog import SERVICE_IDS, ContainerKind, OwnerKind, asset_type
from ownkey.errors import InvalidRequest, PolicyError
from ownkey.policy._fields import (
    JsonObject,
    child,
    index,
    read_bool,
    read_enum,
    read_list,
    read_object,
    read_optional_str,
    read_str,
    read_str_item,
)
from ownkey.policy._flags import ORG_FLAGS
from ownkey.policy._identity import canonical_email

__all__ = [
    "MAX_REQUEST_BYTES",
    "Asset",
    "Container",
    "DataClass",
    "Member",
    "OrgSettings",
    "PolicyRequest",
    "parse_request",
    "parse_request_json",
]

#: The component that ``creator`` is about.
CODE_SNIPPET = "code_snippet"
#: The most members a chat or channel may list in one request (docs/policy.md): enough for the
#: largest channels, and it bounds the work of one request.
MAX_MEMBERS = 10_000
#: The largest request text, in bytes: the API's JSON body limit, and ``ownkey policy explain``
#: reads no more of its standard input (``cat /dev/zero | ownkey policy explain`` grew without
#: bound).
MAX_REQUEST_BYTES = 1024 * 1024


class DataClass(StrEnum):
    """Whether the asset is content itself or log/index data derived from it."""

    CONTENT = "content"
    LOG_INDEX = "log_index"


@dataclass(frozen=True, slots=True)
class OrgSettings:
    """One organisation's CMK settings, as the platform knows them; the flags after
    ``licensed_users`` are the rows of :data:`~ownkey.policy.ORG_FLAGS`, in its order."""

    cmk: bool
    services: frozenset[str] = frozenset()
    licensed_users: frozenset[str] = frozenset()
    large_org: bool = False
    log_index_encryption: bool = False
    compliance_archival: bool = False
    advanced_chat_encryption: bool = False
    hybrid: bool = False

    def setting(self, name: str) -> bool:
        """The value of a catalog ``requires_setting`` by name."""
        return {"compliance_archival": self.compliance_archival, "hybrid": self.hybrid}[name]

    def protects(self, service_id: str) -> bool:
        """Whether this org protects ``service_id`` under its CK (licences aside)."""
        return self.cmk and (
            service_id in self.services or not asset_type(service_id).needs_enabling
        )

    def licenses(self, user: str | None) -> bool:
        """Whether ``user`` is a CMK-licensed user of this org: listed as given, or, for an email
        address, in the canonical form the org directory stores (``canonical_email``: a request
        naming ``Ann@Acme.test`` must not fall back to the platform key because the directory
        says ``ann@acme.test``; a look-alike such as ``\u212aim@...`` is never kim)."""
        if user is None:
            return False
        if user in self.licensed_users:
            return True
        try:
            canonical = canonical_email("user", user)
        except InvalidRequest:
            return False
        return canonical != user and canonical in self.licensed_users

    def to_json(self) -> dict[str, object]:
        """The org's settings as request JSON (lists sorted)."""
        return {
            "cmk": self.cmk,
            "services": sorted(self.services),
            "licensed_users": sorted(self.licensed_users),
            **{flag: getattr(self, flag) for flag in ORG_FLAGS},
        }


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a chat or channel (or an attendee of a meeting) and the org it belongs to."""

    user: str
    org: str


@dataclass(frozen=True, slots=True)
class Container:
    """Where the asset lives. Only chats and channels look at their members."""

    kind: ContainerKind = ContainerKind.NONE
    members: tuple[Member, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is ContainerKind.NONE and self.members:
            raise PolicyError("asset.container.members", 'a container of kind "none" has none')
        if len(self.members) > MAX_MEMBERS:
            raise PolicyError("asset.container.members", f"at most {MAX_MEMBERS} members")


@dataclass(frozen=True, slots=True)
class Asset:
    """The asset the plan is for. ``owner``/``org`` are the sender's for a chat message and the
    channel owner's for a channel; ``creator`` is the author of a code snippet."""

    service_id: str
    org: str
    owner: str | None
    owner_kind: OwnerKind
    component: str
    container: Container = field(default_factory=Container)
    creator: str | None = None
    third_party_model: bool = False
    data_class: DataClass = DataClass.CONTENT

    def __post_init__(self) -> None:
        if self.service_id not in SERVICE_IDS:
            raise PolicyError(
                "asset.service_id", f"unknown service ID {json.dumps(self.service_id)}"
            )
        entry = asset_type(self.service_id)
        if self.component not in entry.components:
            known = ", ".join(entry.included + entry.excluded)
            raise PolicyError(
                "asset.component",
                f"unknown component {json.dumps(self.component)} for {self.service_id}; "
                f"one of {known}",
            )
        if self.owner_kind not in entry.owner_kinds:
            owners = ", ".join(kind.value for kind in OwnerKind if kind in entry.owner_kinds)
            raise PolicyError(
                "asset.owner_kind",
                f"{self.service_id} ({entry.name}) is owned by {owners}, "
                f"not {self.owner_kind.value}",
            )
        if self.container.kind not in entry.containers:
            kinds = ", ".join(kind.value for kind in ContainerKind if kind in entry.containers)
            raise PolicyError(
                "asset.container.kind",
                f"{self.service_id} ({entry.name}) lives in {kinds}, "
                f"not {self.container.kind.value}",
            )
        if self.owner_kind is OwnerKind.USER and self.owner is None:
            raise PolicyError("asset.owner", 'required when owner_kind is "user"')

    def to_json(self) -> dict[str, object]:
        """The asset as request JSON."""
        return {
            "service_id": self.service_id,
            "org": self.org,
            "owner": self.owner,
            "owner_kind": self.owner_kind.value,
            "container": {
                "kind": self.container.kind.value,
                "members": [{"user": m.user, "org": m.org} for m in self.container.members],
            },
            "component": self.component,
            "creator": self.creator,
            "third_party_model": self.third_party_model,
            "data_class": self.data_class.value,
        }


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """Every org the asset touches, by name, and the asset itself."""

    orgs: Mapping[str, OrgSettings]
    asset: Asset

    def __post_init__(self) -> None:
        object.__setattr__(self, "orgs", MappingProxyType(dict(self.orgs)))
        for name, org in self.orgs.items():
            for service_id in sorted(org.services - SERVICE_IDS):
                raise PolicyError(
                    child(child("orgs", name), "services"),
                    f"unknown service ID {json.dumps(service_id)}",
                )
        self._check_membership()
        asset = self.asset
        entry = asset_type(asset.service_id)
        org = self.orgs[asset.org]
        if entry.client_side and not (org.cmk and org.hybrid):
            raise PolicyError(
                "asset.service_id",
                f"{entry.service_id} ({entry.name}) exists only in an org with cmk and hybrid on; "
                f"{asset.org} has cmk {json.dumps(org.cmk)}, hybrid {json.dumps(org.hybrid)}",
            )

    def _check_membership(self) -> None:
        asset = self.asset
        if asset.org not in self.orgs:
            raise PolicyError("asset.org", f"org {json.dumps(asset.org)} is not listed in orgs")
        org_of: dict[str, str] = {}
        if asset.owner is not None and asset.container.kind in _CHATS:
            org_of[asset.owner] = asset.org
        for position, member in enumerate(asset.container.members):
            path = index("asset.container.members", position)
            if member.org not in self.orgs:
                raise PolicyError(
                    f"{path}.org", f"org {json.dumps(member.org)} is not listed in orgs"
                )
            known = org_of.setdefault(member.user, member.org)
            if known != member.org:
                raise PolicyError(
                    f"{path}.org",
                    f"{member.user} is also listed with org {json.dumps(known)}"
                    + (
                        " (the asset's owner is in asset.org)" if member.user == asset.owner else ""
                    ),
                )
        creator = asset.creator
        if asset.component == CODE_SNIPPET and creator is not None and creator not in org_of:
            raise PolicyError("asset.creator", f"{creator} is not a member of the chat or channel")

    def org_of(self, user: str) -> str:
        """The org of a chat/channel member (the owner counts as one, in ``asset.org``)."""
        if user == self.asset.owner:
            return self.asset.org
        for member in self.asset.container.members:
            if member.user == user:
                return member.org
        raise KeyError(user)

    def to_json(self) -> dict[str, object]:
        """The request as JSON that :func:`parse_request` reads back to an equal request."""
        return {
            "orgs": {name: org.to_json() for name, org in self.orgs.items()},
            "asset": self.asset.to_json(),
        }


_CHATS = frozenset({ContainerKind.CHAT, ContainerKind.CHANNEL})
_ORG_FIELDS = ("services", "licensed_users", *ORG_FLAGS)
_ASSET_REQUIRED = ("service_id", "org", "owner_kind", "component")
_ASSET_OPTIONAL = ("owner", "container", "creator", "third_party_model", "data_class")


def _parse_org(value: object, path: str) -> OrgSettings:
    obj = read_object(value, path, required=("cmk",), optional=_ORG_FIELDS)
    services = []
    for position, item in enumerate(read_list(obj, "services", path)):
        item_path = index(child(path, "services"), position)
        service_id = read_str_item(item, item_path)
        if service_id not in SERVICE_IDS:
            raise PolicyError(item_path, f"unknown service ID {json.dumps(service_id)}")
        services.append(service_id)
    users = [
        read_str_item(item, index(child(path, "licensed_users"), position))
        for position, item in enumerate(read_list(obj, "licensed_users", path))
    ]
    flags = {name: read_bool(obj, name, path) for name in ORG_FLAGS}
    return OrgSettings(
        cmk=read_bool(obj, "cmk", path),
        services=frozenset(services),
        licensed_users=frozenset(users),
        **flags,
    )


def _parse_container(value: object) -> Container:
    path = "asset.container"
    obj = read_object(value, path, required=("kind",), optional=("members",))
    members = []
    listed = read_list(obj, "members", path)
    if len(listed) > MAX_MEMBERS:  # before reading 10^6 of them
        raise PolicyError(child(path, "members"), f"at most {MAX_MEMBERS} members")
    for position, item in enumerate(listed):
        item_path = index(child(path, "members"), position)
        member = read_object(item, item_path, required=("user", "org"))
        members.append(
            Member(read_str(member, "user", item_path), read_str(member, "org", item_path))
        )
    return Container(read_enum(ContainerKind, obj["kind"], child(path, "kind")), tuple(members))


def _parse_asset(value: object) -> Asset:
    path = "asset"
    obj = read_object(value, path, required=_ASSET_REQUIRED, optional=_ASSET_OPTIONAL)
    container = obj.get("container")
    return Asset(
        service_id=read_str(obj, "service_id", path),
        org=read_str(obj, "org", path),
        owner=read_optional_str(obj, "owner", path),
        owner_kind=read_enum(OwnerKind, obj["owner_kind"], "asset.owner_kind"),
        component=read_str(obj, "component", path),
        container=Container() if container is None else _parse_container(container),
        creator=read_optional_str(obj, "creator", path),
        third_party_model=read_bool(obj, "third_party_model", path),
        data_class=read_enum(DataClass, obj.get("data_class", "content"), "asset.data_class"),
    )


def parse_request(value: object) -> PolicyRequest:
    """Validate decoded JSON (``json.loads`` output, or a web framework's body) as a request."""
    obj = read_object(value, "", required=("orgs", "asset"))
    orgs = read_object(obj["orgs"], "orgs", optional=None)
    parsed = {}
    for name, settings in orgs.items():
        if not name:
            raise PolicyError("orgs", "an org name must not be empty")
        parsed[name] = _parse_org(settings, child("orgs", name))
    return PolicyRequest(parsed, _parse_asset(obj["asset"]))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_request_json(text: str | bytes) -> PolicyRequest:
    """Parse request JSON text; malformed JSON is a ``PolicyError`` on the field ``request``."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=JsonObject.from_pairs, parse_constant=_reject_constant
        )
    except UnicodeDecodeError:
        raise PolicyError("request", "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(
            "request", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise PolicyError("request", f"invalid JSON: {exc}") from None
    except RecursionError:
        raise PolicyError("request", "invalid JSON: nested too deeply") from None
    return parse_request(value)
