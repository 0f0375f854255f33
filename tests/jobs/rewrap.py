"""The crash test's re-wrap: a fake key manager with versions v1/v2 and the idempotent step.

Run as ``python -m tests.jobs.rewrap URL JOB_ID`` it works on the job until it is done (the
crash test kill -9s it). A wrap is an envelope-v1 message sealing the share under the master
key version's material, bound to the scope key's wrapping context.
"""

from __future__ import annotations

import hashlib
import sys

from ownkey.envelope import ScopeKey, open_message, seal_message
from ownkey.keys import KeyRef
from ownkey.keys._records import ScopeKeyRecord, Wrap, wrap_context
from ownkey.storage import Database, SqlScopeKeyStore
from ownkey.storage._jobs import JobStore
from tests.jobs._crash import announce_target

ACME = KeyRef.customer("acme")


def master(version: str) -> ScopeKey:
    return ScopeKey(f"kek-{version}".encode(), hashlib.sha256(f"kek-{version}".encode()).digest())


def share_of(key_id: bytes) -> bytes:
    """The share each test record was made with (so the test can check it comes back)."""
    return hashlib.sha256(b"share" + key_id).digest()


def wrap(record: ScopeKeyRecord, version: str, share: bytes) -> Wrap:
    context = wrap_context(record.identity, record.key_id, ACME)
    return Wrap(ACME, "fake", "kek", version, seal_message(master(version), share, context))


def unwrap(record: ScopeKeyRecord, w: Wrap) -> bytes:
    context = wrap_context(record.identity, record.key_id, ACME)
    return open_message(master(w.version), w.blob, context)


def make_step(store: SqlScopeKeyStore, target: str = "v2"):  # type: ignore[no-untyped-def]
    def step(item: str) -> None:
        key_id = bytes.fromhex(item)
        for _ in range(5):
            record = store.get(key_id)
            if record is None:
                raise LookupError(f"scope key {item} is gone")
            if all(w.version == target for w in record.wraps):
                return  # already done by a worker that died before recording it
            new = tuple(wrap(record, target, unwrap(record, w)) for w in record.wraps)
            if store.replace_wraps(key_id, record.wraps, new):
                return
        raise RuntimeError(f"scope key {item} kept changing")

    return step


def main() -> None:
    url, job_id = sys.argv[1], sys.argv[2]
    database = Database.open(url, migrate=False)
    jobs = JobStore(database)
    step = make_step(SqlScopeKeyStore(database))
    print("ready", flush=True)
    announce_target(lambda: jobs.status(job_id).done)
    status = jobs.run(job_id, step, limit=50)
    print(f"finished {status.state} {status.done}/{status.total}", flush=True)


if __name__ == "__main__":
    main()
