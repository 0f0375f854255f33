"""Which schema a database has, and whether this build may run against it, without Alembic.

Importing Alembic and walking its script directory costs most of a second, which every CLI command
paid on open although the schema is almost always current. Instead, :func:`schema_status` reads the
one row of ``alembic_version`` and compares it with the newest migration shipped in the package,
found by file name (``NNNN_<slug>.py``, whose revision id is ``NNNN``:
``tests/storage/test_revision.py`` checks both against Alembic's own view). Only a database that is
behind runs the migrations; the shortcut never skips one.

The rolling-upgrade rule (docs/operations.md, "Upgrades"): every migration is *expand-only* unless
it says otherwise, so a build may run against a schema newer than its own newest migration (the
other nodes' newer build migrated it). A migration that older builds cannot run against declares
``breaks_builds_before = "NNNN"``; applying it records the revision in ``schema_compat``, and a
build whose newest migration is older than that refuses to run, with one line naming both
revisions. A revision id that is not four digits, or several rows, is a schema this build does not
know: it refuses too, and never hands the database to Alembic.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, Engine, inspect, text

__all__ = [
    "COMPAT_TABLE",
    "MIGRATIONS",
    "VERSIONS",
    "SchemaStatus",
    "build_name",
    "is_current",
    "read_status",
    "schema_status",
    "shipped_head",
]

#: The shipped migrations (Alembic's script location). A test points it at a copy without the
#: newest file to play an older build (``tests/storage/test_upgrades.py``).
MIGRATIONS = Path(__file__).with_name("migrations")
VERSIONS = MIGRATIONS / "versions"
#: Bookkeeping beside ``alembic_version``: the oldest build (by its newest migration) that may
#: run against this schema, written only when a migration declares ``breaks_builds_before``.
COMPAT_TABLE = "schema_compat"
_MIGRATION = re.compile(r"(\d{4})_\w+\.py")
_REVISION = re.compile(r"\d{4}")

State = Literal["current", "behind", "ahead", "unknown"]


@functools.cache
def _head_of(versions: Path) -> str:
    revisions = [m.group(1) for p in versions.iterdir() if (m := _MIGRATION.fullmatch(p.name))]
    if not revisions:  # pragma: no cover - a broken install: let Alembic say what is wrong
        return ""
    return max(revisions)


def build_name() -> str:
    """This build as an operator sees it: ``ownkey 0.1.0`` (the installed package's version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"ownkey {version('ownkey')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "ownkey 0+unknown"


def shipped_head() -> str:
    """This build's newest migration's revision id (``0007``, ...)."""
    return _head_of(MIGRATIONS / "versions")


@dataclasses.dataclass(frozen=True)
class SchemaStatus:
    """A database's schema revision against this build's newest migration (``head``)."""

    #: ``alembic_version``'s rows: none for an empty database, one for a migrated one.
    revisions: tuple[str, ...]
    head: str
    #: The oldest build that may run against the schema (``schema_compat``), if it says.
    oldest_build: str | None = None

    @property
    def build(self) -> str:
        """This build as ``ownkey --version`` names it (``ownkey 0.1.0``)."""
        return build_name()

    @property
    def revision(self) -> str | None:
        """The database's revision, None when it has none (empty) or several (unknown)."""
        return self.revisions[0] if len(self.revisions) == 1 else None

    @property
    def state(self) -> State:
        """``current``, ``behind`` (empty included), ``ahead`` of this build, or ``unknown``."""
        if not self.revisions:
            return "behind"
        found = self.revision
        if found is None or not _REVISION.fullmatch(found) or not self.head:
            return "unknown"
        if found == self.head:
            return "current"
        return "behind" if found < self.head else "ahead"

    @property
    def can_run(self) -> bool:
        """Whether this build may run against the schema as it is (no migration needed)."""
        state = self.state
        if state == "ahead":
            return self.oldest_build is None or self.oldest_build <= self.head
        return state == "current"

    def described(self) -> str:
        """The database's revision in words: ``0011``, ``empty``, or the rows found."""
        if not self.revisions:
            return "empty"
        return self.revision or ",".join(self.revisions)

    def refusal(self, build: str | None = None) -> str | None:
        """One line saying why ``build`` (default: this one, ``ownkey 0.1.0``) may not run
        here, or None."""
        state = self.state
        if state == "current" or (state == "ahead" and self.can_run):
            return None
        build = build_name() if build is None else build
        if state == "behind":
            found = (
                "has no ownkey schema yet"
                if not self.revisions
                else f"schema is at revision {self.revision}"
            )
            return (
                f"the database {found}; {build} needs revision {self.head}: "
                "run `ownkey db upgrade` first"
            )
        if state == "unknown":
            return (
                f"the database schema revision ({self.described()}) is not one {build} knows "
                f"(its newest is {self.head}); refusing to run"
            )
        return (
            f"the database schema is at revision {self.revision}, which needs builds from "
            f"revision {self.oldest_build} on; {build} knows revisions up to {self.head}: "
            "upgrade this node"
        )


def read_status(conn: Connection, head: str | None = None) -> SchemaStatus:
    """The schema status as seen on ``conn`` (inside the caller's transaction, if any)."""
    head = shipped_head() if head is None else head
    tables = inspect(conn)
    if not tables.has_table("alembic_version"):
        return SchemaStatus((), head)
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    revisions = tuple(sorted(str(row) for row in rows))
    oldest = None
    if len(revisions) == 1 and revisions[0] != head and tables.has_table(COMPAT_TABLE):
        oldest = conn.execute(text("SELECT max(oldest_build) FROM schema_compat")).scalar()
    return SchemaStatus(revisions, head, None if oldest is None else str(oldest))


def schema_status(engine: Engine) -> SchemaStatus:
    """The schema status of the database behind ``engine`` (one short read)."""
    with engine.connect() as conn:
        return read_status(conn)


def is_current(engine: Engine) -> bool:
    """True only if the database is at exactly :func:`shipped_head` (one ``alembic_version``
    row equal to it)."""
    return schema_status(engine).state == "current"
