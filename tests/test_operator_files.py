"""Files an operator keeps beside ownkey, and an insider with disk access can edit: damaged, each
is one ``ConfigError`` naming the file (fail closed, a one-line message), never a traceback.

``[[[[...`` nested thousands deep made json.loads raise ``RecursionError``, which the readers
did not catch (a traceback from ``ownkey key check``); a file of the wrong shape raised
``AttributeError``/``TypeError`` in some of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ownkey.errors import ConfigError

DAMAGED = {
    "deep": "[" * 5000,
    "not json": "xx",
    "a list": "[1, 2]",
    "wrong fields": '{"format": 1, "keys": [1], "seeds": [1], "org": 1}',
    "wrong inner fields": '{"acme": {"users": 5, "conversations": {"c": 1}}, "seeds": ["AA=="]}',
    "binary": "\udcff",
}


def _local_keys(path: Path) -> None:
    from ownkey.providers._local_store import JsonKeyFile

    JsonKeyFile(path).get("anything")


def _hybrid_config(path: Path) -> None:
    from ownkey.hybrid._config import CONFIG_FILE, load_config

    path.rename(path.parent / CONFIG_FILE)
    load_config(path.parent)


def _signing_keys(path: Path) -> None:
    from ownkey.hybrid import SigningKeys

    SigningKeys.persistent(path)


def _membership(path: Path) -> None:
    from ownkey.hybrid.platform import JsonMembership

    JsonMembership(path).org_of("ann@acme.test")


READERS: dict[str, Callable[[Path], None]] = {
    "local-keys.json": _local_keys,
    "hybrid.json": _hybrid_config,
    "signing keys": _signing_keys,
    "membership": _membership,
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_damaged_file_is_one_config_error(tmp_path: Path, reader: str, damage: str) -> None:
    path = tmp_path / "file.json"
    path.write_bytes(DAMAGED[damage].encode("utf-8", "surrogateescape"))
    if reader == "membership" and damage == "a list":
        READERS[reader](path)  # a list is read as "no orgs": nobody is let in
        return
    with pytest.raises(ConfigError) as raised:
        READERS[reader](path)
    assert "\n" not in str(raised.value)
    assert str(path.name) in str(raised.value) or "hybrid.json" in str(raised.value)
