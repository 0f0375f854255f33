"""Campaign 1: fuzzing every parser that meets outside input (issue 12).

make test: a few thousand inputs per target (seconds); make soak: >= 1,000,000 per target
(``OWNKEY_SOAK=1``; atheris, coverage-guided, via ``tests/campaigns/fuzz_atheris.py`` when it
is installed). Asserted: every input ran, 0 crashes, 0 500s, every API refusal a documented
(status, type), every envelope change refused with the one opaque error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.service import Runtime
from ownkey.storage import TokenStore
from tests.api.conftest import bearer, setup_orgs
from tests.campaigns import _targets as targets
from tests.campaigns._fuzz import Target, run
from tests.campaigns.conftest import size

PURE: dict[str, tuple[Target, Sequence[bytes]]] = {
    "envelope": (targets.envelope, [targets.ENVELOPE]),
    "policy-request": (targets.policy_request, targets.policy_seeds()),
    "protector-request": (targets.protector_request, targets.policy_seeds()),
    "ownkey-request-header": (targets.ownkey_request_header, targets.header_seeds()),
    "range-header": (targets.range_header, targets.RANGE_SEEDS),
    "cli-values": (targets.cli_values, targets.CLI_SEEDS),
}


def _check(report: object, executions: int) -> None:
    from tests.campaigns._fuzz import Report

    assert isinstance(report, Report)
    print(report.line())
    assert report.executions == executions
    assert report.crashes == [], report.crashes[:3]


@pytest.mark.parametrize("name", sorted(PURE))
def test_fuzz_pure_target(name: str) -> None:
    target, seeds = PURE[name]
    executions = size(3000, 1_000_000)
    _check(run(name, target, seeds, executions, seed=12), executions)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    home = tmp_path / "home"
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        setup_orgs(rt)
        rt.update_org("acme", enable=["0008"], actor="test")
        tokens = TokenStore(rt.database)
        _, platform = tokens.issue("platform")
        _, acme = tokens.issue("org", org="acme")
        with TestClient(create_app(rt, tokens=tokens), raise_server_exceptions=False) as test:
            yield test, {"platform": bearer(platform), "acme": bearer(acme)}


def test_fuzz_api_bodies_and_headers(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    test, tokens = client
    executions = size(250, 1_000_000)
    target = targets.api_target(test, tokens)
    _check(run("api", target, targets.api_seeds(), executions, seed=12), executions)


def _structured_bodies(
    test: TestClient, platform: dict[str, str]
) -> list[tuple[str, str, str, Any]]:
    """(method, path, token, valid body) of every JSON route the structured fuzzer mutates."""
    request = {
        "asset": targets.valid_policy_request()["asset"],
        "scope": "chat-1",
        "asset_id": "m1",
    }
    sealed = test.post(
        "/v1/seal", json={"request": request, "data": targets.b64(b"hi")}, headers=platform
    ).json()["sealed"]
    rule = {"service_id": "0008", "scope": "chat-1", "since": 1_700_000_000, "note": "n"}
    return [
        ("POST", "/v1/seal", "platform", {"request": request, "data": targets.b64(b"hi")}),
        ("POST", "/v1/open", "platform", {"request": request, "sealed": sealed}),
        ("POST", "/v1/policy/explain", "platform", targets.valid_policy_request()),
        ("POST", "/v1/orgs/acme/revocations/preview", "acme", rule),
        ("POST", "/v1/orgs/acme/revocations", "acme", {**rule, "scope": "chat-9"}),
        ("POST", "/v1/orgs/acme/key/destruction", "acme", {"waiting_period_days": 7}),
        ("POST", "/v1/orgs/acme/users", "acme", {"users": ["x@acme.test"], "licensed": True}),
        ("PUT", "/v1/orgs/acme/users/x@acme.test", "acme", {"licensed": False}),
        ("POST", "/v1/orgs/acme/jobs/preview", "acme", {"kind": "rekey", "services": ["0008"]}),
        ("PATCH", "/v1/orgs/acme/settings", "acme", {"large_org": False, "enable": ["0008"]}),
        ("POST", "/v1/orgs/acme/key/rotate", "acme", {}),
    ]


def test_fuzz_api_structured(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    """The byte mutator mostly breaks the JSON itself; this one changes one node of a valid body
    (a field's type, a lone surrogate, 10,001 list items, a key removed) so that the change
    reaches the models and the service layer. Every answer must be a documented one."""
    import random
    from collections import Counter

    from tests.campaigns._fuzz import mutate_json

    test, tokens = client
    routes = _structured_bodies(test, tokens["platform"])
    rng = random.Random(12)
    executions = size(400, 100_000)
    answers: Counter[str] = Counter()
    for _ in range(executions):
        method, path, who, body = rng.choice(routes)
        mutated = mutate_json(body, rng)
        answer = test.request(
            method,
            path,
            content=json.dumps(mutated).encode(),  # a lone surrogate travels as \\ud800
            headers={**tokens[who], "Content-Type": "application/json"},
        )
        status = answer.status_code
        assert status != 500, (method, path, mutated, answer.text[:300])
        if status >= 400:
            kind = str(answer.json().get("type", "")).removeprefix("urn:ownkey:problem:")
            assert (status, kind) in targets.DOCUMENTED, (status, kind, path, answer.text[:200])
            answers[f"{status} {kind}"] += 1
        else:
            answers[str(status)] += 1
    top = ", ".join(f"{name} {count}" for name, count in answers.most_common(6))
    print(f"fuzz api-structured: {executions} requests, 0 500s; {top}")
    assert sum(answers.values()) == executions
