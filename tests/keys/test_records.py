"""Key references, wrap contexts and selectors."""

from __future__ import annotations

import math

import pytest

from ownkey.envelope import EncryptionContext
from ownkey.errors import InvalidRequest
from ownkey.keys import KeyRef, ScopeIdentity, Selector, wrap_context
from ownkey.keys._revocation import RevocationRule

ACME, GLOBEX, PLATFORM = KeyRef.customer("acme"), KeyRef.customer("globex"), KeyRef.platform()


def test_key_refs_parse_print_and_sort_like_plans() -> None:
    refs = [KeyRef.hybrid("acme"), PLATFORM, GLOBEX, ACME]
    assert [str(ref) for ref in sorted(refs)] == [
        "customer:acme",
        "customer:globex",
        "platform",
        "hybrid:acme",
    ]
    for ref in refs:
        assert KeyRef.parse(str(ref)) == ref
    for bad in ("vendor:acme", "platform:acme", "customer", "customer:"):
        with pytest.raises(ValueError, match=r"kind|org"):
            KeyRef.parse(bad)


def _identity(**changes: object) -> ScopeIdentity:
    fields: dict[str, object] = {
        "orgs": ("acme", "globex"),
        "service_id": "0008",
        "scope": "chat:1",
        "epoch_start": 1_700_002_800,
        "epoch_seconds": 3600,
        "keys": (ACME, GLOBEX),
    }
    fields.update(changes)
    return ScopeIdentity(**fields)  # type: ignore[arg-type]


def test_wrap_context_names_the_use_and_nothing_secret() -> None:
    """SK-3: purpose, orgs, service, scope, epoch, scope key id; org for a customer key."""
    key_id = bytes(range(16))
    context = wrap_context(_identity(), key_id, ACME)
    assert context == {
        "purpose": "ownkey.scope-key",
        "orgs": "acme,globex",
        "org": "acme",
        "service_id": "0008",
        "scope": "chat:1",
        "epoch": "2023-11-14T23:00:00Z",
        "epoch_seconds": "3600",
        "scope_key_id": key_id.hex(),
    }
    assert "org" not in wrap_context(_identity(), key_id, PLATFORM)
    EncryptionContext(context)  # every name is legal in an encryption context


def test_long_values_go_as_digests() -> None:
    """SK-3: context values have size limits; long ones are sent as a digest."""
    context = wrap_context(_identity(scope="s" * 2000), b"\x01" * 16, ACME)
    assert context["scope"].startswith("sha256:")
    assert len(context["scope"]) == 7 + 64


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        (Selector(), True),
        (Selector(key=ACME), True),
        (Selector(key=PLATFORM), False),
        (Selector(org="globex"), True),
        (Selector(org="initech"), False),
        (Selector(service_id="0001"), False),
        (Selector(scope="chat:1"), True),
        (Selector(scope="chat:2"), False),
        (Selector(since=1_700_006_399), True),  # overlaps the epoch's last second
        (Selector(since=1_700_006_400), False),  # starts when the epoch ends
        (Selector(until=1_700_002_801), True),
        (Selector(until=1_700_002_800), False),  # ends when the epoch starts
        (Selector(since=1_700_000_000, until=1_700_003_000), True),
        (Selector(key_id=b"other"), False),
    ],
)
def test_selectors_match_epoch_overlap_and_fields(selector: Selector, selected: bool) -> None:
    """CA-4, RV-6: every set field must match; time windows select overlapping epochs."""
    assert selector.matches(_identity(), b"me") is selected


def test_a_time_window_must_be_ordered() -> None:
    """A selector refuses an empty window; so does a rule at the service door (``check``). A
    rule with one still loads, since an older version may have stored it (below)."""
    with pytest.raises(ValueError, match="since < until"):
        Selector(since=10, until=10)
    with pytest.raises(InvalidRequest, match="after since"):
        RevocationRule(org="acme", since=10, until=5).check()


@pytest.mark.parametrize(
    ("times", "word"),
    [
        ({"since": math.nan}, "finite"),
        ({"until": math.nan}, "finite"),
        ({"since": math.inf}, "finite"),
        ({"until": -math.inf}, "finite"),
        ({"since": 1_796_149_629_000.0}, "milliseconds"),
        ({"until": 1e300}, "9999"),
        ({"since": -5.0}, "1970"),
        ({"since": 1_700_010_000.0, "until": 1_700_000_000.0}, "after since"),
    ],
)
def test_an_unreadable_stored_rule_denies_its_whole_scope(
    times: dict[str, float], word: str
) -> None:
    """RV-7, fail closed: read literally, each of these denies nothing (no epoch
    ends after inf or nan); it is enforced without its window, and says so."""
    record = {"org": "acme", "scope": "chat:1", "rule_id": "r-old", **times}
    rule = RevocationRule.from_record(record)
    assert not rule.valid
    assert rule.problem is not None
    assert word in rule.problem
    assert "whole scope" in rule.problem
    assert rule.matches(_identity())
    assert rule.matches(_identity(epoch_start=0))
    assert not rule.matches(_identity(scope="chat:2"))  # its scope is kept
    assert rule.to_record()["since"] is times.get("since")  # stored back as it was
    with pytest.raises(InvalidRequest):
        rule.check()


def test_a_valid_rule_has_no_problem() -> None:
    rule = RevocationRule(org="acme", since=1_700_000_000, until=1_700_010_000)
    assert (rule.valid, rule.problem) == (True, None)
    assert rule.matches(_identity())
    assert not rule.matches(_identity(epoch_start=0))


def test_rules_revoke_their_own_orgs_key() -> None:
    """RV-1: the default key is the org's customer key; another org's key is refused."""
    assert RevocationRule(org="acme").wrapping_key == ACME
    assert RevocationRule(org="acme", key=PLATFORM).wrapping_key == PLATFORM
    with pytest.raises(ValueError, match="own org"):
        RevocationRule(org="acme", key=GLOBEX)
    with pytest.raises(ValueError, match="names the org"):
        RevocationRule(org="")
    rule = RevocationRule(org="acme", scope="chat:1", since=5.0, note="incident")
    assert rule.describe() == {
        "rule_id": "",
        "org": "acme",
        "key": "customer:acme",
        "scope": "chat:1",
        "since": "5.0",
        "note": "incident",
    }


def test_policy_and_keys_share_one_key_ref() -> None:
    """The engine's plan keys are the key layer's references: no conversion, one class."""
    import ownkey.keys
    import ownkey.policy

    assert ownkey.policy.KeyRef is ownkey.keys.KeyRef
    assert ownkey.policy.KeyType is ownkey.keys.KeyType
    plan = ownkey.policy.ProtectionPlan.of(
        "0001",
        [KeyRef.platform(), ACME],
        [ownkey.policy.Reason(ownkey.policy.Rule.CATALOG, "test")],
    )
    assert plan.keys == (ACME, PLATFORM)
    with pytest.raises(TypeError):
        KeyRef("customer", "acme")  # type: ignore[arg-type]
