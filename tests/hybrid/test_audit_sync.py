"""Issue 25, item 4: the key service's audit records without one fsync per call.

``audit_sync: normal`` (the default) puts each record in SQLite's write-ahead log before the key
leaves, without flushing it to disk per call; a crash of the key service's process loses none of
them (shown here with a process that ends without closing anything); ``full`` flushes each.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ownkey.errors import ConfigError
from ownkey.hybrid._store import HybridStore


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_records_written_by_a_process_that_dies_are_all_there(tmp_path: Path, sync: str) -> None:
    path = tmp_path / "hybrid.db"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from ownkey.hybrid._store import HybridStore
        store = HybridStore(Path({str(path)!r}), "acme", audit_sync={sync!r})
        for n in range(50):
            store.append({{"action": "unwrap", "n": n}})
        os._exit(0)  # no close, no checkpoint: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    store = HybridStore(path, "acme")
    try:
        assert [record.seq for record in store.records()] == list(range(1, 51))
    finally:
        store.close()


def test_an_unknown_sync_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="audit_sync"):
        HybridStore(tmp_path / "hybrid.db", "acme", audit_sync="off")
