"""Coverage asks the policy engine: one rule book for "which key protects what".

For every service and every combination of the org flags that change a decision, the coverage
report's protection of new content is what :func:`ownkey.policy.explain` decides for a licensed
owner's asset; the two disagreements a reviewer found (team chat with advanced chat encryption
but no customer key; ``customer_services`` ignoring advanced chat encryption) are pinned first.
"""

from __future__ import annotations

import itertools

import pytest

from ownkey.catalog import ASSET_TYPES, SERVICE_IDS
from ownkey.keys import KeyRef, KeyState, MasterKey
from ownkey.policy import OrgSettings
from ownkey.service import Org
from ownkey.service._coverage import customer_services, service_protection

USER = "ann@acme.test"


def _org(**settings: object) -> Org:
    return Org("acme", OrgSettings(**settings), 1, 0.0, 0.0)  # type: ignore[arg-type]


def _key() -> MasterKey:
    return MasterKey(
        ref=KeyRef.customer("acme"),
        provider="local",
        key_id="k1",
        version="1",
        state=KeyState.ENABLED,
        created_at=0.0,
        changed_at=0.0,
    )


def test_team_chat_with_advanced_chat_encryption_but_no_customer_key_is_platform() -> None:
    """Advanced chat encryption is a CMK feature: without cmk the engine applies the team-chat
    rules (platform key), and coverage must say the same, not "client_side"."""
    org = _org(cmk=False, advanced_chat_encryption=True, services=frozenset({"0008"}))
    _, protection, _ = service_protection(org, None, "0008")
    assert protection == "platform"


def test_customer_services_leaves_out_team_chat_under_advanced_chat_encryption() -> None:
    """With cmk and advanced chat encryption on, new team chat content is encrypted on the
    client, so it is not among the services under the customer key."""
    org = _org(cmk=True, advanced_chat_encryption=True, services=frozenset({"0008", "0001"}))
    assert "0008" not in customer_services(org)
    assert "0001" in customer_services(org)


@pytest.mark.parametrize(
    ("settings", "service_id", "protection"),
    [
        ({"cmk": True, "services": frozenset({"0001"})}, "0001", "customer"),
        ({"cmk": True}, "0001", "platform"),  # not enabled
        ({"cmk": False, "services": frozenset({"0001"})}, "0001", "platform"),
        ({"cmk": True}, "9999", "customer"),  # needs no enabling
        ({"cmk": True, "services": frozenset({"0006"})}, "0006", "platform"),  # no archival
        (
            {"cmk": True, "services": frozenset({"0006"}), "compliance_archival": True},
            "0006",
            "customer",
        ),
        ({"cmk": True, "services": frozenset({"0008"})}, "0008", "customer"),
        (
            {"cmk": True, "services": frozenset({"0008"}), "advanced_chat_encryption": True},
            "0008",
            "client_side",
        ),
        ({"cmk": True, "hybrid": True}, "1001", "client_side"),
        ({"cmk": True}, "1001", "platform"),  # hybrid chat needs hybrid on
    ],
)
def test_protection_is_the_engines_decision(
    settings: dict[str, object], service_id: str, protection: str
) -> None:
    assert service_protection(_org(**settings), _key(), service_id)[1] == protection


def test_a_customer_decision_without_a_registered_key_is_refused_sealing() -> None:
    org = _org(cmk=True, services=frozenset({"0001"}))
    assert service_protection(org, None, "0001")[1:] == (
        "platform",
        "no customer key registered: sealing is refused",
    )


def test_customer_services_agree_with_the_coverage_rows() -> None:
    """customer_services and the report's rows come from the same decision, flag by flag."""
    flags = ("large_org", "compliance_archival", "advanced_chat_encryption", "hybrid")
    for values in itertools.product((False, True), repeat=len(flags)):
        org = _org(
            cmk=True, services=frozenset(SERVICE_IDS), **dict(zip(flags, values, strict=True))
        )
        rows = {e.service_id: service_protection(org, _key(), e.service_id) for e in ASSET_TYPES}
        assert customer_services(org) == {s for s, row in rows.items() if row[1] == "customer"}
