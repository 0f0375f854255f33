"""Key administration: lifecycle through the registry and the provider, audited first."""

from __future__ import annotations

import dataclasses

import pytest

from ownkey.audit import AuditAction, Outcome
from ownkey.errors import (
    AccessDenied,
    AuditUnavailable,
    ConfigError,
    Conflict,
    InvalidRequest,
    KeyUnavailable,
    LifecycleError,
    NotFound,
)
from ownkey.keys import DestructionOutcome, KeyAdmin, KeyRef, KeyState, RevocationRule
from tests.keys._rig import ACME, DAY, GLOBEX, PLATFORM, make_rig


def test_an_illegal_transition_changes_nothing() -> None:
    """KL-2: refused before any audit event, provider call or registry change."""
    rig = make_rig()
    before = rig.admin.get(ACME)
    rig.sink.clear()
    calls = dict(rig.provider.calls)
    for change in (rig.admin.enable, rig.admin.cancel_destruction, rig.admin.destroy):
        with pytest.raises(LifecycleError):
            change(ACME)
    with pytest.raises(LifecycleError):
        rig.admin.schedule_destruction(ACME)  # must be disabled first
    assert rig.admin.get(ACME) == before
    assert rig.sink.events == []
    assert dict(rig.provider.calls) == calls


def test_waiting_period_has_a_floor_and_destroy_waits_for_it() -> None:
    """KL-4."""
    rig = make_rig()
    rig.admin.disable(ACME)
    # Below the floor is bad input (exit 2 / HTTP 422), not a lifecycle refusal (issue 12).
    with pytest.raises(InvalidRequest, match="at least"):
        rig.admin.schedule_destruction(ACME, waiting_period=DAY - 1)
    for absurd in (float("inf"), float("nan"), 1e25, -1.0):
        with pytest.raises(InvalidRequest, match="waiting_period"):
            rig.admin.schedule_destruction(ACME, waiting_period=absurd)
    pending = rig.admin.schedule_destruction(ACME)
    assert pending.state is KeyState.PENDING_DESTRUCTION
    assert pending.destroy_at == rig.clock() + 7 * DAY
    rig.clock.advance(7 * DAY - 1)
    with pytest.raises(LifecycleError, match="waiting period"):
        rig.admin.destroy(ACME)
    assert rig.admin.destroy_due() == []
    rig.clock.advance(1)
    [evidence] = rig.admin.destroy_due()
    assert evidence.key == ACME
    assert rig.admin.get(ACME).state is KeyState.DESTROYED


def test_cancel_leaves_the_key_disabled() -> None:
    """KL-5."""
    rig = make_rig()
    rig.admin.disable(ACME)
    rig.admin.schedule_destruction(ACME)
    assert rig.admin.cancel_destruction(ACME).state is KeyState.DISABLED
    assert rig.admin.get(ACME).destroy_at is None
    assert rig.admin.enable(ACME).state is KeyState.ENABLED


def test_destroy_shreds_every_scope_key_under_the_key_and_records_evidence() -> None:
    """KL-9: tombstones, provider destruction, evidence with count and digest."""
    rig = make_rig()
    under_acme = [rig.keys.for_seal(rig.identity(ACME, scope=f"s{n}")) for n in range(3)]
    shared = rig.keys.for_seal(rig.identity(ACME, GLOBEX, scope="x"))
    other = rig.keys.for_seal(rig.identity(GLOBEX, scope="y"))
    rig.admin.disable(ACME)
    rig.admin.schedule_destruction(ACME)
    rig.clock.advance(7 * DAY)
    evidence = rig.admin.destroy(ACME)
    assert evidence.scope_keys == 4
    for entry in [*under_acme, shared]:
        record = rig.store.get(entry.key.key_id)
        assert record is not None
        assert record.shredded
        assert record.wraps == ()  # the globex share of the shared one is gone too
    other_record = rig.store.get(other.key.key_id)
    assert other_record is not None
    assert not other_record.shredded
    assert rig.provider.calls["destroy"] == 1
    [shred] = rig.sink.of(AuditAction.SCOPE_KEY_SHRED)
    master = rig.admin.get(ACME)
    # The key manager's own answer is part of the evidence, hashed into the audit chain.
    assert evidence.key_manager.outcome is DestructionOutcome.DESTROYED
    assert shred.detail == {
        "scope_keys": "4",
        "ids_sha256": evidence.digest,
        "key_manager": "destroyed",
        "key_manager_statement": "the key manager destroyed the key",
        "key_manager.versions_left": "0",
        "provider": master.provider,
        "key_id": master.key_id,
    }
    with pytest.raises(LifecycleError):
        rig.admin.enable(ACME)


def test_a_new_key_may_follow_a_destroyed_one_but_not_replace_a_live_one() -> None:
    """KL-11."""
    rig = make_rig()
    with pytest.raises(LifecycleError, match="already has a key"):
        rig.admin.create(ACME)
    rig.admin.disable(ACME)
    rig.admin.schedule_destruction(ACME)
    rig.clock.advance(7 * DAY)
    old = rig.admin.destroy(ACME)
    assert old.scope_keys == 0
    new = rig.admin.create(ACME)
    assert new.state is KeyState.ENABLED
    with pytest.raises(InvalidRequest, match="client-side"):
        rig.admin.create(KeyRef.hybrid("acme"))


def test_every_change_is_recorded_before_it_is_applied() -> None:
    """KL-12: no record, no change; a failed provider call is followed by a failed event."""
    rig = make_rig()
    rig.sink.failing = True
    with pytest.raises(AuditUnavailable):
        rig.admin.disable(ACME)
    assert rig.admin.get(ACME).state is KeyState.ENABLED
    assert rig.provider.calls["disable"] == 0
    with pytest.raises(AuditUnavailable):
        rig.admin.revoke(RevocationRule(org="acme"))
    assert rig.admin.rules() == []
    with pytest.raises(AuditUnavailable):
        rig.admin.create(KeyRef.customer("initech"))
    assert rig.deps.registry.get(KeyRef.customer("initech")) is None

    rig.sink.failing = False
    rig.provider.fail_next("disable", KeyUnavailable("timeout"))
    with pytest.raises(KeyUnavailable):
        rig.admin.disable(ACME)
    assert rig.admin.get(ACME).state is KeyState.ENABLED
    outcomes = [event.outcome for event in rig.sink.of(AuditAction.KEY_DISABLE)]
    assert outcomes == [Outcome.OK, Outcome.FAILED]
    rig.admin.disable(ACME)
    [*_, event] = rig.sink.of(AuditAction.KEY_DISABLE)
    assert (event.org, event.key, event.detail["from_state"]) == (
        "acme",
        "customer:acme",
        "enabled",
    )


def test_register_checks_the_key_with_a_round_trip() -> None:
    """KL-13."""
    rig = make_rig(keys=(PLATFORM,))
    key_id = rig.provider.create_key(label="acme's own")
    rig.provider.fail_next("unwrap", AccessDenied("key policy forbids", reason="provider_denied"))
    with pytest.raises(AccessDenied):
        rig.admin.register(ACME, provider="local", key_id=key_id, operator=True)
    assert rig.deps.registry.get(ACME) is None
    master = rig.admin.register(
        ACME, provider="local", key_id=key_id, actor="ann@acme.test", operator=True
    )
    assert (master.key_id, master.state) == (key_id, KeyState.ENABLED)
    [event] = rig.sink.of(AuditAction.KEY_REGISTER)
    assert event.actor == "ann@acme.test"
    with pytest.raises(AccessDenied):  # an unknown key: the describe is denied (and audited)
        rig.admin.register(GLOBEX, provider="local", key_id="nope", operator=True)
    with pytest.raises(ConfigError, match="no key provider"):
        rig.admin.register(GLOBEX, provider="hsm", key_id="nope", operator=True)
    disabled = rig.provider.create_key(label="off")
    rig.provider.disable(disabled)
    with pytest.raises(Conflict, match="disabled"):
        rig.admin.register(GLOBEX, provider="local", key_id=disabled, operator=True)


def test_a_key_id_is_bound_to_one_reference_and_control_is_proven() -> None:
    """KL-14, KL-15 (issue 11, finding 1): no org can take another's key or the platform's."""
    rig = make_rig(keys=(ACME, PLATFORM))
    acme_key = rig.admin.get(ACME).key_id
    platform_key = rig.admin.get(PLATFORM).key_id
    for taken in (acme_key, platform_key):
        for operator in (False, True):
            with pytest.raises(Conflict):
                rig.admin.register(GLOBEX, provider="local", key_id=taken, operator=operator)
    assert rig.deps.registry.get(GLOBEX) is None
    # an external key whose manager does not bind the org context: the operator only
    unbound = rig.provider.create_key(label="globex's own")
    with pytest.raises(AccessDenied, match="only the operator"):
        rig.admin.register(GLOBEX, provider="local", key_id=unbound)
    assert rig.deps.registry.get(GLOBEX) is None
    # ... unless its own policy refuses another org's context: then it proves control
    rig.provider.fail_next("wrap", AccessDenied("key policy: org must be globex"))
    master = rig.admin.register(GLOBEX, provider="local", key_id=unbound)
    assert master.key_id == unbound
    [describe] = [e for e in rig.sink.of(AuditAction.DESCRIBE) if e.org == "globex"][-1:]
    assert describe.detail["key_id"] == unbound  # AUD-1: describe calls are audited


def test_a_key_of_an_embedded_store_registers_only_for_the_reference_it_was_made_for() -> None:
    """KL-15: the label ownkey gave the key at creation is the proof of control."""
    from ownkey.providers import LocalKeyProvider

    rig = make_rig(keys=(PLATFORM,))
    store = LocalKeyProvider()
    deps = dataclasses.replace(rig.deps, providers={"local": rig.provider, "mem": store})
    admin = KeyAdmin(
        deps, default_provider="mem", min_waiting_period=DAY, default_waiting_period=DAY
    )
    mine = store.create_key(label=str(GLOBEX))
    theirs = store.create_key(label=str(ACME))
    with pytest.raises(AccessDenied, match="not created for"):
        admin.register(GLOBEX, provider="mem", key_id=theirs, operator=True)
    assert admin.register(GLOBEX, provider="mem", key_id=mine).key_id == mine


def test_rotate_only_an_enabled_key() -> None:
    """KL-10."""
    rig = make_rig()
    assert rig.admin.rotate(ACME).version == "v2"
    rig.admin.disable(ACME)
    with pytest.raises(LifecycleError):
        rig.admin.rotate(ACME)


def test_rules_get_ids_and_lift_by_id() -> None:
    rig = make_rig()
    rule = rig.admin.revoke(RevocationRule(org="acme", scope="chat:1"), actor="sec@acme.test")
    assert rule.rule_id.startswith("r-")
    assert rule.created_at == rig.clock()
    assert rig.admin.rules("acme") == [rule]
    assert rig.admin.rules("globex") == []
    assert rig.admin.lift(rule.rule_id, actor="sec@acme.test") == rule
    with pytest.raises(NotFound):
        rig.admin.lift(rule.rule_id)
    actions = [event.action for event in rig.sink.events if event.actor == "sec@acme.test"]
    assert actions == [AuditAction.REVOCATION_ADD, AuditAction.REVOCATION_REMOVE]


def test_get_unknown_key_is_not_found() -> None:
    rig = make_rig(keys=(PLATFORM,))
    with pytest.raises(NotFound):
        rig.admin.get(ACME)
    assert [master.ref for master in rig.admin.list_keys()] == [PLATFORM]
