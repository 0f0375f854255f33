"""Issue 12 (leftover): a revocation rule stored by an older version with a time nobody can read.

Before the fix the API showed ``since: inf`` or ``until: -inf`` as ``null`` (JSON has no inf),
which reads as "the whole scope", while the rule denied nothing: an epoch never ends after inf,
nor after 1796149629000 (milliseconds read as seconds, the year 58000). A rule whose window is
empty (``until`` before ``since``) could not even be loaded. Fail closed: such a rule is shown as
stored with ``valid: false`` and the ``problem``, and it denies its whole scope (key, service,
scope kept; the time window dropped) until it is lifted (docs/revocation.md RV-7).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest

from ownkey.keys import RevocationRule
from ownkey.storage import SqlRuleStore
from tests.api.conftest import Api, chat

INF = math.inf

#: (stored times, the field named, the value shown, a word of the problem)
OLD_RULES: list[tuple[dict[str, float], str, Any, str]] = [
    ({"since": 1796149629000.0}, "since", 1796149629000, "milliseconds"),
    ({"until": 1796149629000.0}, "until", 1796149629000, "milliseconds"),
    ({"since": INF}, "since", "inf", "finite"),
    ({"since": -INF}, "since", "-inf", "finite"),
    ({"until": -INF}, "until", "-inf", "finite"),
    ({"until": INF}, "until", "inf", "finite"),
    ({"since": -5.0}, "since", -5, "1970"),
    ({"since": 1_800_000_000.0, "until": 1_700_000_000.0}, "until", 1_700_000_000, "after since"),
]


def plant(api: Api, rule_id: str, scope: str | None = None, **times: float) -> None:
    """Store a rule as an older version did: past the checks of today's service door."""
    SqlRuleStore(api.runtime.database).add(
        RevocationRule(org="acme", scope=scope, rule_id=rule_id, created_at=1.0, **times)
    )
    api.runtime.invalidate()  # what the change notification does on every node


def _rules(api: Api) -> dict[str, dict[str, Any]]:
    answer = api.client.get("/v1/orgs/acme/revocations", headers=api.acme)
    assert answer.status_code == 200, answer.text
    return {rule["rule_id"]: rule for rule in answer.json()["rules"]}


@pytest.mark.parametrize(("times", "field", "shown", "word"), OLD_RULES)
def test_an_unreadable_rule_is_shown_as_stored_and_flagged(
    api: Api, times: dict[str, float], field: str, shown: Any, word: str
) -> None:
    plant(api, "r-old", **times)
    rule = _rules(api)["r-old"]
    assert rule[field] == shown, rule
    assert rule["valid"] is False
    assert field in rule["problem"], rule["problem"]
    assert word in rule["problem"], rule["problem"]
    assert "whole scope" in rule["problem"]


def test_a_rule_added_today_is_valid(api: Api) -> None:
    added = api.client.post(
        "/v1/orgs/acme/revocations", json={"scope": "x", "since": 1}, headers=api.acme
    ).json()
    assert (added["valid"], added["problem"]) == (True, None)
    assert _rules(api)[added["rule_id"]]["valid"] is True


def _open(api: Api, scope: str, sealed: str) -> int:
    answer = api.client.post(
        "/v1/open", json={"request": chat(scope=scope), "sealed": sealed}, headers=api.platform
    )
    return answer.status_code


def _seal(api: Api, scope: str) -> str:
    data = base64.b64encode(b"secret").decode()
    answer = api.client.post(
        "/v1/seal", json={"request": chat(scope=scope), "data": data}, headers=api.platform
    )
    assert answer.status_code == 200, answer.text
    sealed: str = answer.json()["sealed"]
    return sealed


@pytest.mark.parametrize(
    "times",
    [
        {"since": 1796149629000.0},
        {"since": INF},
        {"until": -INF},
        {"since": 1_800_000_000.0, "until": 1_700_000_000.0},
    ],
)
def test_an_unreadable_rule_denies_its_whole_scope_until_lifted(
    api: Api, times: dict[str, float]
) -> None:
    """Through the real open path: the scope it names is denied, another scope is not."""
    inside, outside = _seal(api, "chat-1"), _seal(api, "chat-2")
    plant(api, "r-old", scope="chat-1", **times)
    assert _open(api, "chat-1", inside) == 403
    assert _open(api, "chat-2", outside) == 200
    lifted = api.client.delete("/v1/orgs/acme/revocations/r-old", headers=api.acme)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["valid"] is False  # the lifted rule, as it was stored
    assert _open(api, "chat-1", inside) == 200
