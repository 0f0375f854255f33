"""One org's admin token can neither change nor use another org's provider settings (issue 28).

A key's provider settings are its own row (``kmip/customer:acme``). Through the API an org admin
names a provider; another org's row answers exactly as a provider nobody configured, and a
registration from the operator's template writes only the caller's own copy (removed again if
the registration fails).
"""

from __future__ import annotations

from ownkey.storage import SqlOrgDirectory
from tests.api.conftest import Api

ACME_ROW = "kmip/customer:acme"
ACME_SETTINGS = {"host": "kmip.acme.test", "port": "5696", "cert": "/acme/c.pem"}
TEMPLATE = {"host": "kmip.platform.test", "port": "5696"}


def _rows(api: Api) -> dict[str, dict[str, str]]:
    return {
        row.name: dict(row.settings) for row in SqlOrgDirectory(api.runtime.database).providers()
    }


def _seed(api: Api) -> None:
    store = SqlOrgDirectory(api.runtime.database)
    store.put_provider(ACME_ROW, "kmip", ACME_SETTINGS)
    store.put_provider("kmip", "kmip", TEMPLATE)


def test_another_orgs_provider_answers_as_one_nobody_configured(api: Api) -> None:
    _seed(api)
    answers = []
    for name in (ACME_ROW, "kmip/customer:nobody"):
        put = api.client.put(
            "/v1/orgs/globex/key", json={"provider": name, "key_id": "1"}, headers=api.globex
        )
        assert put.status_code == 409, put.text
        answers.append(put.json()["detail"].replace(name, "NAME"))
        assert "kmip.acme.test" not in put.text
    assert answers[0] == answers[1]
    create = api.client.put("/v1/orgs/globex/key", json={"provider": ACME_ROW}, headers=api.globex)
    assert create.status_code == 409, create.text
    assert _rows(api) == {ACME_ROW: ACME_SETTINGS, "kmip": TEMPLATE}
    assert api.client.get("/v1/orgs/globex/key", headers=api.globex).status_code == 404


def test_a_registration_from_the_template_writes_only_the_callers_own_row(api: Api) -> None:
    """The template lacks KMIP's certificates, so globex's registration fails: its copy goes,
    acme's row and the template stay as they were, and no setting's value is in the answer."""
    _seed(api)
    put = api.client.put(
        "/v1/orgs/globex/key", json={"provider": "kmip", "key_id": "1"}, headers=api.globex
    )
    assert put.status_code == 409, put.text
    assert "kmip.platform.test" not in put.text
    assert _rows(api) == {ACME_ROW: ACME_SETTINGS, "kmip": TEMPLATE}
