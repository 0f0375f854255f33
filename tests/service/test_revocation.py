"""Granular revocation through the Protector (docs/revocation.md, RV-1 to RV-6)."""

from __future__ import annotations

import pytest

from ownkey.audit import AuditAction
from ownkey.errors import AccessDenied
from ownkey.keys import KeyRef, RevocationRule
from tests.service._helpers import ANN, CY, DAY, HOUR, START, chat, make_node, single


def _denied(node, request, sealed: bytes) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDenied) as denied:
        node.protector.open(request, sealed)
    return denied.value.reason


def test_each_granularity_acts_on_the_very_next_call_even_when_cached() -> None:
    """RV-1, RV-2: org (whole key), service, scope, time window; lifting restores (RV-3)."""
    node = make_node()
    p = node.protector
    plain = {"chat-1": b"1", "chat-2": b"2", "rec": b"3"}
    sealed = {
        "chat-1": (chat("chat-1"), p.seal(chat("chat-1"), plain["chat-1"])),
        "chat-2": (chat("chat-2"), p.seal(chat("chat-2"), plain["chat-2"])),
        "rec": (single("0001", "video"), p.seal(single("0001", "video"), plain["rec"])),
    }
    for request, blob in sealed.values():  # warm the cache: every key is cached now
        p.open(request, blob)
    cases = [
        (RevocationRule(org="acme", scope="chat-1"), {"chat-1"}),
        (RevocationRule(org="acme", service_id="0008"), {"chat-1", "chat-2"}),
        (RevocationRule(org="acme", since=START, until=START + 1), {"chat-1", "chat-2", "rec"}),
        (RevocationRule(org="acme", since=START + HOUR), {"rec"}),  # the day epoch overlaps
        (RevocationRule(org="acme", until=START), set()),
        (RevocationRule(org="acme"), {"chat-1", "chat-2", "rec"}),
        (RevocationRule(org="globex"), {"chat-1", "chat-2"}),
    ]
    for rule, denied in cases:
        rule = node.admin.revoke(rule)
        for name, (request, blob) in sealed.items():
            if name in denied:
                assert _denied(node, request, blob) == "revocation_rule", (rule, name)
            else:
                assert p.open(request, blob) == plain[name], (rule, name)
        node.admin.lift(rule.rule_id)
        for name, (request, blob) in sealed.items():
            assert p.open(request, blob) == plain[name]


def test_a_rule_also_refuses_new_content_it_covers() -> None:
    """RV-2 on seal: no new content is sealed where its owner said no."""
    node = make_node()
    node.admin.revoke(RevocationRule(org="acme", scope="chat-1"))
    with pytest.raises(AccessDenied) as denied:
        node.protector.seal(chat("chat-1"), b"x")
    assert denied.value.reason == "revocation_rule"
    assert node.protector.open(chat("chat-2"), node.protector.seal(chat("chat-2"), b"x")) == b"x"


def test_either_orgs_revocation_blocks_both_sides_of_a_cross_org_chat() -> None:
    """RV-5: the chat's scope key needs both customer keys."""
    node = make_node()
    p = node.protector
    from_acme = p.seal(chat(sender=ANN), b"hi from acme")
    from_globex = p.seal(chat(sender="bo@globex.test", asset_id="m2"), b"hi from globex")
    for org in ("acme", "globex"):
        rule = node.admin.revoke(RevocationRule(org=org, scope="chat-1"))
        assert _denied(node, chat(sender=ANN), from_acme) == "revocation_rule"
        assert _denied(node, chat(sender="bo@globex.test", asset_id="m2"), from_globex) == (
            "revocation_rule"
        )
        node.admin.lift(rule.rule_id)
        assert p.open(chat(sender=ANN), from_acme) == b"hi from acme"
    # Disabling either key does the same (KL-7).
    node.admin.disable_key("customer:globex")
    assert _denied(node, chat(sender=ANN), from_acme) == "disabled"


def test_a_one_sided_chat_is_only_under_the_licensed_orgs_key() -> None:
    """globex has no licensed member: its side is the platform key, its rules do not apply."""
    node = make_node()
    request = chat(globex=(), members=(ANN, CY))
    sealed = node.protector.seal(request, b"x")
    node.admin.revoke(RevocationRule(org="globex"))
    assert node.protector.open(request, sealed) == b"x"
    node.admin.revoke(RevocationRule(org="acme", scope="chat-1"))
    assert _denied(node, request, sealed) == "revocation_rule"


def test_the_platform_operator_can_revoke_the_platform_key_for_an_org() -> None:
    node = make_node()
    request = single("0001", "poll")  # excluded component: platform key
    sealed = node.protector.seal(request, b"x")
    node.admin.revoke(RevocationRule(org="acme"))
    assert node.protector.open(request, sealed) == b"x"  # not under acme's key
    node.admin.revoke(RevocationRule(org="acme", key=KeyRef.platform()))
    assert _denied(node, request, sealed) == "revocation_rule"


def test_preview_counts_scope_keys_by_service_and_changes_nothing() -> None:
    """RV-4."""
    node = make_node()
    p = node.protector
    for n in range(3):
        p.seal(chat(f"chat-{n}"), b"x")
    p.seal(single("0001", "video", scope="m-1"), b"x")
    p.seal(single("0001", "video", scope="m-2"), b"x")
    p.seal(single("0001", "poll", scope="m-3"), b"x")  # platform key: not acme's
    node.clock.advance(DAY)
    p.seal(chat("chat-0"), b"x")  # another epoch, another scope key
    whole = node.admin.preview(RevocationRule(org="acme"))
    assert whole.scope_keys_by_service == {"0001": 2, "0008": 4}
    assert whole.scope_keys == 6
    window = node.admin.preview(RevocationRule(org="acme", until=START + DAY))
    assert window.scope_keys_by_service == {"0001": 2, "0008": 3}
    assert node.admin.preview(RevocationRule(org="acme", scope="chat-0")).scope_keys == 2
    assert node.admin.preview(RevocationRule(org="initech")).scope_keys == 0
    assert node.admin.rules() == []
    assert p.open(chat("chat-1"), p.seal(chat("chat-1"), b"y")) == b"y"


def test_denials_are_recorded_with_the_rule() -> None:
    """RV-2, FS-1: every denial is in the audit log with its reason and rule id."""
    node = make_node()
    sealed = node.protector.seal(chat(), b"x")
    rule = node.admin.revoke(RevocationRule(org="globex", scope="chat-1"), actor="sec@globex")
    _denied(node, chat(), sealed)
    [event] = node.sink.of(AuditAction.ACCESS_DENIED)
    assert event.org == "globex"
    assert event.detail["rule_id"] == rule.rule_id
    assert event.detail["reason"] == "revocation_rule"
    assert event.detail["scope"] == "chat-1"
    [added] = node.sink.of(AuditAction.REVOCATION_ADD)
    assert (added.actor, added.detail["scope"]) == ("sec@globex", "chat-1")


def test_a_rule_added_on_one_node_acts_on_another_sharing_the_store() -> None:
    """Bounds: the next call on any node reading the shared rule store."""
    node = make_node()
    other = node.second_node()
    sealed = node.protector.seal(chat(), b"x")
    assert other.protector.open(chat(), sealed) == b"x"  # cached on the other node too
    node.admin.revoke(RevocationRule(org="acme", scope="chat-1"))
    with pytest.raises(AccessDenied):
        other.protector.open(chat(), sealed)
