"""One table of org flags (``ownkey.policy.ORG_FLAGS``) and the five places that list them.

Each place is checked against the table, so a flag added to the table but missed in one of them
(a column, a request field, a schema property, a CLI option, an API field) fails here.
"""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

from ownkey.api._models import OrgSettingsOut, OrgSettingsPatch
from ownkey.cli import app
from ownkey.policy import ORG_FLAG_HELP, ORG_FLAGS, OrgSettings, request_schema
from ownkey.storage._schema import orgs


def test_policy_request_fields_are_the_table() -> None:
    fields = [f.name for f in dataclasses.fields(OrgSettings)]
    assert fields == ["cmk", "services", "licensed_users", *ORG_FLAGS]


def test_request_schema_properties_are_the_table() -> None:
    properties = request_schema()["$defs"]["org"]["properties"]
    for flag, help_text in ORG_FLAG_HELP.items():
        assert properties[flag]["description"] == help_text
    assert set(properties) == {"cmk", "services", "licensed_users", *ORG_FLAGS}


def test_directory_columns_are_the_table() -> None:
    boolean_columns = [c.name for c in orgs.columns if c.name in ORG_FLAGS]
    assert boolean_columns == list(ORG_FLAGS)


def test_api_models_are_the_table() -> None:
    for model in (OrgSettingsOut, OrgSettingsPatch):
        for flag, help_text in ORG_FLAG_HELP.items():
            assert model.model_fields[flag].description == help_text
    patch = OrgSettingsPatch(hybrid=True, large_org=False)
    assert patch.flags() == {"large_org": False, "hybrid": True}


def test_cli_options_are_the_table() -> None:
    for command in ("create", "set"):
        out = CliRunner().invoke(app, ["org", command, "--help"], env={"COLUMNS": "250"}).stdout
        for flag in ORG_FLAGS:
            assert f"--{flag.replace('_', '-')}" in out, (command, flag)
