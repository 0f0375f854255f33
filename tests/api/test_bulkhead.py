"""One org's slow key manager cannot stall another org's requests (issue 28, item 6; FS-6).

slowco's key manager is made to hang (a gate the test holds shut, standing in for a fault proxy
that delays every answer by 6 s); slowco's platform sends more concurrent seals than the node
has worker threads. Before the bulkhead, those requests took every thread and acme's seal
waited for slowco's key manager (the tests then fail at their first wait: slowco's requests
never all get a thread). Now slowco holds at most its compartment's slots and queue: acme's seal
is answered while every one of slowco's key-manager calls is still blocked. The assertions are
on ordering and counts, never on how long anything took.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.errors import ConfigError, KeyUnavailable
from ownkey.keys import CallLimits, KeyManagerCalls
from ownkey.providers import LocalKeyProvider
from ownkey.service import ProtectorSettings, Runtime
from ownkey.storage import TokenStore
from tests.api.conftest import bearer, recording, setup_orgs

SLOW_USER = "sam@slowco.test"
#: More concurrent requests than the node's worker threads (anyio's default: 40).
FLOOD = 48
PATIENCE = 120.0  # a bound for progress on a loaded machine, never a latency threshold


class SlowKeyManager:
    """A local key provider whose wraps and unwraps wait on a gate while ``hold`` is on."""

    def __init__(self) -> None:
        self._inner = LocalKeyProvider(name="slow")
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        self.blocked = 0
        self.most_blocked = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        return "slow"

    def _held(self) -> None:
        with self._lock:
            self.blocked += 1
            self.most_blocked = max(self.most_blocked, self.blocked)
        try:
            self.gate.wait()
        finally:
            with self._lock:
                self.blocked -= 1

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        self._held()
        return self._inner.wrap(key_id, plaintext, context)

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        self._held()
        return self._inner.unwrap(key_id, wrapped, context)


class HeldCalls:
    """Counts the wraps in progress in ``provider`` (calls the key manager has not answered)."""

    def __init__(self, provider: Any) -> None:
        self.count = 0
        self._lock = threading.Lock()
        wrap = provider.wrap

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
            try:
                return wrap(*args, **kwargs)
            finally:
                with self._lock:
                    self.count -= 1

        provider.wrap = counted


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def _slowco(scope: str) -> dict[str, Any]:
    request = recording(asset_id=f"{scope}-a", scope=scope)
    request["asset"] = dict(request["asset"], org="slowco", owner=SLOW_USER)
    return request


def _seal(client: TestClient, token: dict[str, str], request: dict[str, Any]) -> Any:
    body = {"request": request, "data": base64.b64encode(b"hello").decode()}
    return client.post("/v1/seal", json=body, headers=token)


@pytest.fixture
def slow() -> SlowKeyManager:
    return SlowKeyManager()


@pytest.fixture
def slow_runtime(tmp_path: Path, slow: SlowKeyManager) -> Iterator[Runtime]:
    home = tmp_path / "home"
    env = {"OWNKEY_HOME": str(home)}
    settings = ProtectorSettings(key_calls_per_org=2, key_calls_waiting=3)
    providers: dict[str, Any] = {"slow": slow}
    with Runtime.open(home=home, env=env, providers=providers, settings=settings) as rt:
        setup_orgs(rt)
        rt.create_org("slowco")
        rt.create_key("slowco", provider="slow", actor="test")
        rt.update_org("slowco", cmk=True, enable=["0001"], actor="test")
        rt.add_users("slowco", [SLOW_USER], licensed=True)
        yield rt


def test_a_slow_org_cannot_hold_another_orgs_seal(
    slow_runtime: Runtime, slow: SlowKeyManager
) -> None:
    tokens = TokenStore(slow_runtime.database)
    _, platform = tokens.issue("platform")
    token = bearer(platform)
    limits = slow_runtime._deps.calls.limits
    assert (limits.concurrent, limits.waiting) == (2, 3)  # from the settings
    with TestClient(create_app(slow_runtime, tokens=tokens)) as client:
        slow.gate.clear()  # slowco's key manager hangs from now on
        pool = ThreadPoolExecutor(max_workers=FLOOD + 1)
        try:
            flood: list[Future[Any]] = [
                pool.submit(_seal, client, token, _slowco(f"slow-{n}")) for n in range(FLOOD)
            ]
            calls = slow_runtime._deps.calls

            def accounted() -> int:  # answered, or in slowco's compartment
                done = sum(1 for f in flood if f.done())
                return done + slow.blocked + calls.report().waiting

            # today: slowco's requests take every worker thread and some never get one
            _until(lambda: accounted() == FLOOD, "each of slowco's requests is answered or held")
            acme = pool.submit(_seal, client, token, recording(scope="acme-fresh"))
            answer = acme.result(timeout=PATIENCE)  # today: waits for slowco's key manager
            assert answer.status_code == 200, answer.text
            assert answer.json()["protection"]["keys"] == ["customer:acme"]
            # ... while every one of slowco's calls that reached its manager is still blocked
            assert not slow.gate.is_set()
            assert slow.blocked == limits.concurrent
            assert not any(f.done() and f.result().status_code == 200 for f in flood)
        finally:
            slow.gate.set()
            answers = [f.result(timeout=PATIENCE) for f in flood] if "flood" in locals() else []
            pool.shutdown(wait=True)
    assert slow.most_blocked == limits.concurrent  # never more of slowco's calls at once
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= limits.concurrent
    refused = [a for a in answers if a.status_code == 503]
    assert refused  # the flood beyond slowco's slots and queue was turned away
    for answer in refused:
        assert answer.json()["type"] == "urn:ownkey:problem:key-unavailable"
        assert answer.headers["Retry-After"]


# -- the bulkhead alone ---------------------------------------------------------------------------


def test_the_bulkhead_bounds_each_org_apart() -> None:
    calls = KeyManagerCalls(CallLimits(concurrent=2, waiting=1, wait=0.0))
    with calls.slot("slowco"), calls.slot("slowco"):
        with pytest.raises(KeyUnavailable, match="in flight"), calls.slot("slowco"):
            pass  # pragma: no cover - refused
        with calls.slot("acme"), calls.slot("acme"), calls.slot(None):
            assert calls.in_flight("acme") == 2
            assert calls.report().in_flight == 5
    assert calls.report().in_flight == 0
    assert calls.report().rejected == {"wait": 1}


def test_a_full_queue_is_refused_at_once_and_a_waiter_gets_the_freed_slot() -> None:
    calls = KeyManagerCalls(CallLimits(concurrent=1, waiting=1, wait=60.0))
    release = threading.Event()
    holding = threading.Event()
    outcomes: list[str] = []

    def holder() -> None:
        with calls.slot("slowco"):
            holding.set()
            release.wait()

    def waiter() -> None:
        with calls.slot("slowco"):
            outcomes.append("waited")

    first = threading.Thread(target=holder)
    first.start()
    holding.wait()
    second = threading.Thread(target=waiter)
    second.start()
    _until(lambda: calls.report().waiting == 1, "the waiter queues")
    with pytest.raises(KeyUnavailable), calls.slot("slowco"):  # a full queue: no wait at all
        pass  # pragma: no cover - refused
    release.set()
    first.join()
    second.join()
    assert outcomes == ["waited"]
    assert calls.report().rejected == {"queue_full": 1}


def test_calls_are_counted_by_provider_kind_and_outcome() -> None:
    ticks = iter([0.0, 0.003, 1.0, 3.0])
    calls = KeyManagerCalls(timer=lambda: next(ticks))
    with calls.timed("aws_kms", "wrap"):
        pass

    def down() -> None:
        with calls.timed("aws_kms", "wrap") as outcome:
            outcome("unavailable")
            raise KeyUnavailable("down")

    with pytest.raises(KeyUnavailable):
        down()
    stats = calls.report().calls[("aws_kms", "wrap")]
    assert stats.outcomes == {"ok": 1, "unavailable": 1}
    assert stats.count == 2
    assert stats.total == pytest.approx(2.003)
    assert stats.buckets[0] == 1  # 3 ms
    assert sum(stats.buckets) == 2


# -- the issue's own frame: slowco's key in AWS KMS (moto) behind the fault proxy ------------------


def test_a_hung_aws_kms_of_one_org_cannot_hold_another_orgs_seal(tmp_path: Path) -> None:
    """slowco's customer key is in AWS KMS (moto's server) reached through the fault proxy, which
    stops answering (a key manager slower than anything the test waits for); acme's key is local.
    acme's seal is answered while slowco's calls are all still held by the proxy."""
    from ownkey.providers._aws_kms import AwsKmsProvider
    from ownkey.testing.faultproxy import Fault, FaultProxy
    from tests.providers._servers import moto_server

    (tmp_path / "moto").mkdir()
    home = tmp_path / "home"
    with (
        moto_server(tmp_path / "moto") as server,
        FaultProxy(("127.0.0.1", server.port)) as proxy,
    ):
        kms = AwsKmsProvider(
            region="us-east-1",
            endpoint_url=f"http://127.0.0.1:{proxy.port}",
            credentials={"aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
            timeout=PATIENCE,  # slowco's calls wait on the proxy until the test lets them go
        )
        env = {"OWNKEY_HOME": str(home)}
        providers: dict[str, Any] = {"aws_kms": kms}
        with Runtime.open(home=home, env=env, providers=providers) as runtime:
            setup_orgs(runtime)
            runtime.create_org("slowco")
            runtime.create_key("slowco", provider="aws_kms", actor="test")
            runtime.update_org("slowco", cmk=True, enable=["0001"], actor="test")
            runtime.add_users("slowco", [SLOW_USER], licensed=True)
            tokens = TokenStore(runtime.database)
            _, platform = tokens.issue("platform")
            token = bearer(platform)
            calls = runtime._deps.calls
            limits = calls.limits
            held = HeldCalls(kms)
            with TestClient(create_app(runtime, tokens=tokens)) as client:
                proxy.set_fault(Fault.BLACKHOLE)
                pool = ThreadPoolExecutor(max_workers=FLOOD + 1)
                flood: list[Future[Any]] = []
                try:
                    flood = [
                        pool.submit(_seal, client, token, _slowco(f"kms-{n}")) for n in range(FLOOD)
                    ]

                    def accounted() -> int:  # answered, held by the proxy, or queued
                        done = sum(1 for f in flood if f.done())
                        return done + held.count + calls.report().waiting

                    _until(lambda: accounted() == FLOOD, "slowco's requests answered or held")
                    acme = pool.submit(_seal, client, token, recording(scope="acme-kms"))
                    answer = acme.result(timeout=PATIENCE)
                    assert answer.status_code == 200, answer.text
                    assert held.count == limits.concurrent  # all still held by the proxy
                    assert calls.in_flight("slowco") == limits.concurrent
                    assert not any(f.done() and f.result().status_code == 200 for f in flood)
                finally:
                    proxy.set_fault(Fault.RESET)  # slowco's key manager fails: let them go
                    answers = [f.result(timeout=PATIENCE) for f in flood]
                    pool.shutdown(wait=True)
    assert {a.status_code for a in answers} == {503}
    assert {a.json()["type"] for a in answers} == {"urn:ownkey:problem:key-unavailable"}


def test_a_node_takes_its_bounds_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        "OWNKEY_HOME": str(home),
        "OWNKEY_KEY_CALLS_PER_ORG": "3",
        "OWNKEY_KEY_CALLS_WAIT": "0.5",
    }
    with Runtime.open(home=home, env=env) as runtime:
        assert runtime._deps.calls.limits == CallLimits(concurrent=3, waiting=8, wait=0.5)
    bad = (("OWNKEY_KEY_CALLS_WAITING", "many"), ("OWNKEY_KEY_CALLS_PER_ORG", "0"))
    for variable, value in bad:
        with pytest.raises(ConfigError, match=variable):
            ProtectorSettings.from_env({variable: value})
