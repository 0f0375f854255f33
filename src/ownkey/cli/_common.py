"""What every admin command shares: opening the runtime, errors as one line, JSON or tables.

Exit codes, the same for every command:

- ``0``: done;
- ``1``: ownkey or a key manager refused or failed (access denied, a key manager unavailable,
  an illegal key-state transition, a missing configuration such as an unregistered key);
- ``2``: bad input: a malformed or unknown value on the command line, or a named object (org,
  user, key, rule, job) that does not exist.

Errors print one line on stderr, ``ownkey: <what is wrong>``; never a traceback, never a secret
(ownkey's error messages carry none).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from ownkey.errors import InvalidRequest, NotFound, OwnkeyError

if TYPE_CHECKING:  # rich is imported by the commands that print with it (startup)
    from rich.console import Console
    from rich.table import Table

    from ownkey.keys import KeyRef
    from ownkey.service import Runtime

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: The actor recorded in the audit log for changes made from the command line.
CLI_ACTOR = "cli"

#: The TCP ports a listener (``serve``, ``hybrid serve``) takes; 0 lets the system pick a free one.
PORT_MIN, PORT_MAX = 0, 65535

JSON_OPTION = typer.Option("--json", help="Print JSON instead of a table.")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``ownkey: message`` on stderr and exit with ``code``."""
    typer.echo(f"ownkey: {one_line(message)}", err=True)
    raise typer.Exit(code=code)


def exit_code(exc: BaseException) -> int:
    """2 for bad input (InvalidRequest, NotFound, ValueError), 1 for everything else."""
    bad_input = isinstance(exc, InvalidRequest | NotFound | ValueError)
    return EXIT_BAD_INPUT if bad_input else EXIT_FAILED


def _is_database_error(exc: BaseException) -> bool:
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - no sql extra, no database
        return False
    return isinstance(exc, SQLAlchemyError)


def _stdout_gone() -> bool:
    """Whether the broken pipe is our standard output (a reader that stopped early), not a
    socket to a key manager or a database, whose failure must still be reported. The write end
    of a pipe whose reader has closed polls as an error."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's buffer)
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn ownkey's errors (and ValueErrors from parsing) into one line and an exit code; a
    database failure too, named by its type only (its message may carry the URL's password)."""
    try:
        yield
    except (OwnkeyError, ValueError) as exc:
        fail(str(exc), exit_code(exc))
    except OSError as exc:  # a full disk, a home that cannot be written: one line, no traceback
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            raise  # the reader left (`ownkey audit events ORG | head`): click exits quietly
        where = f" ({exc.filename})" if exc.filename else ""
        fail(f"a file operation failed{where}: {exc.strerror or type(exc).__name__}", EXIT_FAILED)
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        fail(
            f"the database failed ({type(exc).__name__}); check that it is reachable and that "
            "OWNKEY_DATABASE_URL is right",
            EXIT_FAILED,
        )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block, then as it was.

    Importing SQLAlchemy and the service layer allocates some 10^5 objects that live as long as
    the process (classes, functions, tables); the collector walks them several times while they
    are made and frees none of them, a tenth of a read-only command's start-up. Reference
    counting still frees everything else in the block at once."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def migrates_on_open() -> bool:
    """Whether a command opening the deployment migrates its schema: a local SQLite database
    yes (zero set-up: the first command creates it), PostgreSQL never; there the schema changes
    only by ``ownkey db upgrade`` (docs/operations.md, "Upgrades"), and a command against a schema
    behind this build refuses with one line that names it."""
    from ownkey.storage import database_url

    return database_url().startswith("sqlite")


@contextlib.contextmanager
def runtime() -> Iterator[Runtime]:
    """The runtime at ``--home`` / ``OWNKEY_HOME`` / ``OWNKEY_DATABASE_URL``, closed afterwards;
    errors inside the block become one line and an exit code."""
    with collector_paused():
        try:
            from ownkey.service import Runtime
        except ImportError:  # pragma: no cover - the sql extra is part of every install we test
            fail("the admin commands need the 'sql' extra: pip install 'ownkey[sql]'", EXIT_FAILED)
        with errors():
            opened = Runtime.open(migrate=migrates_on_open())
    try:
        with errors():
            yield opened
    finally:
        opened.close()


#: The width of tables when stdout is not a terminal: wide enough that no cell is cut or folded,
#: so piped output (``| grep``, ``> file``) keeps whole ids and hashes.
PIPED_WIDTH = 10_000


def console() -> Console:
    """Rich to stdout; a terminal's own width, else (piped) :data:`PIPED_WIDTH` unless
    ``COLUMNS`` says otherwise (Rich's default there is 80 columns, which cuts ids)."""
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPED_WIDTH
    return out


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def shown(value: object) -> str:
    """``value`` as text safe to print in a terminal: control and format characters (ESC, BEL,
    a bidi override) written as ``\\x1b``-style escapes. Values come from the database, which
    another admin (a tenant's, through the API) or an insider may have filled: a note holding
    ``ESC[2J`` cleared the operator's screen in ``ownkey revoke list``."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A rich table of ``rows``; each cell is plain text (:func:`shown`), never rich markup, so
    a stored ``[link=...]`` or ``[red]`` stays the characters it is."""
    from rich.table import Table
    from rich.text import Text

    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*(Text(shown(cell)) for cell in row))
    return out


def show(value: Any, as_json: bool, human: Callable[[Console], None]) -> None:
    """Print ``value`` as JSON, or let ``human`` print it."""
    if as_json:
        emit_json(value)
    else:
        human(console())


def split_csv(values: Sequence[str] | None) -> list[str]:
    """``--enable 0001,0008 --enable 0011`` -> ``["0001", "0008", "0011"]``."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def key_ref(text: str) -> KeyRef:
    """``acme`` (its customer key), ``customer:acme``, ``platform``."""
    from ownkey.keys import KeyRef

    if ":" not in text and text != "platform":
        text = f"customer:{text}"
    try:
        return KeyRef.parse(text)
    except ValueError as exc:
        fail(f"KEY: {exc} (write ORG, customer:ORG or platform)")


def duration(option: str, text: str | None) -> float | None:
    """Seconds from ``90``, ``90s``, ``15m``, ``24h``, ``7d`` (the shared rule of
    :func:`ownkey.policy.parse_duration`); one line and exit 2 otherwise."""
    if text is None:
        return None
    from ownkey.policy import parse_duration

    try:
        return parse_duration(option, text)
    except InvalidRequest as exc:
        fail(str(exc))


def moment(option: str, text: str | None) -> float | None:
    """Unix seconds from ``2026-11-01``, ``2026-11-01T10:00:00Z`` or a number of seconds,
    within 1970..9999 (:func:`ownkey.policy.parse_time`); one line and exit 2 otherwise."""
    if text is None:
        return None
    from ownkey.policy import parse_time

    try:
        return parse_time(option, text)
    except InvalidRequest as exc:
        fail(str(exc))


def checked(check: Callable[[str, Any], Any], option: str, value: Any) -> Any:
    """``check(option, value)`` from ``ownkey.policy``'s shared rules; one line, exit 2."""
    try:
        return check(option, value)
    except InvalidRequest as exc:
        fail(str(exc))


def iso(seconds: float | None) -> str | None:
    """ISO 8601 for printing; a value no calendar holds (stored by an older version) is shown
    as the number it is rather than ending the listing with a traceback."""
    if seconds is None:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return repr(seconds)


def progress_console() -> Console:
    """Progress bars go to stderr, so ``--json`` output on stdout stays parseable."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def is_tty() -> bool:
    return sys.stderr.isatty()
