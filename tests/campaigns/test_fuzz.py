"""Campaign 1: fuzzing every parser that meets outside input (issue 12).

make test: a few thousand inputs per target (seconds); make soak: >= 1,000,000 per target
(``OWNKEY_SOAK=1``; atheris, coverage-guided, via ``tests/campaigns/fuzz_atheris.py`` when it
is installed). Asserted: every input ran, 0 crashes, 0 500s, every API refusal a documented
(status, type), every envelope change refused with the one opaque error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

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
