"""AUD-13/AUD-14 with AWS KMS (moto's KMS server on loopback): the witness is a real KMS
``Encrypt`` whose ``EncryptionContext`` carries the head, which is what CloudTrail records as
``requestParameters.encryptionContext``; the record built from the request as sent reads back
as a witnessed head, and the chain verifies against it until it is cut."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from ownkey.audit._witness_log import check_sequence, read_witness_log
from ownkey.hybrid._store import HybridStore, head_witness
from ownkey.providers._aws_kms import AwsKmsProvider
from tests.providers._servers import MotoServer

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def test_the_witness_encrypt_is_what_cloudtrail_logs(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    kms = AwsKmsProvider(
        region="us-east-1", endpoint_url=moto_server.endpoint, credentials=CREDENTIALS, timeout=5
    )
    key_id = kms.create_key(label="acme")
    trail: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        """What CloudTrail writes for a KMS Encrypt: the request's parameters, not the data."""
        trail.append(
            {
                "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "eventSource": "kms.amazonaws.com",
                "eventName": "Encrypt",
                "requestParameters": {
                    "keyId": params["KeyId"],
                    "encryptionContext": params["EncryptionContext"],
                    "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                },
                "resources": [
                    {"type": "AWS::KMS::Key", "ARN": f"arn:aws:kms:us-east-1:1:key/{key_id}"}
                ],
            }
        )

    kms.client.meta.events.register("provide-client-params.kms.Encrypt", record)
    store = HybridStore(tmp_path / "hybrid.db", "acme", witness=head_witness(kms, key_id, "acme"))
    for i in range(40):
        store.append({"at_ms": i, "op": "test"})
    assert len(trail) == 2  # seq 16 and 32
    log = tmp_path / "cloudtrail.json"
    log.write_text(json.dumps({"Records": trail}))
    entries = read_witness_log("acme", log.read_bytes())
    assert [e.seq for e in entries] == [16, 32]
    heads = [(e.seq, e.hash) for e in entries]
    assert store.verify(witnessed_heads=heads).ok
    assert check_sequence("acme", entries, every=16, last_seq=40, keys=[key_id]) == []
    store.close()
    db = sqlite3.connect(tmp_path / "hybrid.db")  # the operator's consistent cut
    db.execute("DELETE FROM audit WHERE seq > 20")
    db.commit()
    db.close()
    cut = HybridStore(tmp_path / "hybrid.db", "acme")
    assert cut.verify().ok  # the file alone cannot show it
    assert [p.kind for p in cut.verify(witnessed_heads=heads).problems] == ["truncated"]
    cut.close()
