"""Scope-key records of format 1, written before envelope v2 (issue 10), as the old code wrote
them: shares wrapped under the old context (no key list, orgs joined by ``,``), combined
without a binding, content sealed as version 1 messages.

No test created one before issue 23, so skipping their retirement for sealing or dropping their
own share context passed every test. The builder below is the old ``_create`` of
``keys/_access.py`` at a74eecb^ with its ``wrap_context`` copied verbatim: it must not call
today's context code, or a change there would change the fixture along with the code.
``tests/service/test_old_homes.py`` pins the same on a database the old code wrote.
"""

from __future__ import annotations

import hashlib
import time

from ownkey.audit import AuditAction
from ownkey.envelope import (
    SECRET_KEY_ACCESS,
    EncryptionContext,
    MessageCipher,
    ScopeKey,
    combine_shares,
)
from ownkey.keys import KeyRef, ScopeIdentity
from ownkey.keys._records import ScopeKeyRecord, Wrap
from tests.envelope.vectors_v1 import seal_message_vector
from tests.keys._rig import ACME, GLOBEX, PLATFORM, Rig, make_rig

CONTEXT = EncryptionContext(org="acme", service_id="0008", scope="chat:1", asset_id="m1")


def _old_bounded(value: str) -> str:
    if len(value.encode("utf-8")) <= 512:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def old_wrap_context(identity: ScopeIdentity, scope_key_id: bytes, key: KeyRef) -> dict[str, str]:
    """``wrap_context`` of ``keys/_records.py`` at a74eecb^, verbatim in effect."""
    context = {
        "purpose": "ownkey.scope-key",
        "orgs": _old_bounded(",".join(identity.orgs)),
        "service_id": identity.service_id,
        "scope": _old_bounded(identity.scope),
        "epoch": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(identity.epoch_start)),
        "epoch_seconds": str(identity.epoch_seconds),
        "scope_key_id": scope_key_id.hex(),
    }
    if key.org is not None:
        context["org"] = _old_bounded(key.org)
    return context


def write_format1_record(rig: Rig, identity: ScopeIdentity) -> tuple[ScopeKeyRecord, ScopeKey]:
    """A format-1 record stored as current for ``identity``, as the old ``_create`` made it;
    returns it and the scope key the old code computed (shares combined without a binding)."""
    key_id = rig.deps.random(16)
    shares = [rig.deps.random(32) for _ in identity.keys]
    wraps = []
    for ref, share in zip(identity.keys, shares, strict=True):
        master = rig.deps.registry.get(ref)
        assert master is not None
        provider = rig.deps.provider(master.provider)
        blob = provider.wrap(master.key_id, share, old_wrap_context(identity, key_id, ref))
        wraps.append(Wrap(ref, master.provider, master.key_id, master.version, blob))
    record = ScopeKeyRecord(
        key_id=key_id,
        orgs=identity.orgs,
        service_id=identity.service_id,
        scope=identity.scope,
        epoch_start=identity.epoch_start,
        epoch_seconds=identity.epoch_seconds,
        wraps=tuple(wraps),
        created_at=rig.clock(),
        format=1,
    )
    stored = rig.store.create(record)
    assert stored.key_id == key_id
    return stored, ScopeKey(key_id, combine_shares(shares))


def test_format1_content_opens_with_its_own_share_contexts() -> None:
    """A format-1 record unwraps only under the old context and combines without a binding:
    content the old code sealed (version 1 messages) still opens."""
    rig = make_rig()
    identity = rig.identity(ACME, GLOBEX, PLATFORM)
    record, old_key = write_format1_record(rig, identity)
    sealed = seal_message_vector(old_key, dict(CONTEXT), b"sealed in 2025", bytes(range(12)))
    entry = rig.keys.for_open(record.key_id)
    assert entry.key.material(SECRET_KEY_ACCESS) == old_key.material(SECRET_KEY_ACCESS)
    assert MessageCipher(entry.key).open(sealed, CONTEXT) == b"sealed in 2025"
    contexts = [dict(event.detail) for event in rig.sink.of(AuditAction.UNWRAP)]
    assert len(contexts) == 3
    for wrap, seen in zip(record.wraps, contexts, strict=True):
        expected = old_wrap_context(identity, record.key_id, wrap.key)
        assert {name: seen[name] for name in expected} == expected
        assert "keys" not in seen  # the format-2 key list was never part of a format-1 wrap


def test_a_format1_record_never_seals_new_content_and_is_retired() -> None:
    """Format 1 binds no key list and no attributes: a record found for sealing is retired
    (audited, reason ``record_format``) and new content gets a new record of today's format;
    the old record still opens what it sealed."""
    rig = make_rig()
    identity = rig.identity(ACME, PLATFORM)
    record, old_key = write_format1_record(rig, identity)
    assert rig.store.current(identity) == record  # the store hands it out for sealing
    old = seal_message_vector(old_key, dict(CONTEXT), b"old", bytes(12))

    entry = rig.keys.for_seal(identity)

    assert entry.key.key_id != record.key_id
    new_record = rig.store.get(entry.key.key_id)
    assert new_record is not None
    assert new_record.format >= 2
    retired = rig.store.get(record.key_id)
    assert retired is not None
    assert not retired.sealable
    assert rig.store.current(identity) == new_record
    events = rig.sink.of(AuditAction.SCOPE_KEY_RETIRE)
    assert [(e.detail["scope_key_id"], e.detail["reason"]) for e in events] == [
        (record.key_id.hex(), "record_format")
    ]
    assert rig.keys.for_seal(identity).key.key_id == entry.key.key_id  # retired once
    opened = rig.keys.for_open(record.key_id)
    assert MessageCipher(opened.key).open(old, CONTEXT) == b"old"
