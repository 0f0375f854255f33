"""Liveness and readiness (issue 28, item 6): a node whose bucket, platform key or change feed is
broken says so, and says which and why, instead of answering healthy and then 404.

The S3 cases run against moto's server, the change feed against PostgreSQL; nothing here depends
on how fast the machine is (a hung probe is cut at its timeout, whatever that timeout is).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.errors import KeyUnavailable
from ownkey.keys import KeyRef
from ownkey.service import Readiness, Runtime
from ownkey.storage._revision import shipped_head
from ownkey.testing import postgres
from tests.api.conftest import Api, setup_orgs

SECRET = "okt_0123456789abcdef.s3cr3t"  # a credential that must never be shown


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.providers import _servers

    with _servers.moto_server(tmp_path_factory.mktemp("moto-ready")) as server:
        yield server.endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)


def _s3_runtime(tmp_path: Path, endpoint: str, bucket: str) -> Runtime:
    home = tmp_path / "home"
    env = {
        "OWNKEY_HOME": str(home),
        "OWNKEY_S3_BUCKET": bucket,
        "OWNKEY_S3_ENDPOINT_URL": endpoint,
    }
    return Runtime.open(home=home, env=env)


def test_livez_answers_without_touching_the_database(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(api.runtime.database.engine, "connect", down)
    assert api.client.get("/livez").json() == {"status": "alive"}
    answer = api.client.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    body = answer.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == {"status": "failed", "detail": "connection refused"}


def test_readyz_names_every_check_and_healthz_is_the_same(api: Api) -> None:
    answer = api.client.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    checks = body["checks"]
    assert list(checks) == [
        "database",
        "schema",
        "blob_store",
        "platform_key",
        "change_feed",
        "restore",
    ]
    assert checks["database"] == {"status": "ok", "detail": "sqlite"}
    head = shipped_head()
    assert checks["schema"] == {"status": "ok", "detail": f"{head} (this build: up to {head})"}
    assert body["build"] == f"ownkey {version('ownkey')}"
    assert checks["blob_store"] == {"status": "ok", "detail": "DirectoryBlobStore"}
    assert checks["platform_key"] == {"status": "ok", "detail": "local"}
    assert checks["change_feed"] == {"status": "n/a"}  # SQLite: no notifications to follow
    assert checks["restore"]["status"] == "ok"
    healthz = api.client.get("/healthz")
    assert healthz.status_code == 200
    assert healthz.json() == body
    assert not list((api.runtime.home / "objects").glob("*/*"))  # the probe left no blob


def test_a_bucket_that_does_not_exist_is_not_ready(
    tmp_path: Path, moto_endpoint: str, aws_env: None
) -> None:
    bucket = "ownkey-missing-" + uuid.uuid4().hex[:8]
    with _s3_runtime(tmp_path, moto_endpoint, bucket) as runtime:
        setup_orgs(runtime)
        with TestClient(create_app(runtime)) as client:
            assert client.get("/livez").status_code == 200  # alive, but not to be sent traffic
            answer = client.get("/readyz")
            assert answer.status_code == 503
            check = answer.json()["checks"]["blob_store"]
            assert check["status"] == "failed"
            assert "does not exist" in check["detail"]
            assert answer.json()["checks"]["database"]["status"] == "ok"
            assert client.get("/healthz").status_code == 503  # the old probe sees it too


def test_a_bucket_that_exists_is_ready_and_keeps_no_probe(
    tmp_path: Path, moto_endpoint: str, aws_env: None
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = "ownkey-ready-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    with _s3_runtime(tmp_path, moto_endpoint, bucket) as runtime:
        setup_orgs(runtime)
        with TestClient(create_app(runtime)) as client:
            answer = client.get("/readyz")
            assert answer.status_code == 200, answer.json()
            assert answer.json()["checks"]["blob_store"] == {
                "status": "ok",
                "detail": "S3BlobStore",
            }
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_bucket_that_refuses_writes_is_not_ready(
    tmp_path: Path, moto_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = "ownkey-readonly-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    with _s3_runtime(tmp_path, moto_endpoint, bucket) as runtime:
        client = runtime.assets.store.blobs.client  # type: ignore[attr-defined]

        def refused(**_kwargs: Any) -> Any:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject")

        monkeypatch.setattr(client, "put_object", refused)
        report = Readiness(runtime).check()
        assert not report.ready
        check = report.as_dict()["checks"]["blob_store"]  # type: ignore[index]
        assert check == {"status": "failed", "detail": f"S3 failed on {bucket}: AccessDenied"}


def _platform_provider(runtime: Runtime) -> Any:
    master = runtime.admin.key(KeyRef.platform())
    return runtime._deps.provider(master.provider)


def test_an_unusable_platform_key_is_not_ready_and_says_nothing_secret(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _platform_provider(runtime)

    def unavailable(_key_id: str) -> Any:
        raise KeyUnavailable(f"the key manager refused the call (Bearer {SECRET})")

    monkeypatch.setattr(provider, "describe", unavailable)
    report = Readiness(runtime).check()
    assert not report.ready
    detail = report.as_dict()["checks"]["platform_key"]["detail"]  # type: ignore[index]
    assert "refused" in detail
    assert "s3cr3t" not in detail


def test_a_hung_platform_key_manager_fails_its_check_within_the_timeout(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _platform_provider(runtime)
    release = threading.Event()
    calls: list[str] = []

    def hung(key_id: str) -> Any:
        calls.append(key_id)
        release.wait()
        raise KeyUnavailable("gave up")

    monkeypatch.setattr(provider, "describe", hung)
    readiness = Readiness(runtime, timeout=0.05)
    try:
        first = readiness.check().as_dict()["checks"]["platform_key"]  # type: ignore[index]
        second = readiness.check().as_dict()["checks"]["platform_key"]  # type: ignore[index]
        assert first == {"status": "failed", "detail": "no answer within 0.05 s"}
        assert second == first
        assert len(calls) == 1  # the second answer waited on the probe still out
    finally:
        release.set()


def test_probes_of_the_key_manager_and_the_bucket_are_cached(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _platform_provider(runtime)
    describe = provider.describe
    calls: list[str] = []

    def counted(key_id: str) -> Any:
        calls.append(key_id)
        return describe(key_id)

    monkeypatch.setattr(provider, "describe", counted)
    now = [1000.0]
    readiness = Readiness(runtime, cache_for=5.0, clock=lambda: now[0])
    for _ in range(20):
        assert readiness.check().ready
    assert len(calls) == 1
    assert readiness.probes["blob_store"].runs == 1
    assert readiness.probes["database"].runs == 20  # the database is asked every time
    now[0] += 5.0
    assert readiness.check().ready
    assert len(calls) == 2


@pytest.fixture
def pg_url() -> Iterator[str]:
    server = postgres.acquire()
    try:
        url = postgres.create_database(server)
        try:
            yield url
        finally:
            postgres.drop_database(url)
    finally:
        postgres.release()


def test_the_change_feed_is_checked_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    with Runtime.open(home=home, url=pg_url, env={"OWNKEY_HOME": str(home)}) as runtime:
        app = create_app(runtime, node_sync=True)
        with TestClient(app) as client:
            sync = app.state.node_sync
            assert sync.wait_listening(30)
            checks = client.get("/readyz").json()["checks"]
            assert checks["database"] == {"status": "ok", "detail": "postgresql"}
            assert checks["change_feed"] == {"status": "ok", "detail": "listening"}
            sync.stop()  # the LISTEN connection gone: this node would miss revocations
            answer = client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["checks"]["change_feed"]["status"] == "failed"


def test_an_object_in_a_bucket_gone_is_503_not_404(
    tmp_path: Path, moto_endpoint: str, aws_env: None
) -> None:
    import boto3

    from ownkey.storage import TokenStore
    from tests.api.conftest import bearer

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = "ownkey-gone-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    with _s3_runtime(tmp_path, moto_endpoint, bucket) as runtime:
        setup_orgs(runtime)
        tokens = TokenStore(runtime.database)
        _, platform = tokens.issue("platform")
        with TestClient(create_app(runtime, tokens=tokens)) as client:
            header = '{"asset": {"service_id": "0001", "org": "acme", "owner": "ann@acme.test",'
            header += ' "owner_kind": "user", "container": {"kind": "meeting", "members": []},'
            header += ' "component": "video"}, "scope": "meeting-1"}'
            stored = client.put(
                "/v1/objects/rec-1",
                content=b"x" * 100_000,
                headers={**bearer(platform), "Ownkey-Request": header},
            )
            assert stored.status_code in (200, 201), stored.text
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
            s3.delete_bucket(Bucket=bucket)
            answer = client.get("/v1/objects/rec-1?org=acme", headers=bearer(platform))
            assert answer.status_code == 503, answer.text
            assert answer.json()["type"].endswith("storage-unavailable")
            assert client.get("/readyz").status_code == 503


def test_a_restore_waiting_for_an_operator_is_not_ready(api: Api) -> None:
    """Issue 28 item 5: a node whose database went back in time says so at /readyz."""
    api.runtime.protector.open_gate.close("behind: run ownkey audit reconcile-restore")
    try:
        answer = api.client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["restore"] == {
            "status": "failed",
            "detail": "behind: run ownkey audit reconcile-restore",
        }
    finally:
        api.runtime.protector.open_gate.open()


def test_two_nodes_on_one_postgresql_the_one_on_a_wrong_bucket_is_not_ready(
    tmp_path: Path, pg_url: str, moto_endpoint: str, aws_env: None
) -> None:
    """The issue's frame: two nodes on one PostgreSQL, blobs on S3. Node B was started with a
    bucket name that does not exist: it is alive but not ready, and the object node A stored is
    503 through it (never 404), while A serves it."""
    import boto3

    from ownkey.storage import TokenStore
    from tests.api.conftest import bearer

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = "ownkey-fleet-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    homes = tmp_path / "a", tmp_path / "b"

    def node(home: Path, name: str) -> Runtime:
        env = {
            "OWNKEY_HOME": str(home),
            "OWNKEY_S3_BUCKET": name,
            "OWNKEY_S3_ENDPOINT_URL": moto_endpoint,
            "OWNKEY_ROOT_KEY": "33" * 32,  # the fleet's root key, the same on both nodes
        }
        return Runtime.open(home=home, url=pg_url, env=env)

    with node(homes[0], bucket) as a_runtime:
        setup_orgs(a_runtime)
        tokens = TokenStore(a_runtime.database)
        _, platform = tokens.issue("platform")
        with node(homes[1], bucket + "-typo") as b_runtime:
            a_app = create_app(a_runtime, tokens=tokens, node_sync=True)
            b_app = create_app(b_runtime, node_sync=True)
            with TestClient(a_app) as a, TestClient(b_app) as b:
                assert a_app.state.node_sync.wait_listening(30)
                assert b_app.state.node_sync.wait_listening(30)
                header = (
                    '{"asset": {"service_id": "0001", "org": "acme", "owner": "ann@acme.test",'
                    ' "owner_kind": "user", "container": {"kind": "meeting", "members": []},'
                    ' "component": "video"}, "scope": "meeting-1"}'
                )
                stored = a.put(
                    "/v1/objects/rec-1",
                    content=b"y" * 100_000,
                    headers={**bearer(platform), "Ownkey-Request": header},
                )
                assert stored.status_code in (200, 201), stored.text
                assert a.get("/readyz").status_code == 200
                assert b.get("/livez").status_code == 200
                not_ready = b.get("/readyz")
                assert not_ready.status_code == 503
                checks = not_ready.json()["checks"]
                assert checks["blob_store"]["status"] == "failed"
                assert "does not exist" in checks["blob_store"]["detail"]
                assert checks["database"]["status"] == "ok"
                assert checks["change_feed"]["status"] == "ok"
                path = "/v1/objects/rec-1?org=acme"
                assert a.get(path, headers=bearer(platform)).content == b"y" * 100_000
                through_b = b.get(path, headers=bearer(platform))
                assert through_b.status_code == 503, through_b.text


def test_the_node_answers_its_probes_while_every_worker_thread_is_held(api: Api) -> None:
    """Requests holding all of the node's worker threads (anyio's 40) must not make the node
    look dead: /livez runs on the event loop, /readyz and /metrics on threads of their own."""
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()
    inside: list[int] = []
    lock = threading.Lock()

    def stuck() -> dict[str, str]:
        with lock:
            inside.append(1)
        release.wait()
        return {}

    api.client.app.add_api_route("/test-only/stuck", stuck)  # type: ignore[attr-defined]
    workers = 40
    pool = ThreadPoolExecutor(max_workers=workers + 5 + 3)  # the held, the queued, the probes
    try:
        held = [pool.submit(api.client.get, "/test-only/stuck") for _ in range(workers + 5)]
        deadline = time.monotonic() + 120  # progress on a loaded machine, not a threshold
        while len(inside) < workers:
            assert time.monotonic() < deadline, "the worker threads never filled"
            time.sleep(0.01)
        probes = [pool.submit(api.client.get, path) for path in ("/livez", "/readyz", "/metrics")]
        statuses = [probe.result(timeout=120).status_code for probe in probes]
        assert statuses == [200, 200, 200]
        assert len(inside) == workers  # every worker thread still held
        assert not any(future.done() for future in held)
    finally:
        release.set()
        pool.shutdown(wait=True)
