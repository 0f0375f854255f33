"""JSON Schemas (draft 2020-12) of the policy request and the protection plan, built from data.

Built rather than hand-written so that the published schema cannot list a service or component
that the engine does not know, or miss one it does. ``docs/policy-request.schema.json`` and
``docs/policy-plan.schema.json`` are these functions' output (a test checks). A schema cannot say
everything: that ``asset.org`` and each member's org are listed in ``orgs``, that a code snippet's
creator is a member, and that 1001 needs ``cmk`` and ``hybrid`` are checked by the parser only.
"""

from __future__ import annotations

from typing import Any

from ownkey.catalog import ASSET_TYPES, ContainerKind, OwnerKind
from ownkey.policy._flags import ORG_FLAG_HELP
from ownkey.policy._plan import KeyType, Protection
from ownkey.policy._request import DataClass

__all__ = ["plan_schema", "request_schema"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
_SERVICE_ID: dict[str, Any] = {
    "type": "string",
    "enum": sorted(entry.service_id for entry in ASSET_TYPES),
    "description": "A 4-digit service ID of the catalog, always a string.",
}


def _enum(values: list[str], description: str, default: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": values, "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def _org() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "cmk": {"type": "boolean", "description": "The org has a customer key."},
        "services": {
            "type": "array",
            "items": {"$ref": "#/$defs/service_id"},
            "default": [],
            "description": "Service IDs the org enabled for CK protection (9999 needs none).",
        },
        "licensed_users": {
            "type": "array",
            "items": _TEXT,
            "default": [],
            "description": "The org's CMK-licensed users.",
        },
    }
    for name, description in ORG_FLAG_HELP.items():
        properties[name] = {"type": "boolean", "default": False, "description": description}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["cmk"],
        "properties": properties,
    }


def _per_service_rules() -> list[dict[str, Any]]:
    rules = []
    for entry in ASSET_TYPES:
        rules.append(
            {
                "if": {
                    "properties": {"service_id": {"const": entry.service_id}},
                    "required": ["service_id"],
                },
                "then": {
                    "properties": {
                        "component": {"enum": [*entry.included, *entry.excluded]},
                        "owner_kind": {
                            "enum": [kind.value for kind in OwnerKind if kind in entry.owner_kinds]
                        },
                        "container": {
                            "properties": {
                                "kind": {
                                    "enum": [
                                        kind.value
                                        for kind in ContainerKind
                                        if kind in entry.containers
                                    ]
                                }
                            }
                        },
                    }
                },
            }
        )
    return rules


def _asset() -> dict[str, Any]:
    owner_rule = {
        "if": {"properties": {"owner_kind": {"const": "user"}}, "required": ["owner_kind"]},
        "then": {"required": ["owner"], "properties": {"owner": _TEXT}},
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["service_id", "org", "owner_kind", "component"],
        "properties": {
            "service_id": {"$ref": "#/$defs/service_id"},
            "org": {**_TEXT, "description": "The owner's org (chat: sender's; channel: owner's)."},
            "owner": {
                "type": ["string", "null"],
                "minLength": 1,
                "default": None,
                "description": "Owner, meeting organiser, chat sender or channel owner.",
            },
            "owner_kind": _enum([k.value for k in OwnerKind], "Who owns the asset."),
            "container": {"$ref": "#/$defs/container"},
            "component": {**_TEXT, "description": "One part of the asset; see docs/catalog.md."},
            "creator": {
                "type": ["string", "null"],
                "minLength": 1,
                "default": None,
                "description": "Author of a code snippet (defaults to the sender).",
            },
            "third_party_model": {
                "type": "boolean",
                "default": False,
                "description": "A third-party model provider processes this asset.",
            },
            "data_class": _enum(
                [d.value for d in DataClass], "Content, or log/index data made from it.", "content"
            ),
        },
        "allOf": [owner_rule, *_per_service_rules()],
    }


def request_schema() -> dict[str, Any]:
    """The JSON Schema of a policy request (``ownkey policy schema``)."""
    return {
        "$schema": _DRAFT,
        "title": "ownkey policy request",
        "description": "Input of `ownkey policy explain` and POST /v1/policy/explain.",
        "type": "object",
        "additionalProperties": False,
        "required": ["orgs", "asset"],
        "properties": {
            "orgs": {
                "type": "object",
                "propertyNames": {"minLength": 1},
                "additionalProperties": {"$ref": "#/$defs/org"},
                "description": "Every org the asset touches, by name.",
            },
            "asset": {"$ref": "#/$defs/asset"},
        },
        "$defs": {
            "service_id": _SERVICE_ID,
            "org": _org(),
            "member": {
                "type": "object",
                "additionalProperties": False,
                "required": ["user", "org"],
                "properties": {"user": _TEXT, "org": _TEXT},
            },
            "container": {
                "type": "object",
                "additionalProperties": False,
                "required": ["kind"],
                "default": {"kind": "none", "members": []},
                "properties": {
                    "kind": _enum([k.value for k in ContainerKind], "Where the asset lives."),
                    "members": {
                        "type": "array",
                        "items": {"$ref": "#/$defs/member"},
                        "default": [],
                    },
                },
                "allOf": [
                    {
                        "if": {"properties": {"kind": {"const": "none"}}},
                        "then": {"properties": {"members": {"maxItems": 0}}},
                    }
                ],
            },
            "asset": _asset(),
        },
    }


def _key(kind: KeyType, *, org: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"type": {"const": kind.value}}
    if org:
        properties["org"] = _TEXT
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a protection plan (``ownkey policy schema --plan``)."""
    return {
        "$schema": _DRAFT,
        "title": "ownkey protection plan",
        "description": "Output of `ownkey policy explain`: every key needed to open, and why.",
        "type": "object",
        "additionalProperties": False,
        "required": ["service_id", "protection", "keys", "third_party_egress", "reasons"],
        "properties": {
            "service_id": _SERVICE_ID,
            "protection": _enum(
                [p.value for p in Protection], "customer, platform, or client_side."
            ),
            "keys": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "description": "Sorted: customer keys by org, then platform, then hybrid.",
                "items": {
                    "oneOf": [
                        _key(KeyType.CUSTOMER, org=True),
                        _key(KeyType.PLATFORM, org=False),
                        _key(KeyType.HYBRID, org=True),
                    ]
                },
            },
            "third_party_egress": {
                "type": "boolean",
                "description": "A third-party model's copy has only its regular encryption.",
            },
            "reasons": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string"},
                "description": "Plain-language reasons, each 'rule-name: text'.",
            },
        },
    }
