"""``ownkey policy explain`` / ``schema`` through the installed console script (subprocess).

Issue: "Bad input (unknown service ID, component, owner kind, field; wrong types; a member whose
org is not listed) -> exit code 2 and one line on stderr naming the field; never a traceback."
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ownkey.policy import plan_schema, request_schema

from ._helpers import ANN, BO, CK, PK, org, request

OWNKEY = Path(sys.executable).parent / "ownkey"


def run(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(OWNKEY), "policy", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def chat() -> dict[str, Any]:
    orgs = {"acme": org("0008", licensed=(ANN,)), "globex": org(cmk=False)}
    return request("0008", "message", orgs=orgs, container="chat", members=((BO, "globex"),))


def test_explain_prints_the_plan_json() -> None:
    """stdin JSON -> stdout JSON, exit 0, nothing on stderr."""
    result = run("explain", stdin=json.dumps(chat()).encode())
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    plan = json.loads(result.stdout)
    assert list(plan) == ["service_id", "protection", "keys", "third_party_egress", "reasons"]
    assert plan["keys"] == [CK("acme"), PK]


def test_explain_compact_prints_one_line() -> None:
    result = run("explain", "--compact", stdin=json.dumps(chat()).encode())
    assert result.returncode == 0
    assert result.stdout.count(b"\n") == 1


def _bad(change: str) -> bytes:
    req = chat()
    asset = req["asset"]
    if change == "invalid JSON":
        return b'{"orgs": '
    if change == "not UTF-8":
        return b"\xff"
    if change == "unknown field":
        req["colour"] = "blue"
    elif change == "unknown service":
        asset["service_id"] = "0024"
    elif change == "unknown component":
        asset["component"] = "sticker\nwith a newline"
    elif change == "unknown owner kind":
        asset["owner_kind"] = "robot"
    elif change == "wrong type":
        req["orgs"]["acme"]["cmk"] = "yes"
    elif change == "member org not listed":
        asset["container"]["members"][0]["org"] = "initech"
    return json.dumps(req).encode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("invalid JSON", "request"),
        ("not UTF-8", "request"),
        ("unknown field", "colour"),
        ("unknown service", "asset.service_id"),
        ("unknown component", "asset.component"),
        ("unknown owner kind", "asset.owner_kind"),
        ("wrong type", "orgs.acme.cmk"),
        ("member org not listed", "asset.container.members[0].org"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_field(change: str, field: str) -> None:
    """Exit code 2, one line on stderr that names the field, no traceback, nothing on stdout."""
    result = run("explain", stdin=_bad(change))
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ownkey: {field}: ")
    assert b"Traceback" not in result.stderr


def test_schema_prints_the_request_and_plan_schemas() -> None:
    """`ownkey policy schema` is the published request schema; `--plan` the plan's."""
    assert json.loads(run("schema", stdin=b"").stdout) == request_schema()
    assert json.loads(run("schema", "--plan", stdin=b"").stdout) == plan_schema()


def test_python_dash_m_ownkey_is_the_same_command() -> None:
    """``python -m ownkey policy explain`` answers like the console script."""
    result = subprocess.run(
        [sys.executable, "-m", "ownkey", "policy", "explain", "--compact"],
        input=json.dumps(chat()).encode(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert json.loads(result.stdout)["keys"] == [CK("acme"), PK]


def test_explain_reads_at_most_the_apis_limit() -> None:
    """``cat /dev/zero | ownkey policy explain`` read stdin without bound; it reads one byte
    past the API's 1 MiB limit and refuses."""
    from ownkey.policy import MAX_REQUEST_BYTES

    done = run("explain", stdin=b" " * (MAX_REQUEST_BYTES + 1))
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        f"ownkey: request: larger than {MAX_REQUEST_BYTES} bytes (the API's limit)"
    )
