"""``ownkey jobs run rekey`` and an asset-aware backfill through the CLI, on a fresh home.

The assets are put through ``runtime.assets`` (asset-only requests: the org directory fills in
the settings) into the asset store the CLI opens (blobs under ``$OWNKEY_HOME/objects``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ownkey.service import AssetService, Runtime
from tests.cli.test_admin import ANN, acme, home, js, ok, one_line_error, recording, run

__all__ = ["acme", "home"]  # fixtures used by name


@pytest.fixture
def assets(acme: Path) -> Iterator[AssetService]:
    with Runtime.open(home=acme, env={}) as rt:
        yield rt.assets  # blobs under $OWNKEY_HOME/objects, as the CLI's runtime has them


def stored(asset_id: str, scope: str, owner: str = ANN) -> dict[str, Any]:
    return {**recording(owner), "scope": scope, "asset_id": asset_id}


def test_jobs_run_rekey(assets: AssetService) -> None:
    data = {f"r{n}": bytes([n]) * (5000 + n) for n in range(4)}
    for n, (asset_id, payload) in enumerate(data.items()):
        assets.put_asset(stored(asset_id, f"meeting-{n % 2}"), payload)
    old = {assets.store.get(a).scope_key_id for a in data}
    preview = js("jobs", "preview", "rekey", "acme", "--service", "0001")
    assert {c["scope_key_id"] for c in preview["scope_keys"]} == {k.hex() for k in old}
    assert preview["assets_moved"] == 4
    assert preview["waiting_period"] == 7 * 86_400
    assert "outside the asset store" in preview["warning"]
    human = ok("jobs", "preview", "rekey", "acme", "--service", "0001").stdout
    assert "would shred" in human
    assert "nothing was changed" in human
    job = js("jobs", "run", "rekey", "acme", "--service", "0001")
    assert (job["kind"], job["state"], job["total"], job["done"]) == ("rekey", "done", 6, 6)
    for asset_id, payload in data.items():
        assert assets.store.get(asset_id).scope_key_id not in old
        assert assets.get_asset(asset_id) == payload
    # RW-8: pending shred for the waiting period (seven days), cancellable, nothing due yet.
    pending = js("jobs", "shreds", "acme")
    assert {p["scope_key_id"] for p in pending} == {k.hex() for k in old}
    assert all(p["state"] == "pending" and p["job_id"] == job["job_id"] for p in pending)
    first = sorted(old)[0]
    cancelled = js("jobs", "cancel-shred", "acme", first.hex())
    assert cancelled["state"] == "cancelled"
    assert "no pending shred" in one_line_error(run("jobs", "cancel-shred", "acme", first.hex()))
    assert "not a hex" in one_line_error(run("jobs", "cancel-shred", "acme", "zz"))
    assert len(js("jobs", "shreds")) == len(old) - 1
    assert js("jobs", "run", "shred", "acme")["total"] == 0  # none due for a week
    for key_id in old:
        assert not assets.protector.admin.scope_key(key_id).shredded
    human = ok("jobs", "status", job["job_id"]).stdout
    assert "rekey" in human
    assert "done" in human
    assert "6/6 items done" in ok("jobs", "resume", job["job_id"]).stdout
    keep = js("jobs", "run", "rekey", "acme", "--scope", "meeting-0", "--keep-old")
    assert (keep["state"], keep["total"], keep["params"]["shred_old"]) == ("done", 3, False)


def test_jobs_rekey_bad_input(acme: Path) -> None:
    assert "names an org" in one_line_error(run("jobs", "run", "rekey"))
    assert "not a hex" in one_line_error(run("jobs", "run", "rekey", "acme", "--scope-key", "zz"))
    assert "at most one" in one_line_error(
        run("jobs", "run", "rekey", "acme", "--service", "0001,0008")
    )
    assert "no org 'globex'" in one_line_error(run("jobs", "run", "rekey", "globex"))
    assert "only rekey jobs" in one_line_error(run("jobs", "preview", "backfill", "acme"))
    assert "no org 'globex'" in one_line_error(run("jobs", "preview", "rekey", "globex"))
    assert "or an org" in one_line_error(run("jobs", "run", "shred"))


def test_backfill_through_the_cli_follows_the_stored_content(
    acme: Path, assets: AssetService
) -> None:
    """CMK for 0001 off, then on: al is unlicensed, so his recording's scope key stays on the
    platform key; ann's moves to acme's key."""
    ok("org", "set", "acme", "--disable", "0001")
    assets.put_asset(stored("ann-1", "user:ann"), b"ann")
    assets.put_asset(stored("al-1", "user:al", owner="al@acme.test"), b"al")
    ok("org", "set", "acme", "--enable", "0001", "--no-backfill")
    job = js("jobs", "run", "backfill", "acme", "--service", "0001")
    assert (job["state"], job["total"], job["params"]["skipped_by_policy"]) == ("done", 1, 1)
    admin = assets.protector.admin
    ann = admin.scope_key(assets.store.get("ann-1").scope_key_id)
    al = admin.scope_key(assets.store.get("al-1").scope_key_id)
    assert [str(k) for k in ann.keys] == ["customer:acme"]
    assert [str(k) for k in al.keys] == ["platform"]
    assert assets.get_asset("ann-1") == b"ann"


def test_org_set_backfills_by_the_stored_content(acme: Path, assets: AssetService) -> None:
    """``org set``'s automatic backfill goes through ``Runtime.create_job``, which is asset-aware:
    the same outcome as ``jobs run backfill``."""
    ok("org", "set", "acme", "--disable", "0001")
    assets.put_asset(stored("ann-1", "user:ann"), b"ann")
    assets.put_asset(stored("al-1", "user:al", owner="al@acme.test"), b"al")
    out = js("org", "set", "acme", "--enable", "0001")
    job = out["backfill"]["to_customer"]
    assert (job["state"], job["total"], job["params"]["skipped_by_policy"]) == ("done", 1, 1)
    admin = assets.protector.admin
    ann = admin.scope_key(assets.store.get("ann-1").scope_key_id)
    al = admin.scope_key(assets.store.get("al-1").scope_key_id)
    assert [str(k) for k in ann.keys] == ["customer:acme"]
    assert [str(k) for k in al.keys] == ["platform"]
    assert (assets.get_asset("ann-1"), assets.get_asset("al-1")) == (b"ann", b"al")


def test_jobs_watch_follows_a_job_another_node_runs(acme: Path, assets: AssetService) -> None:
    """``jobs watch`` reads the job until it is finished, however long another node takes."""
    for n in range(3):
        assets.put_asset(stored(f"w{n}", f"meeting-{n}"), b"x" * 100)
    with Runtime.open(home=acme, env={}) as rt:
        rt.admin.rotate_key("customer:acme", rewrap=False)
        job, created = rt.job_ops.submit("rewrap", key="customer:acme")
        assert created
        assert job.total == 3
        other = threading.Thread(target=rt.run_job, args=(job.job_id,))
        other.start()
        try:
            watched = js("jobs", "watch", job.job_id, "--interval", "0.1")
        finally:
            other.join(60)
    assert (watched["job_id"], watched["state"], watched["done"]) == (job.job_id, "done", 3)
    again = ok("jobs", "watch", job.job_id).stdout  # finished: answered at once
    assert "done" in again
