"""The API's request and response bodies (pydantic), and their translation from service objects.

Bodies are strict (``extra="forbid"``): an unknown field is a 422 naming it, like the policy
contract. Binary payloads travel as standard base64 in JSON; large objects travel as raw bytes
(``/v1/objects``). Nothing here decides anything: each ``from_*`` copies fields.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from ownkey.catalog import SERVICE_IDS, ContainerKind, OwnerKind
from ownkey.errors import InvalidRequest
from ownkey.keys import CacheLimits, KeyDescription, MasterKey, RevocationRule, stored_time
from ownkey.policy import (
    MAX_ID_CHARS,
    MAX_TIME,
    ORG_FLAG_HELP,
    ORG_FLAGS,
    DataClass,
    check_id,
    check_service_id,
    plan_schema,
    request_schema,
)
from ownkey.service import (
    AssetPreview,
    Coverage,
    Org,
    OrgUpdate,
    RekeyPreview,
    User,
    backfill_notice,
)
from ownkey.storage import ApiToken, AssetRecord, PendingShred

__all__ = [
    "AssetIn",
    "AssetRequest",
    "Base64",
    "CacheLimitsOut",
    "ContainerIn",
    "CoverageOut",
    "DestructionIn",
    "JobIn",
    "JobOut",
    "JobsOut",
    "KeyCheckOut",
    "KeyIn",
    "KeyOut",
    "KeysOut",
    "MemberIn",
    "ObjectOut",
    "OpenIn",
    "OpenOut",
    "OrgSettingsOut",
    "OrgSettingsPatch",
    "OrgUpdateOut",
    "PendingShredOut",
    "PendingShredsOut",
    "PreviewOut",
    "RekeyPreviewOut",
    "RotateIn",
    "RotationOut",
    "RuleIn",
    "RuleOut",
    "RulesOut",
    "SealIn",
    "SealOut",
    "ServiceId",
    "UserIn",
    "UserOut",
    "UsersIn",
    "UsersOut",
    "decode_base64",
    "inline_schema",
    "plan_json_schema",
    "policy_request_json_schema",
]

#: Largest payload of ``/v1/seal`` and ``/v1/open`` (plaintext); larger content goes through
#: ``/v1/objects`` as a stream.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_ID_CHARS = MAX_ID_CHARS


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its ``#/$defs/...`` references replaced by the definitions, and without
    ``$schema``/``$defs``: embeddable in an OpenAPI document."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                merged = dict(defs[ref.removeprefix("#/$defs/")])
                merged.update({k: v for k, v in node.items() if k != "$ref"})
                return resolve(merged)
            return {k: resolve(v) for k, v in node.items() if k not in ("$schema", "$defs")}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _without_conditionals(node: Any) -> Any:
    """The schema without ``if``/``then`` refinements (kept by the engine, which says exactly
    what is wrong): generators of test data do not handle them."""
    if isinstance(node, dict):
        out = {k: _without_conditionals(v) for k, v in node.items() if k != "allOf"}
        kept = [part for part in node.get("allOf", []) if "if" not in part]
        if kept:
            out["allOf"] = _without_conditionals(kept)
        return out
    if isinstance(node, list):
        return [_without_conditionals(item) for item in node]
    return node


def policy_request_json_schema() -> dict[str, Any]:
    """The policy request (``orgs``, ``asset``; docs/policy.md) inlined; the engine also checks that
    a container of kind ``none`` has no members."""
    schema: dict[str, Any] = _without_conditionals(inline_schema(request_schema()))
    return schema


def plan_json_schema() -> dict[str, Any]:
    """The protection plan, inlined."""
    return inline_schema(plan_schema())


def _asset_schema() -> dict[str, Any]:
    asset: dict[str, Any] = policy_request_json_schema()["properties"]["asset"]
    return asset


def _shared(check: Callable[[str, Any], str]) -> Callable[[str], str]:
    """A rule of ``ownkey.policy`` (the one the CLI and the service layer apply too) as a
    pydantic validator: its refusal becomes the 422 naming the field."""

    def validate(value: str) -> str:
        try:
            return check("value", value)
        except InvalidRequest as exc:
            raise ValueError(str(exc).removeprefix("value: ")) from None

    return validate


_check_service_id = _shared(check_service_id)


ServiceId = Annotated[
    str,
    AfterValidator(_check_service_id),
    WithJsonSchema({"type": "string", "enum": list(SERVICE_IDS)}),
]
Text = Annotated[str, Field(min_length=1, max_length=_ID_CHARS), AfterValidator(_shared(check_id))]
Base64 = Annotated[
    str,
    # No length here: the body gate (api/_limits.py) bounds the body, and the 16 MiB of
    # /v1/seal is counted in decoded bytes (limit-exceeded), not in base64 characters.
    Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$"),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64",
            "pattern": "^[A-Za-z0-9+/]*={0,2}$",
            "description": "Standard base64; at most 16 MiB once decoded.",
        }
    ),
]


def decode_base64(value: str, field: str) -> bytes:
    """Standard base64 to bytes; InvalidRequest naming ``field`` if it is not."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "not standard base64") from None


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- data plane ------------------------------------------------------------------------------------


# The asset of a policy request (docs/policy.md), typed: its shape (fields, types, enums) is
# checked here, at the boundary; what the fields mean (the catalog's service rules, the id rule,
# the owner rule) stays with the policy engine, which names the field it refuses. The published
# schema is the policy request schema's own ``asset`` (``WithJsonSchema`` on the field below).
_Name = Annotated[str, Field(min_length=1)]
_Lax = Field(strict=False)  # a JSON string names an enum member; nothing else is read as one


class MemberIn(_Strict):
    user: _Name
    org: _Name


class ContainerIn(_Strict):
    kind: Annotated[ContainerKind, _Lax]
    members: list[MemberIn] = Field(default_factory=list)


class AssetIn(_Strict):
    service_id: str
    org: _Name
    owner: _Name | None = None
    owner_kind: Annotated[OwnerKind, _Lax]
    container: ContainerIn = Field(default_factory=lambda: ContainerIn(kind=ContainerKind.NONE))
    component: _Name
    creator: _Name | None = None
    third_party_model: bool = False
    data_class: Annotated[DataClass, _Lax] = DataClass.CONTENT

    def to_json(self) -> dict[str, Any]:
        """The asset as the client sent it (defaults not filled in): the policy request's
        ``asset``, so that the plan memo sees one key per request shape."""
        return self.model_dump(mode="json", exclude_unset=True)


#: The ``actor`` of a data-plane request: printable text, at most 320 characters (the service
#: checks it again: ``ownkey.service`` ``check_actor``).
Actor = Annotated[str, Field(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]


class AssetRequest(_Strict):
    """What the platform says about an asset: the policy's ``asset``, its scope and its id.

    ``orgs`` is not sent: ownkey reads every org's settings from its own directory.
    """

    asset: Annotated[AssetIn, WithJsonSchema(_asset_schema()), Field(title="Asset")]
    scope: Text = Field(description="The container: a channel, chat, meeting or user id.")
    asset_id: Text = Field(description="The asset's own id, bound into the ciphertext.")
    actor: Actor | None = Field(
        None,
        description="The end user on whose behalf the platform acts (not the asset's owner): "
        "recorded with every seal and open in the org's key-usage log, never bound.",
    )

    def to_request(self) -> dict[str, Any]:
        request = {"asset": self.asset.to_json(), "scope": self.scope, "asset_id": self.asset_id}
        if self.actor is not None:
            request["actor"] = self.actor
        return request


class SealIn(_Strict):
    request: AssetRequest
    data: Base64 = Field(description="The plaintext, standard base64 (at most 16 MiB).")


class ProtectionOut(_Strict):
    """What protects content just sealed, so that the platform can see what it got: the plan's
    verdict (``customer`` if any customer key is among its keys, else ``platform``), every key
    ref it needs (``customer:acme``, ``platform``) and the scope key it went under (hex)."""

    protection: str = Field(description="customer, platform or client_side.")
    keys: list[str] = Field(description="Key refs, e.g. customer:acme or platform.")
    scope_key_id: str = Field(description="The scope key's id (hex), as in the envelope header.")


class SealOut(_Strict):
    sealed: str = Field(description="The envelope, standard base64.")
    sealed_bytes: int
    protection: ProtectionOut | None = Field(
        default=None, description="The protection applied (always set by /v1/seal)."
    )


class OpenIn(_Strict):
    request: AssetRequest
    sealed: Base64 = Field(description="What /v1/seal returned, standard base64.")


class OpenOut(_Strict):
    data: str = Field(description="The plaintext, standard base64.")


class ObjectOut(_Strict):
    asset_id: str
    org: str
    service_id: str
    scope: str
    component: str
    size: int
    sealed_size: int
    created_at_ms: int
    protection: ProtectionOut | None = Field(
        default=None, description="The protection applied (set by PUT, not by GET)."
    )

    @classmethod
    def of(cls, record: AssetRecord) -> ObjectOut:
        return cls(
            asset_id=record.asset_id,
            org=record.org,
            service_id=record.service_id,
            scope=record.scope,
            component=record.context.get("component", ""),
            size=record.size,
            sealed_size=record.sealed_size,
            created_at_ms=record.created_at_ms,
        )


# -- settings and users ----------------------------------------------------------------------------


class CacheLimitsOut(_Strict):
    """The node's scope-key cache limits (settings of the deployment, the same for every org)."""

    max_age_seconds: float
    refresh_after_seconds: float
    max_uses: int
    max_entries: int

    @classmethod
    def of(cls, limits: CacheLimits) -> CacheLimitsOut:
        return cls(
            max_age_seconds=limits.max_age,
            refresh_after_seconds=limits.refresh_after,
            max_uses=limits.max_uses,
            max_entries=limits.max_entries,
        )


class OrgSettingsOut(_Strict):
    """An org's settings; one boolean per row of :data:`~ownkey.policy.ORG_FLAGS`."""

    name: str
    cmk: bool
    services: list[str]
    large_org: bool = Field(description=ORG_FLAG_HELP["large_org"])
    log_index_encryption: bool = Field(description=ORG_FLAG_HELP["log_index_encryption"])
    compliance_archival: bool = Field(description=ORG_FLAG_HELP["compliance_archival"])
    advanced_chat_encryption: bool = Field(description=ORG_FLAG_HELP["advanced_chat_encryption"])
    hybrid: bool = Field(description=ORG_FLAG_HELP["hybrid"])
    licensed_users: int
    revision: int
    created_at: float
    changed_at: float
    cache: CacheLimitsOut

    @classmethod
    def of(cls, org: Org, limits: CacheLimits) -> OrgSettingsOut:
        return cls(**org.to_json(), cache=CacheLimitsOut.of(limits))


class OrgSettingsPatch(_Strict):
    """Only the fields given change. ``enable``/``disable`` add or remove services; one
    optional boolean per row of :data:`~ownkey.policy.ORG_FLAGS`."""

    cmk: bool | None = None
    enable: list[ServiceId] = Field(default_factory=list, max_length=64)
    disable: list[ServiceId] = Field(default_factory=list, max_length=64)
    large_org: bool | None = Field(None, description=ORG_FLAG_HELP["large_org"])
    log_index_encryption: bool | None = Field(
        None, description=ORG_FLAG_HELP["log_index_encryption"]
    )
    compliance_archival: bool | None = Field(None, description=ORG_FLAG_HELP["compliance_archival"])
    advanced_chat_encryption: bool | None = Field(
        None, description=ORG_FLAG_HELP["advanced_chat_encryption"]
    )
    hybrid: bool | None = Field(None, description=ORG_FLAG_HELP["hybrid"])

    def flags(self) -> dict[str, bool]:
        """The flags given, by name."""
        return {name: value for name in ORG_FLAGS if (value := getattr(self, name)) is not None}


class OrgUpdateOut(_Strict):
    settings: OrgSettingsOut
    now_customer: list[str] = Field(description="Services whose new content moved to the CK.")
    now_platform: list[str] = Field(description="Services whose new content left the CK.")
    notice: str | None = Field(
        None,
        description="What turning CMK on does not do: content sealed before was readable by the "
        "platform, and copies made earlier still open it until a rekey.",
    )

    @classmethod
    def of(cls, update: OrgUpdate, limits: CacheLimits) -> OrgUpdateOut:
        return cls(
            settings=OrgSettingsOut.of(update.org, limits),
            now_customer=list(update.now_customer),
            now_platform=list(update.now_platform),
            notice=backfill_notice(update.now_customer),
        )


UserId = Annotated[str, Field(min_length=1, max_length=320, pattern=r"^\S+$")]


class UserOut(_Strict):
    user: str
    licensed: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(user=user.user, licensed=user.licensed)


class UsersOut(_Strict):
    users: list[UserOut]


class UsersIn(_Strict):
    users: list[UserId] = Field(min_length=1, max_length=1000)
    licensed: bool = False


class UserIn(_Strict):
    licensed: bool


# -- keys ------------------------------------------------------------------------------------------


class KeyOut(_Strict):
    ref: str
    provider: str
    key_id: str
    version: str
    state: str
    created_at: float
    changed_at: float
    destroy_at: float | None

    @classmethod
    def of(cls, key: MasterKey) -> KeyOut:
        return cls(
            ref=str(key.ref),
            provider=key.provider,
            key_id=key.key_id,
            version=key.version,
            state=key.state.value,
            created_at=key.created_at,
            changed_at=key.changed_at,
            destroy_at=key.destroy_at,
        )


class KeysOut(_Strict):
    keys: list[KeyOut]


class KeyIn(_Strict):
    """Create the org's key in a provider (no ``key_id``), or register an existing one."""

    provider: Annotated[str, Field(min_length=1, max_length=64)] = "local"
    key_id: Annotated[str, Field(min_length=1, max_length=2048)] | None = None


class KeyCheckOut(_Strict):
    key: KeyOut
    manager_state: str = Field(description="What the key manager says now.")
    primary_version: str
    versions: list[str]
    round_trip: bool = Field(description="A random probe wrapped and unwrapped under the key.")

    @classmethod
    def of(cls, key: MasterKey, description: KeyDescription) -> KeyCheckOut:
        return cls(
            key=KeyOut.of(key),
            manager_state=description.state.value,
            primary_version=description.primary_version,
            versions=list(description.versions),
            round_trip=True,
        )


class RotateIn(_Strict):
    rewrap: bool = Field(True, description="Re-wrap existing scope keys now (no content touched).")


class RotationOut(_Strict):
    """The rotated key, and the re-wrap job of its scope keys (null with ``rewrap: false``):
    the answer comes at once, the job runs in the background (``GET /jobs/{job_id}``)."""

    key: KeyOut
    job: JobOut | None


class DestructionIn(_Strict):
    waiting_period_days: float | None = Field(
        default=None, gt=0, le=3650, description="Default: the deployment's (7 days)."
    )


# -- revocation ------------------------------------------------------------------------------------


class RuleIn(_Strict):
    """Revoke the org's customer key for what the fields select (all of it when none is set)."""

    service_id: ServiceId | None = None
    scope: Text | None = None
    since: float | None = Field(default=None, ge=0, le=MAX_TIME, description="Unix seconds.")
    until: float | None = Field(default=None, ge=0, le=MAX_TIME, description="Unix seconds.")
    note: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _window(self) -> RuleIn:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self

    def rule(self, org: str) -> RevocationRule:
        return RevocationRule(
            org=org,
            service_id=self.service_id,
            scope=self.scope,
            since=self.since,
            until=self.until,
            note=self.note,
        )


#: A rule's time as stored: Unix seconds, or ``"inf"``/``"-inf"``/``"nan"`` (JSON has no such
#: number) for a rule stored by an older version; never ``null`` for a time that is set.
StoredTime = float | Literal["inf", "-inf", "nan"] | None


class RuleOut(_Strict):
    rule_id: str
    org: str
    key: str
    service_id: str | None
    scope: str | None
    since: StoredTime
    until: StoredTime
    created_at: float
    actor: str | None
    note: str
    valid: bool = Field(
        description="False for a rule stored by an older version with a time that cannot be "
        "read: it is enforced over its whole scope, its time window ignored, until lifted."
    )
    problem: str | None = Field(description="What is wrong with such a rule; null when valid.")

    @classmethod
    def of(cls, rule: RevocationRule) -> RuleOut:
        record = rule.to_record()
        record["since"], record["until"] = stored_time(rule.since), stored_time(rule.until)
        return cls(key=record.pop("key_ref"), valid=rule.valid, problem=rule.problem, **record)


class RulesOut(_Strict):
    rules: list[RuleOut]


class PreviewOut(_Strict):
    """What a rule would deny if it were added now; nothing is changed. The ``*_by_service``
    maps have the same keys: every service with a scope key the rule selects."""

    scope_keys: int = Field(description="Scope keys the rule would deny.")
    scope_keys_by_service: dict[str, int]
    assets: int = Field(description="Stored assets (the asset store's) under those scope keys.")
    assets_by_service: dict[str, int]
    bytes: int = Field(description="Plaintext bytes of those stored assets.")
    bytes_by_service: dict[str, int]

    @classmethod
    def of(cls, preview: AssetPreview) -> PreviewOut:
        services = preview.services
        return cls(
            scope_keys=preview.scope_keys,
            scope_keys_by_service={s: preview.scope_keys_by_service.get(s, 0) for s in services},
            assets=preview.assets,
            assets_by_service={s: preview.assets_by_service.get(s, 0) for s in services},
            bytes=preview.bytes,
            bytes_by_service={s: preview.bytes_by_service.get(s, 0) for s in services},
        )


# -- coverage, jobs, tokens ------------------------------------------------------------------------


class ScopeKeyCounts(_Strict):
    customer: int
    platform: int
    shredded: int


class ServiceCoverageOut(_Strict):
    service_id: str
    name: str
    enabled: bool
    protection: str
    why: str
    scope_keys: ScopeKeyCounts
    assets: int
    asset_bytes: int


class CoverageKeyOut(_Strict):
    ref: str
    provider: str
    state: str
    version: str


class CoverageOut(_Strict):
    org: str
    cmk: bool
    key: CoverageKeyOut | None
    users: int
    licensed_users: int
    revocation_rules: int
    services: list[ServiceCoverageOut]

    @classmethod
    def of(cls, coverage: Coverage) -> CoverageOut:
        return cls.model_validate(coverage.to_json())


class JobIn(_Strict):
    """``rewrap``: re-wrap the org's scope keys under its key's newest version. ``backfill``:
    move the org's scope keys of ``services`` to its customer key (``enable``) or back.
    ``rekey``: re-encrypt the org's stored assets (of at most one service in ``services``, or
    one ``scope``) under fresh scope keys, then make the old ones pending shred, due after the
    destruction waiting period, unless ``shred_old`` is false. ``shred``: carry out the org's
    pending shreds that are due."""

    kind: Literal["rewrap", "backfill", "rekey", "shred"]
    services: list[ServiceId] = Field(default_factory=list, max_length=64)
    enable: bool = True
    scope: str | None = Field(None, min_length=1, max_length=1024)
    shred_old: bool = True


class JobOut(_Strict):
    job_id: str
    kind: str
    org: str | None
    params: dict[str, Any]
    state: str
    total: int
    done: int
    failed: int
    error: str | None
    node: str | None = Field(
        None, description="The node holding the job's lease (null: none; any node takes it over)."
    )
    lease_until: float | None = Field(None, description="Unix seconds the lease lasts until.")


class JobsOut(_Strict):
    jobs: list[JobOut]


class ShredCandidateOut(_Strict):
    scope_key_id: str
    service_id: str
    scope: str
    epoch_start: int
    assets_moved: int = Field(description="Stored assets the job moves off this scope key.")
    bytes_moved: int = Field(description="Their plaintext bytes.")


class RekeyPreviewOut(_Strict):
    """What a rekey job would make pending shred, and when at the earliest; nothing changed.

    Content sealed under those scope keys outside the asset store (``/v1/seal``) is not moved
    and cannot be counted: ``warning`` says so whenever a scope key would be shredded."""

    org: str
    shred_old: bool
    waiting_period: float = Field(description="Seconds between the job's end and the shred.")
    due_at: float | None = Field(description="Unix seconds, at the earliest; null: no shred.")
    scope_keys: list[ShredCandidateOut]
    assets_moved: int
    bytes_moved: int
    warning: str | None

    @classmethod
    def of(cls, preview: RekeyPreview) -> RekeyPreviewOut:
        return cls.model_validate(preview.to_json())


class PendingShredOut(_Strict):
    scope_key_id: str
    org: str
    reason: str
    job_id: str | None
    state: str = Field(description="pending, cancelled or shredded.")
    due_at: float = Field(description="Unix seconds: shredded by a shred job from then on.")
    created_at: float
    changed_at: float

    @classmethod
    def of(cls, shred: PendingShred) -> PendingShredOut:
        return cls.model_validate(shred.to_json())


class PendingShredsOut(_Strict):
    shreds: list[PendingShredOut]


class TokenOut(_Strict):
    token_id: str
    kind: str
    org: str | None
    created_at_ms: int

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            token_id=token.token_id,
            kind=token.kind,
            org=token.org,
            created_at_ms=token.created_at_ms,
        )


RotationOut.model_rebuild()  # its job is a JobOut, defined after it
