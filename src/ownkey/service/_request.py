"""The Protector's request: the policy request (docs/policy.md), where the asset lives, its id.

``seal`` and ``open`` take the policy request (``orgs`` and ``asset``) with two more top-level
fields (and one optional) that the policy engine does not know:

- ``scope``: the container the asset belongs to (a channel id, a chat id, a meeting id, a user
  id); one scope key covers one scope per epoch, and revocations can target it;
- ``asset_id``: the asset's own id, bound into the ciphertext so that a sealed asset cannot be
  swapped for another one of the same scope;
- ``actor`` (optional): the end user on whose behalf the platform acts, kept apart from the
  asset's owner; recorded with every seal and open in the orgs' key-usage log, not bound.

The encryption context of the content is ``org``, ``service_id``, ``scope``, ``asset_id`` and
``component``: the platform passes the same request to open that it passed to seal. ``open``
does not consult the policy (content sealed under a customer key stays under it whatever the
policy says later), so it only needs the fields of that context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ownkey.envelope import ContextTemplate, EncryptionContext
from ownkey.errors import InvalidRequest
from ownkey.policy import MAX_ID_CHARS, check_id

__all__ = [
    "MAX_ID_CHARS",
    "AssetAddress",
    "ScopeAddress",
    "actor_of",
    "address_of",
    "asset_id_of",
    "check_actor",
    "policy_part",
    "scope_of",
]

_OWN_FIELDS = ("scope", "asset_id", "actor")
#: The longest ``actor`` (an e-mail address or a platform's user id).
MAX_ACTOR_CHARS = 320


@dataclass(frozen=True, slots=True)
class AssetAddress:
    """What the Protector reads from a request itself (the policy engine reads the rest)."""

    service_id: str
    org: str
    component: str
    scope: str
    asset_id: str
    chat_orgs: tuple[str, ...]
    context: EncryptionContext


def _text(obj: Mapping[str, Any], name: str, field: str) -> str:
    """The one id rule of ``ownkey.policy.check_id`` (no NUL, no lone surrogate: these values
    are bound into the context as UTF-8); a refusal is :class:`InvalidRequest` naming ``field``."""
    return check_id(field, obj.get(name))


def _chat_orgs(asset: Mapping[str, Any]) -> tuple[str, ...]:
    """The orgs of a chat's members, each checked: they become part of the scope key's
    identity, so a member whose org is missing, empty or not text is refused, never skipped."""
    container = asset.get("container")
    if not isinstance(container, Mapping) or container.get("kind") != "chat":
        return ()
    members = container.get("members")
    if not isinstance(members, list):
        return ()
    orgs = set()
    for index, member in enumerate(members):
        field = f"asset.container.members[{index}].org"
        if not isinstance(member, Mapping):
            raise InvalidRequest(f"asset.container.members[{index}]", "must be an object")
        orgs.add(_text(member, "org", field))
    return tuple(sorted(orgs))


@dataclass(frozen=True, slots=True)
class ScopeAddress:
    """A request's address without its asset id: what every asset of one container shares.

    Parsed once per container (the prepared path keeps it); ``template`` encodes the content
    context of one asset of the container from its id (:meth:`context`).
    """

    service_id: str
    org: str
    component: str
    scope: str
    chat_orgs: tuple[str, ...]
    template: ContextTemplate

    def orgs(self, key_orgs: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The orgs taking part in a scope key of this address: the asset's org, the chat's
        member orgs, and the orgs of the plan's keys, sorted."""
        return tuple(sorted({self.org, *self.chat_orgs, *key_orgs}))


def scope_of(request: Mapping[str, Any]) -> ScopeAddress:
    """The address of ``request`` without its asset id; raises like :func:`address_of`."""
    if not isinstance(request, Mapping):
        raise InvalidRequest("request", "must be a JSON object")
    asset = request.get("asset")
    if not isinstance(asset, Mapping):
        raise InvalidRequest("asset", "required, an object")
    scope = _text(request, "scope", "scope")
    service_id = _text(asset, "service_id", "asset.service_id")
    org = _text(asset, "org", "asset.org")
    component = _text(asset, "component", "asset.component")
    template = ContextTemplate(
        {"org": org, "service_id": service_id, "scope": scope, "component": component},
        "asset_id",
    )
    return ScopeAddress(service_id, org, component, scope, _chat_orgs(asset), template)


def asset_id_of(request: Mapping[str, Any]) -> str:
    """The request's ``asset_id``, checked like every other id."""
    return _text(request, "asset_id", "asset_id")


def check_actor(value: object) -> str:
    """``value`` if it is a valid ``actor``: the end user on whose behalf the platform seals or
    opens (printable text, at most 320 characters), else :class:`InvalidRequest` on ``actor``.
    It is recorded in the orgs' key-usage log, never bound into the ciphertext."""
    if type(value) is str and 0 < len(value) <= MAX_ACTOR_CHARS and value.isprintable():
        return value
    if type(value) is not str:
        raise InvalidRequest("actor", "must be a string")
    if not value:
        raise InvalidRequest("actor", "must not be empty")
    if len(value) > MAX_ACTOR_CHARS:
        raise InvalidRequest("actor", f"at most {MAX_ACTOR_CHARS} characters")
    raise InvalidRequest("actor", "must be printable text")


def actor_of(request: Mapping[str, Any]) -> str | None:
    """The request's optional ``actor`` (see :func:`check_actor`)."""
    value = request.get("actor")
    return None if value is None else check_actor(value)


def check_asset_id(value: object) -> str:
    """``value`` if it is a valid asset id, else :class:`InvalidRequest` on ``asset_id``."""
    if type(value) is not str or not value or len(value) > MAX_ID_CHARS:
        return _text({"asset_id": value}, "asset_id", "asset_id")
    return value


def address_of(request: Mapping[str, Any]) -> AssetAddress:
    """The asset's address and content context, read from a Protector request.

    Raises :class:`InvalidRequest` naming the field when ``scope``, ``asset_id`` or the asset's
    ``service_id``, ``org`` or ``component`` is missing or not a string.
    """
    scope = scope_of(request)
    asset_id = asset_id_of(request)
    context = EncryptionContext(
        org=scope.org,
        service_id=scope.service_id,
        scope=scope.scope,
        asset_id=asset_id,
        component=scope.component,
    )
    return AssetAddress(
        scope.service_id,
        scope.org,
        scope.component,
        scope.scope,
        asset_id,
        scope.chat_orgs,
        context,
    )


def policy_part(request: Mapping[str, Any]) -> dict[str, Any]:
    """The policy request inside a Protector request (``scope`` and ``asset_id`` removed)."""
    return {name: value for name, value in request.items() if name not in _OWN_FIELDS}
