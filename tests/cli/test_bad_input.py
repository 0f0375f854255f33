"""Issue 12 on the command line: every bad value is one line and exit 2, checked before storing.

Each case failed before: times out of range stored as rules (then every ``revoke list``
crashed), ``--service 0024`` stored, ``--home /etc/passwd`` a traceback, ``--waiting-period 0d``
exit 1, ``audit export --since X`` silently empty 31 days after X, files 0644.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from ownkey.service import Runtime
from tests.cli.test_admin import acme, home, js, ok, one_line_error, run

__all__ = ["acme", "home"]  # fixtures, imported for pytest


BAD_RULES: list[tuple[str, ...]] = [
    ("--since", "1796149629000"),  # milliseconds by mistake
    ("--since", "inf"),
    ("--since", "-inf"),
    ("--since", "nan"),
    ("--since", "1e400"),
    ("--until", "-inf"),
    ("--since", "-5"),
    ("--since", "10000-01-01"),
    ("--since", "2026-02-01", "--until", "2026-01-01"),
    ("--service", "0024"),
    ("--service", "1"),
    ("--scope", "chat\x00"),
]


def test_a_bad_rule_is_exit_2_and_not_stored(acme: Path) -> None:
    """One org for every case (each one a CLI run), to keep make test lean."""
    for args in BAD_RULES:
        message = one_line_error(run("revoke", "add", "acme", *args))
        assert args[0] in message or "since" in message, (args, message)
        one_line_error(run("revoke", "preview", "acme", *args))
    assert js("revoke", "list", "acme") == []


def test_milliseconds_are_named_as_such(acme: Path) -> None:
    message = one_line_error(run("revoke", "add", "acme", "--since", "1796149629000"))
    assert "milliseconds" in message


#: Rules stored before the times were checked: (rule id, times, field named, JSON shown, word).
OLD_RULES: list[tuple[str, dict[str, float], str, object, str]] = [
    ("r-ms", {"since": 1796149629000.0}, "since", 1796149629000, "milliseconds"),
    ("r-inf", {"since": float("inf")}, "since", "inf", "finite"),
    ("r-minf", {"until": float("-inf")}, "until", "-inf", "finite"),
    ("r-neg", {"since": -5.0}, "since", -5, "1970"),
    ("r-empty", {"since": 1.8e9, "until": 1.7e9}, "until", 1_700_000_000, "after"),
]


def _plant_old_rules() -> None:
    from ownkey.keys import RevocationRule
    from ownkey.storage import Database, SqlRuleStore, database_url

    database = Database.open(database_url())  # the service door checks; the store reads all
    try:
        store = SqlRuleStore(database)
        for rule_id, times, *_ in OLD_RULES:
            store.add(RevocationRule(org="acme", rule_id=rule_id, created_at=1.0, **times))
    finally:
        database.close()


def test_a_rule_stored_by_an_older_version_still_lists(acme: Path) -> None:
    """A rule with an unprintable time (stored before the check) must not break listing, nor
    be shown as something it is not: its time as stored, ``valid: false`` and the problem
    (before: ``-5`` printed as a date of 1969, ``until`` before ``since`` a traceback)."""
    _plant_old_rules()
    listed = run("revoke", "list", "acme")
    assert listed.exit_code == 0, listed.output
    for rule_id, *_ in OLD_RULES:
        assert rule_id in listed.stdout
    assert listed.stdout.count("UNREADABLE") == len(OLD_RULES), listed.stdout
    shown = {rule["rule_id"]: rule for rule in js("revoke", "list", "acme")}
    for rule_id, _, field, value, word in OLD_RULES:
        rule = shown[rule_id]
        assert rule[field] == value, rule
        assert rule["valid"] is False, rule
        assert field in rule["problem"], rule
        assert word in rule["problem"], rule
        assert "whole scope" in rule["problem"]
    lifted = js("revoke", "lift", "r-ms")
    assert (lifted["since"], lifted["valid"]) == (1796149629000, False)


def test_a_bad_waiting_period_is_exit_2(acme: Path) -> None:
    ok("key", "disable", "acme")
    for period in ("0d", "0", "99999999999999999999d", "3651d", "-1d", "7x", "1h"):
        one_line_error(run("key", "schedule-destruction", "acme", "--waiting-period", period))
    assert js("key", "list", "acme")[0]["destroy_at"] is None


def test_home_that_is_a_file_is_one_line(home: Path) -> None:
    one_line_error(run("--home", "/etc/passwd", "org", "list"), code=1)


def test_home_open_to_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    message = one_line_error(run("--home", str(shared), "org", "list"), code=1)
    assert "chmod 700" in message


def test_files_in_home_are_the_owners_only(acme: Path) -> None:
    recorded = {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": "ann@acme.test",
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "m-1",
        "asset_id": "rec-1",
    }
    old = os.umask(0o022)
    try:
        with Runtime.open() as rt:
            rt.assets.put_asset(recorded, io.BytesIO(b"x" * 1000))
            for suffix in ("", "-wal", "-shm"):
                path = acme / f"ownkey.db{suffix}"
                if path.exists():
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        os.umask(old)
    objects = acme / "objects"
    for directory in [objects, *(p for p in objects.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert stat.S_IMODE((acme / "ownkey.db").stat().st_mode) == 0o600


def test_audit_export_takes_seconds_like_revoke_and_pages_to_the_end(acme: Path) -> None:
    """``--since`` without ``--until`` exports everything after it, not 31 days of it."""
    ok("revoke", "add", "acme", "--scope", "c1")
    # a day in 2001, in seconds: the same unit as revoke's --since
    out = ok("audit", "export", "acme", "--since", "1000000000").stdout.splitlines()
    assert out, "events after 2001 exist (the org was created just now)"
    assert json.loads(out[-1])["event"]["action"] == "revocation.add"
    one_line_error(run("audit", "export", "acme", "--since", "1000000000000"))  # ms: refused
    one_line_error(run("audit", "export", "acme", "--since", "inf"))
    one_line_error(run("audit", "export", "acme", "--service-id", "0024"))
    one_line_error(run("audit", "export", "acme", "--asset-id", "a\x00"))


def test_a_home_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root writes anyway: make the home a child of a file
        blocker = tmp_path / "file"
        blocker.write_text("x")
        locked = blocker / "home"
    one_line_error(run("--home", str(locked), "org", "list"), code=1)


#: Listener options out of range. ``--workers 100000`` forked until the machine ran out of memory
#: (found by trying it: the run was OOM-killed with ~100 workers alive); ``--port 99999`` was a
#: traceback from bind(); ``--recheck-interval inf`` served with no recheck bound at all.
BAD_LISTENERS: list[tuple[str, ...]] = [
    ("serve", "--workers", "100000"),
    ("serve", "--workers", "0"),
    ("serve", "--port", "99999"),
    ("serve", "--port", "-1"),
    ("serve", "--recheck-interval", "inf"),
    ("serve", "--recheck-interval", "nan"),
    ("serve", "--recheck-interval", "86400"),
    ("serve", "--log-level", "bogus"),
    ("hybrid", "serve", "--home", "kacls", "--port", "70000"),
]


def test_a_listener_option_out_of_range_is_refused_before_anything_starts(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(args))
    for args in BAD_LISTENERS:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert args[-2] in result.output, (args, result.output)
    assert started == []  # nothing was served, no worker forked


def test_ids_a_user_or_a_listing_takes_follow_the_one_id_rule(acme: Path) -> None:
    """``user add acme $'a\\x01b'`` stored a user with a control character; ``objects list
    --prefix`` took a NUL. Both are ids by the rule of ownkey.policy."""
    message = one_line_error(run("user", "add", "acme", "a\x01b@acme.example"))
    assert "not a user's email address" in message  # ownkey.policy.canonical_email
    assert "a\x01b@acme.example" not in {row["user"] for row in js("user", "list", "acme")}
    one_line_error(run("objects", "list", "acme", "--prefix", "rec\x00"))


#: Digits that are not ASCII pass ``str.isdigit()``: ``int("²")`` raised (a traceback), and
#: ``"٠٠٠٨"`` (Arabic-Indic) passed as a 4-digit service ID.
UNICODE_DIGITS: list[tuple[str, ...]] = [
    ("objects", "list", "acme", "--service-id", "²²²²"),
    ("objects", "list", "acme", "--service-id", "0024"),
    ("jobs", "run", "backfill", "acme", "--service", "٠٠٠٨"),
    ("key", "register", "acme", "--provider", "kmip", "--key-id", "x", "--set", "host=h",
     "--set", "port=²"),
]  # fmt: skip
#: A provider timeout reaches a socket: nan and inf were taken, and hours too.
KMIP = ("key", "register", "acme", "--provider", "kmip", "--key-id", "x", "--set", "host=h",
        "--set", "port=5696", "--set", "cert=/c", "--set", "key=/k", "--set", "ca=/a")  # fmt: skip


TIMEOUTS = [(*KMIP, "--set", f"timeout={t}") for t in ("nan", "inf", "601", "0")]


@pytest.mark.parametrize("args", UNICODE_DIGITS + TIMEOUTS)
def test_numbers_are_ascii_digits_and_timeouts_bounded(acme: Path, args: tuple[str, ...]) -> None:
    message = one_line_error(run(*args))
    assert "Traceback" not in message


@pytest.mark.parametrize("timeout", ["nan", "inf", "1e400", "601", "-1"])
def test_a_provider_timeout_is_checked_before_any_socket(timeout: str) -> None:
    """nan and inf were taken as timeouts (``nan <= 0`` is false) and reached the socket."""
    from ownkey.errors import ConfigError
    from ownkey.providers._factory import build_provider

    settings = {"host": "127.0.0.1", "port": "5696", "cert": "/c", "key": "/k", "ca": "/a"}
    with pytest.raises(ConfigError, match="timeout"):
        build_provider("kmip", {**settings, "timeout": timeout})


ESCAPES = "\x1b[2J\x1b[31mred\x07\u202e"  # clear screen, colour, bell, a bidi override


@pytest.mark.parametrize(
    "args",
    [
        ("revoke", "add", "acme", "--scope", "s1", "--note", ESCAPES),
        ("revoke", "add", "acme", "--scope", "s1", "--note", "n" * 1001),
        ("token", "create", "--org", "acme", "--note", ESCAPES),
        ("token", "create", "--org", "acme", "--note", "line\nbreak"),
    ],
)
def test_a_note_is_printable_text(acme: Path, args: tuple[str, ...]) -> None:
    """A note is shown in other admins' terminals: an ESC sequence was stored and replayed."""
    message = one_line_error(run(*args))
    assert "note" in message
    assert "\x1b" not in message


def test_tables_print_stored_control_characters_as_escapes(acme: Path) -> None:
    """A note planted in the database (by an older version, or an insider) holding ``ESC[2J``
    cleared the operator's screen in ``ownkey revoke list``; rich markup (``[link=...]``) was
    rendered. Every table cell is now plain text with control characters escaped."""
    from ownkey.keys import RevocationRule
    from ownkey.storage import Database, SqlRuleStore, database_url

    database = Database.open(database_url())
    try:
        SqlRuleStore(database).add(
            RevocationRule(org="acme", rule_id="r-esc", scope="s", note=ESCAPES + "[bold]b[/bold]")
        )
    finally:
        database.close()
    listed = run("revoke", "list", "acme")
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.stdout
    assert "\x07" not in listed.stdout
    assert "\u202e" not in listed.stdout
    assert "\\x1b[2J" in listed.stdout
    assert "[bold]" in listed.stdout  # markup would have been taken and removed


@pytest.mark.parametrize(
    "args",
    [
        ("--scope", ""),
        ("--scope", "c\x00"),
        ("--scope-key", ""),
        ("--service", "0024"),
        ("--service", "٠٠٠٨"),
    ],
)
def test_a_rekey_filter_is_checked_before_any_job(acme: Path, args: tuple[str, ...]) -> None:
    """``--scope ''`` and ``--scope-key ''`` were read as no filter: a job re-keyed the whole
    org (and would shred its old scope keys after the waiting period)."""
    one_line_error(run("jobs", "run", "rekey", "acme", *args))
    one_line_error(run("jobs", "preview", "rekey", "acme", *args))
    assert [job for job in js("jobs", "status") if job["kind"] == "rekey"] == []
