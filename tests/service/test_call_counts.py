"""Key-manager calls under load: at most one unwrap per scope key per cache period (CA-7)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from ownkey.audit import AuditAction
from ownkey.service import ProtectorSettings
from tests.service._helpers import ANN, BO, chat, make_node

CHANNELS = 100
MESSAGES = 100_000
SETTINGS = ProtectorSettings(auto_create_keys=True, cache_max_age=300, cache_refresh_after=240)


def _channel(n: int) -> dict[str, Any]:
    request = chat(f"channel-{n:03d}", members=(ANN, BO))
    request["asset"]["container"]["kind"] = "channel"  # one key: the owner's
    return request


def _unwraps_per_scope_key(node: Any) -> Counter[str]:
    return Counter(event.detail["scope_key_id"] for event in node.sink.of(AuditAction.UNWRAP))


@pytest.mark.slow
def test_100k_messages_over_100_channels_cost_one_unwrap_per_scope_key_per_period() -> None:
    """CA-7: node A seals 100,000 messages over 100 channels in 200 s; node B, cold, opens them
    all: 100 unwraps. In the next cache period (past refresh_after), 10,000 more messages cost
    one more unwrap per scope key."""
    sealer = make_node(SETTINGS)
    opener = sealer.second_node()
    bases = [_channel(n) for n in range(CHANNELS)]
    started = time.perf_counter()
    for period, count in enumerate((MESSAGES, MESSAGES // 10)):
        step = 200.0 / count
        sealed = []
        for i in range(count):
            request = {**bases[i % CHANNELS], "asset_id": f"p{period}-m{i}"}
            sealed.append((request, sealer.protector.seal(request, b"m%d" % i)))
            sealer.clock.advance(step)
        for i, (request, blob) in enumerate(sealed):
            assert opener.protector.open(request, blob) == b"m%d" % i
        sealer.clock.advance(50)  # 250 s after the first unwraps: the next period starts
        per_key = _unwraps_per_scope_key(opener)
        assert len(per_key) == CHANNELS
        assert set(per_key.values()) == {period + 1}
        assert sealer.provider.calls["wrap"] == CHANNELS  # scope keys created once, hour epochs
    elapsed = time.perf_counter() - started
    report = opener.admin.cache_report()
    assert report.loads == CHANNELS
    assert report.refreshes == CHANNELS
    print(
        f"\n{MESSAGES + MESSAGES // 10} messages sealed and opened over {CHANNELS} channels in "
        f"{elapsed:.1f} s; unwraps: {sum(per_key.values())} ({dict(Counter(per_key.values()))}"
        f" per scope key); cache: {report}"
    )


def test_cross_org_chats_cost_one_unwrap_per_share() -> None:
    """CA-7 with two keys per scope key: one unwrap per share, i.e. two per chat."""
    node = make_node(SETTINGS)
    cold = node.second_node()
    sealed = [(chat(f"chat-{n % 10}", f"m{n}"),) for n in range(1000)]
    blobs = [node.protector.seal(request, b"x") for (request,) in sealed]
    for (request,), blob in zip(sealed, blobs, strict=True):
        cold.protector.open(request, blob)
    assert cold.provider.calls["unwrap"] == 20
    assert set(_unwraps_per_scope_key(cold).values()) == {2}
