"""Bearer tokens of the REST API, stored hashed (docs/api.md).

A token reads ``okt_<id>.<secret>``: ``id`` is 16 hex digits, public, the row to look up;
``secret`` is 256 random bits in unpadded base64url. Only SHA-256 of the secret is stored, so a
copy of the database lets nobody call the API; the comparison is constant-time. Two kinds:

- ``org``: an org admin token, valid on that org's admin routes only;
- ``platform``: a platform service token, valid on the data plane only.

The token text is returned once, by :meth:`TokenStore.issue`, and never again. A token may carry
an expiry (``expires_in``): from that instant on it authenticates nothing, like a revoked one.
Each successful authentication records when the token was last used, to the minute
(:data:`LAST_USED_GRANULARITY_MS`), so a busy token costs one write a minute, not one a request.

Authentication is served from memory (issue 25): a token's row is read from the database at most
once every ``recheck_after`` seconds (default 1 s) per node, and the secret, the revocation and
the expiry are checked against that copy on every request. So a token revoked on any node is
refused on every node within ``recheck_after`` (at once on the node that revoked it), and a node
no longer pays a database read per request. Should the database be unreachable when a copy is
due, the copy keeps serving for at most ``outage_grace`` seconds (default 30 s) after it was last
read, so warm traffic rides out a short outage; a revocation cannot be written during one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import SQLAlchemyError

from ownkey.envelope import RandomSource, sha256
from ownkey.errors import NotFound
from ownkey.policy import check_note
from ownkey.storage._engine import Database
from ownkey.storage._schema import api_tokens

__all__ = [
    "LAST_USED_GRANULARITY_MS",
    "ORG_TOKEN",
    "PLATFORM_TOKEN",
    "TOKEN_KINDS",
    "ApiToken",
    "TokenStore",
]

ORG_TOKEN: Final = "org"  # noqa: S105 - a kind of token, not a secret
PLATFORM_TOKEN: Final = "platform"  # noqa: S105
TOKEN_KINDS: Final = (ORG_TOKEN, PLATFORM_TOKEN)
_PREFIX = "okt_"
_SECRET_BYTES = 32
_ID_BYTES = 8
_SHAPE = re.compile(r"okt_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
_ID = re.compile(r"[0-9a-f]{16}")
#: ``last_used_at_ms`` is rewritten only when it is older than this.
LAST_USED_GRANULARITY_MS: Final = 60_000
#: How long a node trusts its copy of a token's row (the revocation bound across nodes).
DEFAULT_RECHECK_AFTER: Final = 1.0
#: How long a copy keeps serving past ``recheck_after`` when the database cannot be read.
DEFAULT_OUTAGE_GRACE: Final = 30.0
_MAX_CACHED = 10_000


@dataclass(slots=True)
class _Copy:
    """A node's copy of one token's row: its digest, its record, when the row was read."""

    digest: bytes
    token: ApiToken
    read_at: float


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token: who it speaks for. Never carries the secret or its digest."""

    token_id: str
    kind: str
    org: str | None
    created_at_ms: int
    revoked_at_ms: int | None
    note: str
    expires_at_ms: int | None = None
    last_used_at_ms: int | None = None

    @property
    def active(self) -> bool:
        """Not revoked (an expired token is still listed as not revoked; see :meth:`state`)."""
        return self.revoked_at_ms is None

    def expired(self, now_ms: int) -> bool:
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms

    def state(self, now_ms: int) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at_ms is not None:
            return "revoked"
        return "expired" if self.expired(now_ms) else "active"


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        token_id=row.token_id,
        kind=row.kind,
        org=row.org,
        created_at_ms=int(row.created_at_ms),
        revoked_at_ms=None if row.revoked_at_ms is None else int(row.revoked_at_ms),
        note=row.note,
        expires_at_ms=None if row.expires_at_ms is None else int(row.expires_at_ms),
        last_used_at_ms=None if row.last_used_at_ms is None else int(row.last_used_at_ms),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _parse(text: str) -> tuple[str, bytes] | None:
    match = _SHAPE.fullmatch(text)
    if match is None:
        return None
    try:
        secret = base64.urlsafe_b64decode(match.group(2) + "=")
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only base64url
        return None
    if _b64(secret) != match.group(2):
        # The last character of 32 bytes in base64 carries 2 unused bits: 'B', 'C', 'D' decode
        # like 'A'. Only the text issued authenticates, not four spellings of it.
        return None
    return match.group(1), secret


class TokenStore:
    """Issues, authenticates, lists and revokes API tokens in ``api_tokens``."""

    def __init__(
        self,
        database: Database,
        *,
        random: RandomSource = os.urandom,
        clock: Callable[[], float] = time.time,
        recheck_after: float = DEFAULT_RECHECK_AFTER,
        outage_grace: float = DEFAULT_OUTAGE_GRACE,
    ) -> None:
        self._db = database
        self._random = random
        self._clock = clock
        self._recheck_after = recheck_after
        self._outage_grace = outage_grace
        self._copies: OrderedDict[str, _Copy] = OrderedDict()
        self._lock = threading.Lock()
        # A digest to compare against when the id is unknown, so that an unknown id and a wrong
        # secret take the same path.
        self._decoy = sha256(random(_SECRET_BYTES))

    def issue(
        self,
        kind: str,
        *,
        org: str | None = None,
        note: str = "",
        expires_in: float | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; return its record and its text (shown once, stored only hashed).
        ``expires_in`` (seconds, > 0): the token stops working that long from now."""
        if expires_in is not None and not expires_in > 0:
            raise ValueError("a token's lifetime must be positive")
        if kind not in TOKEN_KINDS:
            raise ValueError(f"unknown token kind {kind!r}; one of {', '.join(TOKEN_KINDS)}")
        check_note("note", note)  # shown in `ownkey token list`: no ESC sequences
        if (kind == ORG_TOKEN) != bool(org):
            raise ValueError("an org token names exactly one org; a platform token names none")
        token_id = self._random(_ID_BYTES).hex()
        secret = self._random(_SECRET_BYTES)
        now_ms = round(self._clock() * 1000)
        record = ApiToken(
            token_id=token_id,
            kind=kind,
            org=org if kind == ORG_TOKEN else None,
            created_at_ms=now_ms,
            revoked_at_ms=None,
            note=note,
            expires_at_ms=None if expires_in is None else now_ms + round(expires_in * 1000),
        )
        with self._db.engine.begin() as conn:
            conn.execute(
                insert(api_tokens).values(
                    token_id=record.token_id,
                    kind=record.kind,
                    org=record.org,
                    digest=sha256(secret),
                    created_at_ms=record.created_at_ms,
                    revoked_at_ms=None,
                    note=note,
                    expires_at_ms=record.expires_at_ms,
                )
            )
        return record, f"{_PREFIX}{token_id}.{_b64(secret)}"

    def authenticate(self, text: str) -> ApiToken | None:
        """The active token ``text`` names, or None (malformed, unknown, wrong, revoked or
        expired); records the use (to the minute). Served from this node's copy of the row
        while it is younger than ``recheck_after`` (see the module docstring)."""
        parsed = _parse(text)
        if parsed is None:
            return None
        token_id, secret = parsed
        now = self._clock()
        copy = self._copy(token_id, now)
        stored = self._decoy if copy is None else copy.digest
        matches = hmac.compare_digest(stored, sha256(secret))
        if copy is None or not matches or copy.token.revoked_at_ms is not None:
            return None
        return self._used(token_id, copy, now)

    def active(self, token_id: str) -> ApiToken | None:
        """The token of that id while it is active (neither revoked nor expired), else None;
        records the use like :meth:`authenticate`, from the same copy of the row (re-read when
        older than ``recheck_after``). The console checks its sessions' tokens this way: a
        session holds the token's id, never the token."""
        if not _ID.fullmatch(token_id):
            return None
        now = self._clock()
        copy = self._copy(token_id, now)
        if copy is None or copy.token.revoked_at_ms is not None:
            return None
        return self._used(token_id, copy, now)

    def _used(self, token_id: str, copy: _Copy, now: float) -> ApiToken | None:
        """The copy's token unless it expired; its last use recorded, to the minute."""
        token = copy.token
        now_ms = round(now * 1000)
        if token.expired(now_ms):
            return None
        last = token.last_used_at_ms
        if last is None or now_ms - last >= LAST_USED_GRANULARITY_MS:
            token = dataclasses.replace(token, last_used_at_ms=now_ms)
            copy.token = token
            try:
                with self._db.engine.begin() as conn:
                    conn.execute(
                        update(api_tokens)
                        .where(api_tokens.c.token_id == token_id)
                        .values(last_used_at_ms=now_ms)
                    )
            except SQLAlchemyError:
                pass  # bookkeeping only: an outage must not refuse a valid token for it
        return token

    def _copy(self, token_id: str, now: float) -> _Copy | None:
        """This node's copy of the row, read again when older than ``recheck_after``; on a
        database error, a copy younger than ``recheck_after + outage_grace`` keeps serving."""
        with self._lock:
            copy = self._copies.get(token_id)
            if copy is not None:
                self._copies.move_to_end(token_id)
        if copy is not None and now - copy.read_at < self._recheck_after:
            return copy
        try:
            with self._db.engine.connect() as conn:
                row = conn.execute(
                    select(api_tokens).where(api_tokens.c.token_id == token_id)
                ).first()
        except SQLAlchemyError:
            if copy is not None and now - copy.read_at < self._recheck_after + self._outage_grace:
                return copy
            raise
        with self._lock:
            if row is None:
                self._copies.pop(token_id, None)
                return None
            fresh = _Copy(bytes(row.digest), _token(row), now)
            self._copies[token_id] = fresh
            while len(self._copies) > _MAX_CACHED:
                self._copies.popitem(last=False)
        return fresh

    def forget(self, token_id: str | None = None) -> None:
        """Drop this node's copy of a token's row (all of them for None): the next request
        reads it again. A change feed calls it when another node revokes a token."""
        with self._lock:
            if token_id is None:
                self._copies.clear()
            else:
                self._copies.pop(token_id, None)

    def all(self, *, org: str | None = None) -> list[ApiToken]:
        """Every token (of one org, if given), oldest first."""
        query = select(api_tokens).order_by(api_tokens.c.created_at_ms, api_tokens.c.token_id)
        if org is not None:
            query = query.where(api_tokens.c.org == org)
        with self._db.engine.connect() as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token from the next request on (NotFound if there is none)."""
        with self._db.engine.begin() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.token_id == token_id)).first()
            if row is None:
                raise NotFound(f"no token {token_id}")
            if row.revoked_at_ms is None:
                conn.execute(
                    update(api_tokens)
                    .where(api_tokens.c.token_id == token_id)
                    .values(revoked_at_ms=round(self._clock() * 1000))
                )
            row = conn.execute(select(api_tokens).where(api_tokens.c.token_id == token_id)).one()
        self.forget(token_id)  # refused here from the next request on; elsewhere within 1 s
        return _token(row)
