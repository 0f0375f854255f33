"""Upgrades (issue 28, item 3): several nodes open one database at once, an operator migrates it
on purpose, and builds one schema revision apart run side by side.

Each test runs real processes on separate homes (PostgreSQL) or one home (SQLite), the way nodes
share a deployment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from ownkey.errors import ConfigError
from ownkey.storage import Database, _revision
from ownkey.storage._migrate import upgrade
from ownkey.storage._revision import shipped_head

VERSION = version("ownkey")

#: One node's process: everything imported first, then it waits for the others, so that the
#: opens (and their migrations) start within a millisecond of each other. ``--migrations DIR``
#: plays another build: the same code with that set of migrations.
_NODE = """
import json, sys, time
from pathlib import Path
import ownkey.service._runtime, ownkey.storage._migrate, ownkey.cli._org  # the slow imports
import ownkey.storage._revision
from ownkey.cli import main
args = sys.argv[1:]
if args[0] == "--migrations":
    ownkey.storage._revision.MIGRATIONS = Path(args[1])
    args = args[2:]
ready, go, *argv = args
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
if argv == ["--library"]:
    from ownkey.service import Runtime
    with Runtime.open() as runtime:
        print(json.dumps([org.name for org in runtime.orgs()]))
else:
    sys.argv = ["ownkey", *argv]
    main()
"""


def _node_env(home: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    home.mkdir(mode=0o700, exist_ok=True)
    env["OWNKEY_HOME"] = str(home)
    if url is not None:  # nodes on separate homes share the database and its root key
        env["OWNKEY_DATABASE_URL"] = url
        env["OWNKEY_ROOT_KEY"] = "42" * 32
    return env


def _at_once(
    tmp_path: Path,
    homes: list[Path],
    url: str | None,
    *argv: str,
    migrations: Path | None = None,
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``ownkey ARGV`` in one process per home, all released at the same instant."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    build = [] if migrations is None else ["--migrations", str(migrations)]
    procs = []
    for n, home in enumerate(homes):
        ready = tmp_path / f"ready-{go.name}-{n}"
        procs.append(
            (
                ready,
                subprocess.Popen(
                    [sys.executable, "-c", _NODE, *build, str(ready), str(go), *argv],
                    env=_node_env(home, url),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _ in procs):
        assert time.monotonic() < deadline, "a node did not start"
        assert all(p.poll() is None for _, p in procs), [p.communicate() for _, p in procs]
        time.sleep(0.01)
    go.touch()
    done = []
    for _, proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _ownkey(
    home: Path, url: str | None, *argv: str, migrations: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """One ``ownkey ARGV`` process (of the build whose migrations are ``migrations``)."""
    [done] = _at_once(home.parent, [home], url, *argv, migrations=migrations)
    return done


def _all_succeed(done: list[subprocess.CompletedProcess[str]], out: str | None = "[]") -> None:
    for result in done:
        assert "OWNKEY_DATABASE_URL" not in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0, result.stderr
        if out is not None:
            assert result.stdout.strip() == out, result.stdout


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refusing command prints (exit 1), no traceback, no URL."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ownkey: "), lines
    assert "OWNKEY_DATABASE_URL" not in lines[0]
    assert "postgresql" not in lines[0]
    return lines[0]


# -- the migration lock --------------------------------------------------------------------------


def test_three_nodes_open_one_empty_sqlite_file_at_once(tmp_path: Path) -> None:
    """The attack on SQLite: every command migrates the local file on open; all succeed."""
    home = tmp_path / "home"
    _all_succeed(_at_once(tmp_path, [home, home, home], None, "org", "list", "--json"))


def test_three_nodes_open_one_empty_postgresql_database_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """The attack on PostgreSQL, three nodes on separate homes opening the runtime (which
    migrates): two of them failed with an IntegrityError, reported as "check ... that
    OWNKEY_DATABASE_URL is right". Under the advisory lock one migrates, two find it done."""
    homes = [tmp_path / f"node-{n}" for n in range(3)]
    _all_succeed(_at_once(tmp_path, homes, postgres_url, "--library"))


def test_three_nodes_run_db_upgrade_at_once_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    homes = [tmp_path / f"node-{n}" for n in range(3)]
    done = _at_once(tmp_path, homes, postgres_url, "db", "upgrade", "--json")
    _all_succeed(done, out=None)
    for result in done:
        assert json.loads(result.stdout)["revision"] == shipped_head()
    _all_succeed(_at_once(tmp_path, homes, postgres_url, "org", "list", "--json"))


# -- who migrates --------------------------------------------------------------------------------


def test_commands_do_not_migrate_postgresql_and_say_so(tmp_path: Path, postgres_url: str) -> None:
    """On PostgreSQL only ``ownkey db upgrade`` changes the schema; a command on an empty or
    older database refuses with one line that names it."""
    home = tmp_path / "node"
    line = _one_line(_ownkey(home, postgres_url, "org", "list"))
    assert "no ownkey schema yet" in line
    assert "run `ownkey db upgrade` first" in line
    status = _ownkey(home, postgres_url, "db", "status", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["state"] == "behind"
    assert _revisions(postgres_url) == ()


def test_serve_does_not_migrate(tmp_path: Path) -> None:
    """``ownkey serve`` on a local home that is behind refuses with one line and changes
    nothing; after ``ownkey db upgrade`` ``db status`` says it is current."""
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'ownkey.db'}"
    line = _one_line(_ownkey(home, None, "serve", "--port", "0"))
    assert "run `ownkey db upgrade` first" in line
    database = Database.open(url, migrate=False, check=False)
    try:
        upgrade(database.engine, "0010")
    finally:
        database.close()
    line = _one_line(_ownkey(home, None, "serve", "--port", "0", "--workers", "2"))
    assert f"schema is at revision 0010; ownkey {VERSION} needs revision {shipped_head()}" in line
    assert _revisions(url) == ("0010",)
    upgraded = _ownkey(home, None, "db", "upgrade")
    assert upgraded.stdout.strip() == f"schema upgraded: 0010 -> {shipped_head()}"
    status = _ownkey(home, None, "db", "status")
    assert status.returncode == 0
    assert f"build     ownkey {VERSION} (migrations up to {shipped_head()})" in status.stdout
    assert "current: this build runs against it" in status.stdout


def _revisions(url: str) -> tuple[str, ...]:
    database = Database.open(url, migrate=False, check=False)
    try:
        return database.schema().revisions
    finally:
        database.close()


# -- two builds side by side ---------------------------------------------------------------------


def _build(
    tmp_path: Path, name: str, *, drop_newest: bool = False, newer: str | None = None
) -> Path:
    """Another build's migrations: the shipped ones without the newest (an older build), or with
    one more migration that creates a table and declares ``newer`` (a newer build)."""
    copy = tmp_path / name
    shutil.copytree(_revision.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    head = shipped_head()
    if drop_newest:
        [newest] = (copy / "versions").glob(f"{head}_*.py")
        newest.unlink()
    if newer is not None:
        nxt = f"{int(head) + 1:04d}"
        (copy / "versions" / f"{nxt}_newer_build.py").write_text(
            f'"""a newer build\'s migration"""\n\nfrom alembic import op\n\n'
            f'revision = "{nxt}"\ndown_revision = "{head}"\nbranch_labels = None\n'
            f"depends_on = None\n{newer}\n\n"
            "def upgrade() -> None:\n"
            '    op.execute("CREATE TABLE newer_build (id INTEGER)")\n\n\n'
            "def downgrade() -> None:\n"
            '    op.execute("DROP TABLE newer_build")\n',
            encoding="utf-8",
        )
    return copy


@pytest.fixture
def playing(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make this process the build whose migrations are at the given place."""

    def play(migrations: Path) -> None:
        monkeypatch.setattr(_revision, "MIGRATIONS", migrations)

    return play


def test_an_older_build_runs_against_a_newer_expand_only_schema(
    tmp_path: Path, postgres_url: str
) -> None:
    """The rolling-upgrade rule with two builds on one PostgreSQL, separate homes: the database
    is at the newest build's head; the build one migration older starts ``serve`` beside the
    newer one, says which build it is and which schema it found, and answers."""
    older = _build(tmp_path, "older", drop_newest=True)
    new_home, old_home = tmp_path / "new", tmp_path / "old"
    _all_succeed([_ownkey(new_home, postgres_url, "db", "upgrade")], out=None)
    # the older build's commands: no Alembic traceback, no migration, its view of the schema
    status = _ownkey(old_home, postgres_url, "db", "status", "--json", migrations=older)
    assert status.returncode == 0, status.stderr
    seen = json.loads(status.stdout)
    assert (seen["state"], seen["can_run"], seen["revision"]) == ("ahead", True, shipped_head())
    assert seen["head"] == f"{int(shipped_head()) - 1:04d}" == _older_head(older)
    _all_succeed([_ownkey(old_home, postgres_url, "org", "list", "--json", migrations=older)])
    _all_succeed([_ownkey(old_home, postgres_url, "db", "upgrade", migrations=older)], out=None)
    assert _revisions(postgres_url) == (shipped_head(),)
    # and both serve side by side
    servers = [_serve(new_home, postgres_url, None), _serve(old_home, postgres_url, older)]
    try:
        for _, base, _ in servers:
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        (_, _, new_line), (_, _, old_line) = servers
        assert new_line == (
            f"ownkey {VERSION} (migrations up to {shipped_head()}), "
            f"database schema {shipped_head()}"
        )
        assert old_line == (
            f"ownkey {VERSION} (migrations up to {_older_head(older)}), database schema "
            f"{shipped_head()}, ahead of this build (allowed by the rolling-upgrade rule)"
        )
    finally:
        for process, _, _ in servers:
            process.terminate()
            process.communicate(timeout=30)


def _older_head(migrations: Path) -> str:
    return max(p.name[:4] for p in (migrations / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


#: ``ownkey serve`` as one build: its migrations set, then the CLI's entry point.
_SERVE = """
import sys
from pathlib import Path
import ownkey.storage._revision
if sys.argv[1] != "-":
    ownkey.storage._revision.MIGRATIONS = Path(sys.argv[1])
from ownkey.cli import main
sys.argv = ["ownkey", *sys.argv[2:]]
main()
"""


def _serve(home: Path, url: str, migrations: Path | None) -> tuple[subprocess.Popen[str], str, str]:
    """A running ``ownkey serve`` of a build; its process, address and build-info line."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    build = "-" if migrations is None else str(migrations)
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE, build, "serve", "--port", str(port)],
        env=_node_env(home, url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = ""
    while "(migrations up to " not in first:  # the build-info line, in the log's format
        first = process.stderr.readline()
        assert first, "ownkey serve wrote no build-info line"
    first = first[first.index(f"ownkey {VERSION}") :].strip()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, first + process.stderr.read()
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base, first
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "ownkey serve never answered"
        time.sleep(0.1)


def test_a_migration_older_builds_cannot_run_against_is_refused_until_asked_for(
    tmp_path: Path, playing: Callable[[Path], None]
) -> None:
    """A newer build's migration declares ``breaks_builds_before``: opening does not apply it,
    ``db upgrade`` only with ``--breaking``; then the older build (this one) refuses to start,
    one line naming both revisions, never an Alembic traceback, and the newer build runs."""
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'ownkey.db'}"
    head = shipped_head()
    nxt = f"{int(head) + 1:04d}"
    newer = _build(tmp_path, "newer", newer=f'breaks_builds_before = "{nxt}"')
    _all_succeed([_ownkey(home, None, "org", "list", "--json")])  # this build, at its head
    line = _one_line(_ownkey(home, None, "org", "list", migrations=newer))
    assert (
        f"the migrations from revision {head} to {nxt} stop builds older than revision {nxt}"
        in line
    )
    assert "run `ownkey db upgrade --breaking`" in line
    line = _one_line(_ownkey(home, None, "db", "upgrade", migrations=newer))
    assert "--breaking" in line
    assert _revisions(url) == (head,)
    done = _ownkey(home, None, "db", "upgrade", "--breaking", migrations=newer)
    assert done.stdout.strip() == f"schema upgraded: {head} -> {nxt}", done.stderr
    # this build is now the older one
    refusal = (
        f"the database schema is at revision {nxt}, which needs builds from revision {nxt} on; "
        f"ownkey {VERSION} knows revisions up to {head}: upgrade this node"
    )
    for argv in (("serve", "--port", "0"), ("org", "list"), ("db", "upgrade")):
        assert _one_line(_ownkey(home, None, *argv)) == f"ownkey: {refusal}"
    status = _ownkey(home, None, "db", "status")
    assert status.returncode == 1
    assert "state     refused" in status.stdout
    assert f"needs     builds from revision {nxt} on" in status.stdout
    with pytest.raises(ConfigError) as refused:
        Database.open(url)
    assert str(refused.value) == refusal
    playing(newer)  # the newer build runs against it
    database = Database.open(url, migrate=False)
    try:
        assert database.schema().state == "current"
    finally:
        database.close()


def test_an_expand_only_migration_is_applied_on_open_and_the_older_build_runs_on(
    tmp_path: Path, playing: Callable[[Path], None]
) -> None:
    """A newer build's expand-only migration: a local home migrates on open; this build (now the
    older one) opens the database as it is, without Alembic, and runs."""
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'ownkey.db'}"
    head = shipped_head()
    nxt = f"{int(head) + 1:04d}"
    newer = _build(tmp_path, "newer", newer="")
    _all_succeed([_ownkey(home, None, "org", "list", "--json", migrations=newer)])
    assert _revisions(url) == (nxt,)
    _all_succeed([_ownkey(home, None, "org", "list", "--json")])
    database = Database.open(url)
    status = database.schema()
    database.close()
    assert (status.state, status.can_run, status.oldest_build) == ("ahead", True, None)
    playing(newer)
    assert _revisions(url) == (nxt,)
    database = Database.open(url, migrate=False)
    assert database.schema().state == "current"
    database.close()


@pytest.mark.parametrize("rows", [["abc"], ["0001", "0002"]])
def test_a_revision_this_build_does_not_know_is_refused_in_one_line(
    tmp_path: Path, rows: list[str]
) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'ownkey.db'}"
    _all_succeed([_ownkey(home, None, "org", "list", "--json")])
    database = Database.open(url)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
        for row in rows:
            conn.exec_driver_sql("INSERT INTO alembic_version VALUES (?)", (row,))
    database.close()
    for argv in (("org", "list"), ("db", "upgrade"), ("serve", "--port", "0")):
        line = _one_line(_ownkey(home, None, *argv))
        assert f"is not one ownkey {VERSION} knows (its newest is {shipped_head()})" in line


def test_a_running_node_reports_a_schema_it_can_no_longer_run_against(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/readyz`` (and ``/healthz``) name the node's build and its schema check: once a newer
    build applied a migration that stops this one, the node answers 503 with that one line, so
    its load balancer stops sending it requests."""
    from fastapi.testclient import TestClient

    from ownkey.api import create_app
    from ownkey.service import Runtime
    from ownkey.service._readiness import PROBE_CACHE_SECONDS

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    url = f"sqlite:///{home / 'ownkey.db'}"
    head = shipped_head()
    nxt = f"{int(head) + 1:04d}"
    newer = _build(tmp_path, "newer", newer=f'breaks_builds_before = "{nxt}"')
    with Runtime.open(home=home, env={}) as runtime, TestClient(create_app(runtime)) as client:
        answer = client.get("/healthz").json()
        assert answer["build"] == f"ownkey {VERSION}"
        assert answer["checks"]["schema"] == {
            "status": "ok",
            "detail": f"{head} (this build: up to {head})",
        }
        shipped = _revision.MIGRATIONS
        monkeypatch.setattr(_revision, "MIGRATIONS", newer)  # the newer build, elsewhere
        database = Database.open(url, migrate=False, check=False)
        database.migrate(breaking=True)
        database.close()
        monkeypatch.setattr(_revision, "MIGRATIONS", shipped)
        time.sleep(PROBE_CACHE_SECONDS)  # the schema answer is reused for that long
        refused = client.get("/readyz")
        assert refused.status_code == 503
        assert refused.json()["checks"]["schema"] == {
            "status": "failed",
            "detail": f"the database schema is at revision {nxt}, which needs builds from "
            f"revision {nxt} on; ownkey {VERSION} knows revisions up to {head}: "
            "upgrade this node",
        }


#: Migrations up to this one predate the rule: builds before ``ownkey db`` migrated on every open.
RULE_FROM = "0013"
_CONTRACTS = re.compile(r"\b(drop_column|drop_table|drop_constraint|rename_table|alter_column)\b")


def _contracts(upgrading: str) -> bool:
    """Whether an ``upgrade`` body looks like more than an expansion."""
    if _CONTRACTS.search(upgrading):
        return True
    added = re.findall(r"add_column\((.*?)\)\s*\)", upgrading, re.DOTALL)
    return any("nullable=False" in col and "server_default" not in col for col in added)


def test_every_migration_after_the_rule_is_expand_only_or_says_it_is_not() -> None:
    """A guard, not a proof: a later migration whose ``upgrade`` drops, renames, alters a column
    or adds a NOT NULL one without a server default declares ``breaks_builds_before`` (or says in a
    ``# expand-only:`` comment why older builds are not affected); a declared revision is one
    the migration's own build has."""
    for path in sorted(_revision.VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")):
        revision, source = path.name[:4], path.read_text(encoding="utf-8")
        declared = re.search(r'^breaks_builds_before = "(\d{4})"', source, re.MULTILINE)
        if declared is not None:
            assert declared.group(1) <= revision, path.name
        if revision <= RULE_FROM:
            continue
        upgrading = source.partition("def upgrade(")[2].partition("def downgrade(")[0]
        if _contracts(upgrading):
            assert declared is not None or "# expand-only:" in source, path.name


@pytest.mark.parametrize(
    ("body", "contracts"),
    [
        ('batch_op.add_column(sa.Column("origin", sa.Text(), nullable=True))', False),
        (
            'op.add_column("t", sa.Column("x", sa.Text(), nullable=False, server_default="a"))',
            False,
        ),
        ('op.create_table("t", sa.Column("x", sa.Text(), nullable=False))', False),
        ('batch_op.add_column(sa.Column("x", sa.Text(), nullable=False))', True),
        ('op.drop_column("t", "x")', True),
        ('batch_op.alter_column("x", new_column_name="y")', True),
    ],
)
def test_the_guard_tells_expansions_from_contractions(body: str, contracts: bool) -> None:
    assert _contracts(body) is contracts


def test_a_new_root_key_file_appears_whole_and_the_first_one_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three nodes starting at once on one new home: one read ``root.key`` after another had
    created it and before it wrote the key ("does not hold a 32-byte key"). The key is written
    under a name of its own and linked into place: never seen half-written, and a node that
    loses the race reads the winner's key."""
    from ownkey.providers._rootkey import ROOT_KEY_FILE, load_root_key

    home = tmp_path / "home"
    env = {"OWNKEY_HOME": str(home)}
    seen_while_writing: list[bool] = []
    fsync = os.fsync

    def watched_fsync(fd: int) -> None:
        seen_while_writing.append((home / ROOT_KEY_FILE).exists())
        fsync(fd)

    monkeypatch.setattr(os, "fsync", watched_fsync)
    load_root_key(env, random=lambda n: b"\x01" * n)
    assert seen_while_writing == [False]
    assert sorted(p.name for p in home.iterdir()) == [ROOT_KEY_FILE]
    assert (home / ROOT_KEY_FILE).read_text() == "01" * 32 + "\n"

    other = tmp_path / "other"
    link = os.link

    def another_node_wins(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # its key, whole
        os.write(fd, b"02" * 32 + b"\n")
        os.close(fd)
        link(src, dst)  # this node's link then fails: it reads theirs

    monkeypatch.setattr(os, "link", another_node_wins)
    load_root_key({"OWNKEY_HOME": str(other)}, random=lambda n: b"\x03" * n)
    assert sorted(p.name for p in other.iterdir()) == [ROOT_KEY_FILE]
    assert (other / ROOT_KEY_FILE).read_text() == "02" * 32 + "\n"
