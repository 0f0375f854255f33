"""Every route, enumerated from the app, answers only the kind of token it is for (issue 23:
a data-plane test sent an empty body and accepted 403 *or* 422, so a missing check passed).

Tokens are checked before the body is read or validated, so a wrong token's answer is the same
for any body: exactly 403 (a platform token on an admin route) or exactly 404 (another org's
admin token, the answer of an org that does not exist). A route that skipped the check would
answer 200, 422 or 404 instead, and fail here. A route added later is covered without a
change (the routes are the app's OpenAPI paths).
"""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _routes(api: Api, prefix: str) -> list[tuple[str, str]]:
    """(method, path) of every route the app documents under ``prefix`` (its OpenAPI paths)."""
    paths = api.client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, operations in sorted(paths.items())
        if path.startswith(prefix)
        for method in sorted(operations)
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _concrete(path: str) -> str:
    return _PARAM.sub(lambda m: "acme" if m.group(1) == "org" else "x", path)


def test_a_platform_token_opens_no_admin_route_and_another_org_sees_none(api: Api) -> None:
    routes = _routes(api, "/v1/orgs/{org}")
    assert len(routes) >= 25, routes  # the admin API, every method of every path
    before = api.client.get("/v1/orgs/acme/settings", headers=api.acme).json()
    for method, path in routes:
        url = _concrete(path)
        platform = api.client.request(method, url, headers=api.platform, json={})
        assert platform.status_code == 403, (method, path, platform.text)
        assert platform.json()["type"] == "urn:ownkey:problem:forbidden"
        other = api.client.request(method, url, headers=api.globex, json={})
        assert other.status_code == 404, (method, path, other.text)
        assert other.json()["detail"] == "no such org"
    assert api.client.get("/v1/orgs/acme/settings", headers=api.acme).json() == before


@pytest.mark.parametrize("prefix", ["/v1/seal", "/v1/open", "/v1/policy", "/v1/objects/"])
def test_an_org_admin_token_opens_no_data_plane_route(api: Api, prefix: str) -> None:
    routes = _routes(api, prefix)
    assert routes
    for method, path in routes:
        url = _concrete(path)
        for token in (api.acme, api.globex):
            answer = api.client.request(method, url, headers=token, json={})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["type"] == "urn:ownkey:problem:forbidden"
