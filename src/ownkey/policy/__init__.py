"""Policy engine: which keys protect an asset, and why. Pure core.

The front door is :func:`explain`: a :class:`PolicyRequest` (parsed from request JSON
by :func:`parse_request` or :func:`parse_request_json`) in, a :class:`ProtectionPlan` out, whose
``to_json()`` is the contract's answer. Bad requests raise :class:`~ownkey.errors.PolicyError`
naming the field.
"""

from ownkey.policy._engine import explain
from ownkey.policy._flags import ORG_FLAG_HELP, ORG_FLAGS
from ownkey.policy._identity import MAX_EMAIL_CHARS, canonical_email
from ownkey.policy._plan import KeyRef, KeyType, Protection, ProtectionPlan, Reason, Rule
from ownkey.policy._request import (
    MAX_REQUEST_BYTES,
    Asset,
    Container,
    DataClass,
    Member,
    OrgSettings,
    PolicyRequest,
    parse_request,
    parse_request_json,
)
from ownkey.policy._schema import plan_schema, request_schema
from ownkey.policy._values import (
    MAX_DURATION,
    MAX_ID_CHARS,
    MAX_NOTE_CHARS,
    MAX_TIME,
    MIN_TIME,
    check_duration,
    check_id,
    check_note,
    check_org,
    check_service_id,
    check_time,
    check_window,
    parse_duration,
    parse_time,
)

__all__ = [
    "MAX_DURATION",
    "MAX_EMAIL_CHARS",
    "MAX_ID_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_REQUEST_BYTES",
    "MAX_TIME",
    "MIN_TIME",
    "ORG_FLAGS",
    "ORG_FLAG_HELP",
    "Asset",
    "Container",
    "DataClass",
    "KeyRef",
    "KeyType",
    "Member",
    "OrgSettings",
    "PolicyRequest",
    "Protection",
    "ProtectionPlan",
    "Reason",
    "Rule",
    "canonical_email",
    "check_duration",
    "check_id",
    "check_note",
    "check_org",
    "check_service_id",
    "check_time",
    "check_window",
    "explain",
    "parse_duration",
    "parse_request",
    "parse_request_json",
    "parse_time",
    "plan_schema",
    "request_schema",
]
