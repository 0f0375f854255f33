"""The Protector's front door: seal, open, streams, ranges, explain (SK-*, FS-4, FS-5)."""

from __future__ import annotations

import io

import pytest

from ownkey.envelope import MESSAGE_FIXED_OVERHEAD, peek_key_id
from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    InvalidRequest,
    LimitExceeded,
    PolicyError,
)
from ownkey.keys import KeyRef
from ownkey.service import ProtectorSettings, build_protector, policy_engine, policy_part
from tests.service._helpers import AL, ANN, BO, CY, DAY, HOUR, chat, make_node, single

ACME, GLOBEX, PLATFORM = KeyRef.customer("acme"), KeyRef.customer("globex"), KeyRef.platform()


def _keys_of(node, sealed: bytes) -> tuple[KeyRef, ...]:  # type: ignore[no-untyped-def]
    record = node.store.get(peek_key_id(sealed))
    assert record is not None
    return record.keys


def test_seal_open_round_trip_with_short_overhead() -> None:
    """SK-4: the 16-byte scope key id travels in the header; chat overhead stays small."""
    node = make_node()
    sealed = node.protector.seal(chat(), b"hello")
    assert len(sealed) == len(b"hello") + MESSAGE_FIXED_OVERHEAD + 16
    assert node.protector.open(chat(), sealed) == b"hello"
    assert _keys_of(node, sealed) == (ACME, GLOBEX)


def test_the_content_is_bound_to_its_request() -> None:
    """SK-6: another asset id, component, org or scope does not open it."""
    node = make_node()
    sealed = node.protector.seal(chat(), b"hello")
    for other in (
        chat(asset_id="m2"),
        chat(component="file"),
        chat(sender=BO),
    ):
        with pytest.raises(InvalidCiphertext):
            node.protector.open(other, sealed)
    other_scope = node.protector.seal(chat(scope="chat-2"), b"x")
    with pytest.raises(InvalidCiphertext):  # SK-4: a scope key of another scope
        node.protector.open(chat(), other_scope)


def test_unknown_or_mangled_envelopes_are_opaque_errors() -> None:
    """SK-4."""
    node = make_node()
    sealed = node.protector.seal(chat(), b"hello")
    forged = sealed[:3] + bytes(16) + sealed[19:]
    for bad in (forged, b"", b"\x01\x01", sealed[:-1], sealed[:40]):
        with pytest.raises(InvalidCiphertext):
            node.protector.open(chat(), bad)


def test_open_does_not_consult_the_policy() -> None:
    """Content sealed under a CK stays under it whatever the policy says later."""
    node = make_node()
    sealed = node.protector.seal(chat(), b"hello")
    bare = chat()
    del bare["orgs"]
    assert node.protector.open(bare, sealed) == b"hello"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("scope"), "scope"),
        (lambda r: r.update(asset_id=""), "asset_id"),
        (lambda r: r.update(scope="s" * 300), "scope"),
        (lambda r: r["asset"].pop("component"), "asset.component"),
        (lambda r: r.pop("asset"), "asset"),
    ],
)
def test_bad_requests_name_the_field(change, field: str) -> None:  # type: ignore[no-untyped-def]
    node = make_node()
    request = chat()
    change(request)
    with pytest.raises(InvalidRequest) as error:
        node.protector.seal(request, b"x")
    assert error.value.field == field
    # The Protector's own fields are not the policy engine's: InvalidRequest, not PolicyError.
    assert type(error.value) is InvalidRequest


def test_policy_errors_pass_through() -> None:
    node = make_node()
    request = chat()
    request["asset"]["service_id"] = "4242"
    with pytest.raises(PolicyError, match="service_id"):
        node.protector.seal(request, b"x")


def test_explain_is_the_policy_engines_answer() -> None:
    node = make_node()
    plan = node.protector.explain(chat())
    assert plan == policy_engine(policy_part(chat()))
    assert plan.to_json()["keys"] == [
        {"type": "customer", "org": "acme"},
        {"type": "customer", "org": "globex"},
    ]


def test_plans_decide_the_keys() -> None:
    """The scope key carries exactly the plan's keys: CK, CK+PK, PK."""
    node = make_node()
    p = node.protector
    assert _keys_of(node, p.seal(chat(), b"x")) == (ACME, GLOBEX)
    one_side = chat(scope="chat-2", globex=(), members=(ANN, CY))
    assert _keys_of(node, p.seal(one_side, b"x")) == (ACME, PLATFORM)
    excluded = chat(scope="chat-3", component="reaction")
    assert _keys_of(node, p.seal(excluded, b"x")) == (PLATFORM,)
    unlicensed = single("0001", "video", owner=AL)
    assert _keys_of(node, p.seal(unlicensed, b"x")) == (PLATFORM,)


def test_client_side_content_is_refused_by_the_platform() -> None:
    """FS-4: advanced chat encryption and hybrid chat: the platform never holds the key."""
    node = make_node()
    with pytest.raises(AccessDenied) as denied:
        node.protector.seal(chat(advanced_chat_encryption=True), b"x")
    assert denied.value.reason == "policy"
    hybrid = single("1001", "message", container="chat", services=("1001",))
    hybrid["orgs"]["acme"]["hybrid"] = True
    with pytest.raises(AccessDenied, match="client-side"):
        node.protector.seal(hybrid, b"x")


def test_an_unregistered_customer_key_is_a_config_error_not_a_fallback() -> None:
    """FS-5."""
    node = make_node(ProtectorSettings())
    with pytest.raises(ConfigError, match="customer:acme"):
        node.protector.seal(chat(), b"x")
    assert len(node.store) == 0
    node.admin.create_key("customer:acme")
    node.admin.create_key("customer:globex")
    assert node.protector.open(chat(), node.protector.seal(chat(), b"x")) == b"x"


def test_epochs_per_service() -> None:
    """SK-1: one scope key per hour for chat, per day for recordings; configurable."""
    node = make_node()
    p = node.protector
    first = peek_key_id(p.seal(chat(), b"x"))
    node.clock.advance(HOUR - 1)
    assert peek_key_id(p.seal(chat(), b"x")) == first
    node.clock.advance(1)
    second = peek_key_id(p.seal(chat(), b"x"))
    assert second != first
    recording = single("0001", "video")
    day = peek_key_id(p.seal(recording, b"x"))
    node.clock.advance(DAY - 2 * HOUR)
    assert peek_key_id(p.seal(recording, b"x")) == day
    node.clock.advance(DAY)
    assert peek_key_id(p.seal(recording, b"x")) != day
    record = node.store.get(second)
    assert record is not None
    assert (record.epoch_seconds, record.epoch_start % 3600) == (3600, 0)

    short = make_node(ProtectorSettings(auto_create_keys=True, epoch_seconds={"0001": 60}))
    a = peek_key_id(short.protector.seal(recording, b"x"))
    short.clock.advance(60)
    assert peek_key_id(short.protector.seal(recording, b"x")) != a


def test_streams_and_ranges() -> None:
    node = make_node()
    p = node.protector
    data = bytes(range(256)) * 4000
    request = single("0001", "video", asset_id="rec-1")
    sealed = io.BytesIO()
    written = p.seal_stream(request, io.BytesIO(data), sealed, segment_size=4096)
    blob = sealed.getvalue()
    assert written == len(blob)
    out = io.BytesIO()
    assert p.open_stream(request, io.BytesIO(blob), out) == len(data)
    assert out.getvalue() == data
    assert p.open_range(request, io.BytesIO(blob), 10_000, 10_100) == data[10_000:10_100]
    sink = io.BytesIO()
    assert p.open_range_into(request, io.BytesIO(blob), sink, len(data) - 5) == 5
    assert sink.getvalue() == data[-5:]
    with pytest.raises(InvalidCiphertext):
        p.open_stream(single("0001", "video", asset_id="rec-2"), io.BytesIO(blob), io.BytesIO())
    with pytest.raises(InvalidCiphertext):
        p.open_stream(request, io.BytesIO(blob[:2]), io.BytesIO())


def test_the_platform_key_is_created_at_build_and_nothing_prints_secrets() -> None:
    node = make_node(ProtectorSettings())
    assert [str(master.ref) for master in node.admin.list_keys()] == ["platform"]
    assert "redacted" in repr(node.protector)
    with pytest.raises(ConfigError, match="default provider"):
        build_protector(ProtectorSettings(default_provider="hsm"), providers={})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epoch_seconds": {"8": 60}},
        {"epoch_seconds": {"0008": 0}},
        {"default_epoch_seconds": 0},
        {"destruction_waiting_period": 10.0},
        {"min_destruction_waiting_period": -1.0},
        {"segment_size": 0},
        {"cache_refresh_after": 1000.0},
        {"retry_attempts": 0},
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ProtectorSettings(**kwargs)  # type: ignore[arg-type]


def test_excluded_components_and_other_members_do_not_widen_a_channel() -> None:
    """A channel uses its owner's key even with external members."""
    node = make_node()
    request = chat(scope="chan-1")
    request["asset"]["container"]["kind"] = "channel"
    sealed = node.protector.seal(request, b"x")
    record = node.store.get(peek_key_id(sealed))
    assert record is not None
    assert (record.keys, record.orgs) == ((ACME,), ("acme",))


def test_a_scope_key_goes_on_sealing_under_fresh_message_keys_never_retired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SK-5, ENV2-4.6: past a message key's budget the cipher draws a new salt; the scope key
    stays (it has no message limit) and everything opens."""
    from ownkey.envelope import _message

    monkeypatch.setattr(_message, "SEALS_PER_MESSAGE_KEY", 3)
    node = make_node()
    sealed = [node.protector.seal(chat(asset_id=f"m{i}"), b"%d" % i) for i in range(7)]
    assert len({peek_key_id(blob) for blob in sealed}) == 1
    kid_end = 3 + len(peek_key_id(sealed[0]))
    assert len({blob[kid_end : kid_end + 16] for blob in sealed}) == 3
    record = node.store.get(peek_key_id(sealed[0]))
    assert record is not None
    assert record.sealable
    for i, blob in enumerate(sealed):
        assert node.protector.open(chat(asset_id=f"m{i}"), blob) == b"%d" % i
    with pytest.raises(LimitExceeded):  # too large is not a key matter: no new scope key
        node.protector.seal(chat(), b"x" * (64 * 1024 * 1024 + 1))
    assert len(node.store) == 1
