"""The key-provider contract, run against real key managers, with their faults and limits.

:class:`LiveProviderContract` extends :class:`~ownkey.testing.provider_contract.KeyProviderContract`
(every provider passes that suite) with what only a real key manager can show. Subclass it in a
test module and provide a ``harness`` fixture returning a :class:`ProviderHarness`::

    class TestKmip(LiveProviderContract):
        @pytest.fixture
        def harness(self, kmip_server, proxy):
            return ProviderHarness(KmipProvider(...), deadline=1.5,
                                   outage=lambda: proxy.fault(Fault.REFUSE), ...)

Requirements added here (LC-n are cited by the tests):

- LC-1 a wrong context is refused in every shape: a changed value, an extra or missing pair, the
  empty context, and a context whose names and values glued together give the same text;
- LC-2 a truncated, extended or empty blob is refused with InvalidCiphertext;
- LC-3 a key manager that is down, hung or slower than the deadline gives
  :class:`~ownkey.errors.KeyUnavailable` within ``harness.deadline`` seconds, for wrap and for
  unwrap; once it is back the same provider object works again (no poisoned connection);
- LC-4 no error message carries the share;
- LC-5 a new key is enabled, with its primary version among its versions.

A key manager that lacks a capability declares it on the harness: ``enforces_states=False``
(moto accepts disabled keys), ``exact_context=False`` (moto glues context names and values),
``reversible_disable=False`` (a manager whose disable cannot be undone, so ``enable`` must raise
LifecycleError; every bundled provider, KMIP included, can enable again),
``immediate_destruction=False`` (AWS KMS waits at least 7 days). The tests that need a missing
capability are skipped with the reason, or run in the variant the manager allows; none passes
silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest

from ownkey.errors import (
    AccessDenied,
    InvalidCiphertext,
    KeyUnavailable,
    LifecycleError,
    OwnkeyError,
)
from ownkey.keys import KeyProvider, KeyState
from ownkey.testing.fakes import FakeClock
from ownkey.testing.provider_contract import CONTEXT, DAY, KeyProviderContract

__all__ = ["Fault", "LiveProviderContract", "ProviderHarness"]

Fault = Callable[[], AbstractContextManager[object]]


@dataclass
class ProviderHarness:
    """A provider connected to a real key manager, and what that manager can do.

    ``clock`` is the provider's clock when the test controls it; ``outage`` and ``slow`` are
    context managers that cut the manager off or slow it past ``deadline`` (None for a manager
    in this process, which cannot be cut off).
    """

    provider: KeyProvider
    deadline: float = 5.0
    clock: FakeClock | None = None
    outage: Fault | None = None
    hang: Fault | None = None
    slow: Fault | None = None
    enforces_states: bool = True
    exact_context: bool = True
    reversible_disable: bool = True
    immediate_destruction: bool = True


def _share() -> bytes:
    return os.urandom(32)


class LiveProviderContract(KeyProviderContract):
    """The provider contract plus LC-1..LC-5; a subclass provides the ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> ProviderHarness:  # pragma: no cover - overridden
        raise NotImplementedError("a LiveProviderContract subclass provides the harness fixture")

    @pytest.fixture
    def provider(self, harness: ProviderHarness) -> Any:
        return harness.provider

    @pytest.fixture(autouse=True)
    def _keep_harness(self, harness: ProviderHarness) -> None:
        """Give the overridden base tests (whose signatures are fixed) the harness."""
        self._harness = harness

    @pytest.fixture
    def clock(self, harness: ProviderHarness) -> FakeClock:
        return harness.clock if harness.clock is not None else FakeClock(time.time())

    # -- the base tests that depend on a capability ---------------------------------------

    def test_disable_denies_until_enabled(self, provider: Any) -> None:
        harness = self._harness
        if not harness.enforces_states:
            pytest.skip("this key manager does not enforce key states (see its stubbed tests)")
        if harness.reversible_disable:
            super().test_disable_denies_until_enabled(provider)
            return
        key_id = provider.create_key(label="k")
        wrapped = provider.wrap(key_id, _share(), CONTEXT)
        provider.disable(key_id)
        assert provider.describe(key_id).state is KeyState.DISABLED
        calls: list[Callable[[], object]] = [
            lambda: provider.unwrap(key_id, wrapped, CONTEXT),
            lambda: provider.wrap(key_id, _share(), CONTEXT),
        ]
        for call in calls:
            with pytest.raises(AccessDenied) as denied:
                call()
            assert denied.value.reason == "disabled"
        with pytest.raises(LifecycleError):
            provider.enable(key_id)  # the manager cannot undo its revocation
        assert provider.describe(key_id).state is KeyState.DISABLED

    def test_destruction_is_cancellable_then_final(self, provider: Any, clock: FakeClock) -> None:
        harness = self._harness
        if not harness.enforces_states:
            pytest.skip("this key manager does not enforce key states (see its stubbed tests)")
        if not harness.immediate_destruction:
            self._destruction_is_scheduled_and_cancellable(provider, clock)
            return
        if harness.reversible_disable:
            super().test_destruction_is_cancellable_then_final(provider, clock)
            return
        self._destruction_is_scheduled_and_cancellable(provider, clock)
        key_id = provider.create_key(label="k")
        wrapped = provider.wrap(key_id, _share(), CONTEXT)
        provider.disable(key_id)
        provider.schedule_destruction(key_id, destroy_at=clock() + DAY)
        clock.advance(DAY)
        provider.destroy(key_id)
        provider.destroy(key_id)
        assert provider.describe(key_id).state is KeyState.DESTROYED
        with pytest.raises(AccessDenied) as denied:
            provider.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "destroyed"
        for change in (provider.enable, provider.disable, provider.cancel_destruction):
            with pytest.raises(LifecycleError):
                change(key_id)

    @staticmethod
    def _destruction_is_scheduled_and_cancellable(provider: Any, clock: FakeClock) -> None:
        key_id = provider.create_key(label="k")
        wrapped = provider.wrap(key_id, _share(), CONTEXT)
        provider.disable(key_id)
        destroy_at = clock() + 30 * DAY
        provider.schedule_destruction(key_id, destroy_at=destroy_at)
        described = provider.describe(key_id)
        assert described.state is KeyState.PENDING_DESTRUCTION
        assert described.destroy_at is not None
        assert abs(described.destroy_at - destroy_at) <= DAY  # managers round to whole days
        with pytest.raises(AccessDenied) as denied:
            provider.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "pending_destruction"
        provider.cancel_destruction(key_id)
        described = provider.describe(key_id)
        assert described.state is KeyState.DISABLED
        assert described.destroy_at is None

    # -- LC-1 / LC-2 ----------------------------------------------------------------------

    def test_wrong_context_in_every_shape(self, provider: Any, harness: ProviderHarness) -> None:
        """LC-1."""
        key_id = provider.create_key(label="k")
        wrapped = provider.wrap(key_id, _share(), CONTEXT)
        missing = {k: v for k, v in CONTEXT.items() if k != "scope"}
        shapes = {
            "changed value": dict(CONTEXT, org="globex"),
            "extra pair": dict(CONTEXT, asset="a1"),
            "missing pair": missing,
            "empty": {},
        }
        if harness.exact_context:
            glued = {k: v for k, v in CONTEXT.items() if k != "org"}
            glued["orga"] = CONTEXT["org"][1:]  # "org"+"acme" == "orga"+"cme"
            shapes["same text glued"] = glued
        for shape, context in shapes.items():
            try:
                provider.unwrap(key_id, wrapped, context)
            except InvalidCiphertext:
                continue
            pytest.fail(f"unwrapped under a context with a {shape}")

    def test_cut_blobs_are_rejected(self, provider: Any) -> None:
        """LC-2."""
        key_id = provider.create_key(label="k")
        wrapped = provider.wrap(key_id, _share(), CONTEXT)
        for variant in (b"", wrapped[:1], wrapped[: len(wrapped) // 2], wrapped + b"\x00"):
            with pytest.raises(InvalidCiphertext):
                provider.unwrap(key_id, variant, CONTEXT)

    # -- LC-3 -----------------------------------------------------------------------------

    def _unavailable_within_deadline(self, harness: ProviderHarness, fault: Fault | None) -> None:
        if fault is None:
            pytest.skip("this key manager runs in this process: it cannot be cut off")
        provider = harness.provider
        key_id = provider.create_key(label="k")
        share = _share()
        wrapped = provider.wrap(key_id, share, CONTEXT)
        with fault():
            calls: list[tuple[str, Callable[[], object]]] = [
                ("wrap", lambda: provider.wrap(key_id, share, CONTEXT)),
                ("unwrap", lambda: provider.unwrap(key_id, wrapped, CONTEXT)),
            ]
            for name, call in calls:
                started = time.monotonic()
                with pytest.raises(KeyUnavailable):
                    call()
                elapsed = time.monotonic() - started
                assert elapsed <= harness.deadline, f"{name} took {elapsed:.2f}s"
        assert provider.unwrap(key_id, wrapped, CONTEXT) == share
        assert provider.unwrap(key_id, provider.wrap(key_id, share, CONTEXT), CONTEXT) == share

    def test_manager_down_is_unavailable(self, harness: ProviderHarness) -> None:
        """LC-3: connections refused or reset."""
        self._unavailable_within_deadline(harness, harness.outage)

    def test_manager_hung_is_unavailable(self, harness: ProviderHarness) -> None:
        """LC-3: connections accepted, never answered."""
        self._unavailable_within_deadline(harness, harness.hang)

    def test_manager_slow_is_unavailable(self, harness: ProviderHarness) -> None:
        """LC-3: answers that come after the deadline."""
        self._unavailable_within_deadline(harness, harness.slow)

    # -- LC-4 / LC-5 ----------------------------------------------------------------------

    def test_errors_never_carry_the_share(self, provider: Any) -> None:
        """LC-4."""
        key_id = provider.create_key(label="k")
        share = _share()
        wrapped = provider.wrap(key_id, share, CONTEXT)
        raised: list[OwnkeyError] = []
        attempts: list[Callable[[], object]] = [
            lambda: provider.unwrap(key_id, wrapped, {}),
            lambda: provider.unwrap(key_id, wrapped[:-1], CONTEXT),
        ]
        for attempt in attempts:
            try:
                attempt()
            except OwnkeyError as exc:
                raised.append(exc)
        assert len(raised) == 2
        for error in raised:
            text = f"{error!s} {error!r} {error.__cause__!r}"
            assert share.hex() not in text
            assert repr(share) not in text

    def test_new_key_is_enabled(self, provider: Any) -> None:
        """LC-5."""
        key_id = provider.create_key(label="k")
        described = provider.describe(key_id)
        assert described.key_id == key_id
        assert described.state is KeyState.ENABLED
        assert described.primary_version in described.versions
        assert described.destroy_at is None
