"""``ownkey objects list ORG`` (issue 14's object listing): one org's objects, filtered, paged."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ownkey.cli import app
from ownkey.service import Runtime


def _recording(org: str, asset_id: str) -> dict[str, object]:
    return {
        "asset": {
            "service_id": "0001",
            "org": org,
            "owner": f"ann@{org}.test",
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "meeting-1",
        "asset_id": asset_id,
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("OWNKEY_HOME", str(home))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        for org in ("acme", "globex"):
            rt.create_org(org)
            rt.add_users(org, [f"ann@{org}.test"])
        for n in range(3):
            rt.assets.put_asset(_recording("acme", f"rec-{n}"), io.BytesIO(b"x" * n))
        rt.assets.put_asset(_recording("globex", "g-1"), io.BytesIO(b"g"))
    return home


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["objects", "list", *args])
    return result.exit_code, result.stdout, result.stderr


def test_lists_only_the_orgs_objects_in_pages(home: Path) -> None:
    code, out, err = _run("acme", "--limit", "2", "--json")
    assert code == 0, err
    page = json.loads(out)
    assert [o["asset_id"] for o in page["objects"]] == ["rec-0", "rec-1"]
    assert {o["org"] for o in page["objects"]} == {"acme"}
    assert page["next"] == "rec-1"
    code, out, _ = _run("acme", "--after", "rec-1", "--json")
    assert [o["asset_id"] for o in json.loads(out)["objects"]] == ["rec-2"]
    code, out, _ = _run("globex", "--json")
    assert [o["asset_id"] for o in json.loads(out)["objects"]] == ["g-1"]
    code, out, _ = _run("acme", "--prefix", "rec-2")
    assert code == 0
    assert "rec-2" in out
    assert "rec-1" not in out
    code, out, _ = _run("acme", "--service-id", "0008", "--json")
    assert json.loads(out)["objects"] == []


def test_bad_filters_and_unknown_orgs_exit_2(home: Path) -> None:
    for args in (("acme", "--limit", "0"), ("acme", "--service-id", "12"), ("nosuch",)):
        code, _, err = _run(*args)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1
