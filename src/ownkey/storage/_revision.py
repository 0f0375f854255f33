"""The cheap schema-version check that lets an up-to-date database open without Alembic.

Importing Alembic and walking its script directory costs most of a second, which every CLI command
paid on open although the schema is almost always current. Instead, :func:`is_current` reads the
one row of ``alembic_version`` and compares it with the newest migration shipped in the package,
found by file name (``NNNN_<slug>.py``, whose revision id is ``NNNN``:
``tests/storage/test_revision.py`` checks both against Alembic's own view). Anything else, an
older, newer, missing or branched version, answers False, and the caller runs the migrations as
before (which upgrade, or refuse a database newer than this code): the shortcut never skips one.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from sqlalchemy import Engine, inspect, text

__all__ = ["is_current", "shipped_head"]

VERSIONS = Path(__file__).with_name("migrations") / "versions"
_MIGRATION = re.compile(r"(\d{4})_\w+\.py")


@functools.cache
def shipped_head() -> str:
    """The newest shipped migration's revision id (``0007``, ...)."""
    revisions = [m.group(1) for p in VERSIONS.iterdir() if (m := _MIGRATION.fullmatch(p.name))]
    if not revisions:  # pragma: no cover - a broken install: let Alembic say what is wrong
        return ""
    return max(revisions)


def is_current(engine: Engine) -> bool:
    """True only if the database is at exactly :func:`shipped_head` (one ``alembic_version``
    row equal to it)."""
    head = shipped_head()
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return bool(head) and [tuple(row) for row in rows] == [(head,)]
