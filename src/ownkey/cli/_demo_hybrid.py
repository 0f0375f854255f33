"""The CMK Hybrid chapter of ``ownkey demo``: content the platform stores but cannot open.

It starts the three parties as processes on loopback (``ownkey.testing.hybrid``: a test
identity provider, the platform's hybrid routes, acme's own key service) and checks each claim
as it tells it. Kept apart from ``_demo`` so that the story there stays one call away.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ownkey.errors import KeyUnavailable

__all__ = ["tell"]

_ORG = "acme"
_ANN, _AL, _CY = "ann@acme.example", "al@acme.example", "cy@acme.example"
_MEMBERS = {
    _ORG: {
        "users": [_ANN, _AL, _CY],
        "conversations": {"hybrid-room": [_ANN, _AL]},
        "advanced_chat_encryption": True,
    }
}


def tell(story: Any, number: int = 10) -> None:
    """Narrate and check the hybrid flow; ``story`` is the demo's ``_Story``."""
    from ownkey.testing.hybrid import HybridStack

    story.chapter(
        number,
        "CMK Hybrid: acme runs its own key service",
        "Hybrid chat (1001) is sealed on the client under a fresh key per message, wrapped by a "
        "key service acme runs itself. The platform checks membership and stores ciphertext; "
        "it holds no key that opens it. Starting acme's identity provider, the platform and "
        "acme's key service as three processes on loopback...",
    )
    console = story.console
    with (
        tempfile.TemporaryDirectory(prefix="ownkey-demo-hybrid-") as root,
        HybridStack(Path(root), _ORG, _MEMBERS) as stack,
    ):
        ann, al = stack.client(_ANN), stack.client(_AL)
        text = b"hybrid: the merger closes on Friday"
        sealed = ann.seal_message("hybrid-room", text, message="m-1", reason="chat send")
        stack.upload(_ANN, "hybrid-room", "m-1", sealed)
        stored = [blob for _record, blob in stack.platform_assets().values()]
        story.check(sealed in stored, "the platform did not store the sealed message")
        story.check(
            not any(text in blob for blob in stack.platform_files()),
            "the platform's state holds the plaintext",
        )
        console.print(
            f"ann sealed {len(text)} bytes into {len(sealed)} (wrapped key, id, author, "
            "envelope; service 1001); the platform stored only that."
        )
        story.opens(
            lambda: al.open_message(
                "hybrid-room", stack.download(_AL, "hybrid-room", "m-1"), message="m-1"
            ),
            text,
            "al (a member) reads it through acme's key service",
        )
        story.denied(
            lambda: stack.grant(_CY, "hybrid-room", "reader"),
            "cy (not a member) asks the platform for a grant",
        )
        store = _store(stack.kacls_home)
        store.revoke("user", _AL, 0)
        fresh = ann.seal_message("hybrid-room", b"after the revocation", message="m-2")
        story.denied(
            lambda: al.open_message("hybrid-room", fresh, message="m-2"),
            "acme revokes al at its key service; al's next message",
        )
        story.opens(
            lambda: stack.client(_ANN).open_message("hybrid-room", fresh, message="m-2"),
            b"after the revocation",
            "ann, not revoked, still reads",
        )
        team = ann.seal_message("hybrid-room", b"team chat", message="m-3", service="0008")
        story.opens(
            lambda: ann.open_message("hybrid-room", team, message="m-3", service="0008"),
            b"team chat",
            "team chat (0008) under advanced chat encryption takes the same path",
        )
        report = store.verify()
        story.check(report.ok, "the key service's audit chain does not verify")
        store.close()
        console.print(
            f"acme's key service logged {report.records} calls in its own hash chain; it verifies."
        )
        stack.stop_key_service()
        try:
            ann.seal_message("hybrid-room", b"while the key service is down", message="m-4")
        except KeyUnavailable:
            story.check(True, "")
            console.print("Key service down: sealing fails with KeyUnavailable; nothing is sent.")
        else:
            story.fail("sealing worked with the key service down")


def _store(home: Path) -> Any:
    from ownkey.hybrid import HybridStore, load_config
    from ownkey.hybrid._config import DB_FILE, load_audit_signer

    signer = load_audit_signer(home)
    return HybridStore(home / DB_FILE, load_config(home).org, signer=signer)
