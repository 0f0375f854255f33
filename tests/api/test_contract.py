"""Contract tests of the API: schemathesis against /openapi.json, in-process (ASGI).

Every operation gets up to 100 generated examples, valid and invalid (schemathesis' positive
and negative modes), sent with the token its route needs (admin routes as acme's admin; the
org in the path is acme's so that the calls reach the service layer). The checks: no server
error, status codes, content types and bodies as documented, invalid input rejected.
``positive_data_acceptance`` is off: a schema-valid request may still name things ownkey does
not know (an org outside the directory, an unregistered key), which is a documented 4xx;
``missing_required_header`` and ``ignored_auth`` are off because every case is sent with a valid
token (the 401s are tested in test_data_plane.py and test_admin.py); for the same reason a negative
case whose org or token we replaced skips ``negative_data_rejection`` (the repaired request may be
valid), while every other check still applies to it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
)

from ownkey.api import create_app
from ownkey.service import Runtime
from ownkey.storage import TokenStore
from tests.api.conftest import bearer, setup_orgs

EXAMPLES = 100
CALLS: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


def _build() -> tuple[Runtime, Any, dict[str, str], dict[str, str], Path]:
    """The app under test, built at import: schemathesis reads the schema at collection."""
    root = Path(tempfile.mkdtemp(prefix="ownkey-contract-"))
    home = root / "home"
    runtime = Runtime.open(home=home, env={"OWNKEY_HOME": str(home)})
    setup_orgs(runtime)
    tokens = TokenStore(runtime.database)
    app = create_app(runtime, tokens=tokens)
    platform = bearer(tokens.issue("platform")[1])
    admin = bearer(tokens.issue("org", org="acme")[1])
    return runtime, app, platform, admin, root


RUNTIME, APP, PLATFORM, ADMIN, ROOT = _build()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    APP.state.api.jobs.wait(30)
    RUNTIME.close()
    shutil.rmtree(ROOT, ignore_errors=True)
    if CALLS:
        fewest = min(CALLS, key=CALLS.__getitem__)
        print(
            f"\nschemathesis: {sum(CALLS.values())} calls over {len(CALLS)} operations; "
            f"{sum(1 for n in CALLS.values() if n >= EXAMPLES)} with >= {EXAMPLES}; "
            f"fewest {CALLS[fewest]} ({fewest}: its input space is exhausted first); "
            f"statuses {dict(sorted(STATUSES.items()))}"
        )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_contract(case: Any) -> None:
    repaired = False
    if "org" in (case.path_parameters or {}):
        repaired |= case.path_parameters["org"] != "acme"
        case.path_parameters["org"] = "acme"
    token = ADMIN if case.path.startswith("/v1/orgs/") else PLATFORM
    headers = dict(case.headers or {})
    repaired |= headers.get("Authorization") != token["Authorization"]
    headers.update(token)
    case.headers = headers
    excluded = [positive_data_acceptance, missing_required_header, ignored_auth]
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if negative and repaired:
        # We replaced the org in the path and the token, which may be exactly the parts that
        # schemathesis made invalid: the request we send is then valid and a 2xx is right.
        excluded.append(negative_data_rejection)
    # A generous read timeout: the verdict is the answer's contract, never how fast a loaded
    # machine served it (schemathesis' default of 10 s timed out under CI load).
    response = case.call_and_validate(excluded_checks=excluded, timeout=300)
    if case.method.upper() == case.operation.method.upper():  # not a wrong-method probe
        CALLS[f"{case.method.upper()} {case.path}"] += 1
    STATUSES[response.status_code] += 1
