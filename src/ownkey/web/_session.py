"""Console sessions: an org admin token exchanged for a random session id, kept in the database.

Why server-side: the cookie then carries nothing but an unguessable id, so neither the token nor
the org can be read or forged from it, and signing out ends the session at once. Why in the
database (issue 28, item 7): every node of a fleet reads the same sessions, so a session made on
one node opens pages on every other, and a sign-out on any node ends it on all of them from
their next page (:class:`~ownkey.storage.SessionStore`; only SHA-256 of the id is stored).

A session holds the id of the token it signed in with, never the token; every page asks the
token store whether that id is still active (:meth:`~ownkey.storage.TokenStore.active`, from the
node's copy of the token's row, read again at most once a second): a revoked or expired token
ends its sessions at once on the node where it was revoked, within that second on the others.

Each session has its own CSRF token, which every form posts back; a pre-session token guards
the sign-in form the same way (double submit: cookie and field must match).

Sessions are bounded per org, never at another org's expense (issue 23), counted in the
database: an org has at most :data:`MAX_SESSIONS_PER_ORG` live sessions, a new one ending that
org's oldest; the database holds at most :data:`MAX_SESSIONS`, and when they are all live a new
sign-in is refused (:class:`SessionsFull`) rather than ending a session of another org.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ownkey.storage import SessionRecord, SessionStore

__all__ = [
    "MAX_SESSIONS",
    "MAX_SESSIONS_PER_ORG",
    "SESSION_SECONDS",
    "Session",
    "Sessions",
    "SessionsFull",
    "same_secret",
]

#: A session ends this long after sign-in, whatever it does (then sign in again).
SESSION_SECONDS = 8 * 3600.0
#: At most this many live sessions in the database (the fleet's); a sign-in beyond is refused.
MAX_SESSIONS = 10_000
#: At most this many live sessions per org; a new one ends that org's oldest. Far above the
#: admins an org signs in at once, far below :data:`MAX_SESSIONS`.
MAX_SESSIONS_PER_ORG = 64


class SessionsFull(Exception):  # noqa: N818 - an answer, not an error of the error tree
    """:data:`MAX_SESSIONS` live sessions are held: no room without ending another org's."""


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time equality of a posted secret and the expected one (False when missing)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in org admin: the org, its token's id, the audit actor, the form token, when
    it ends."""

    session_id: str = field(repr=False)
    token_id: str
    org: str
    actor: str
    csrf: str = field(repr=False)
    expires_at: float


class Sessions:
    """The console's sessions over a :class:`~ownkey.storage.SessionStore`, on this clock."""

    def __init__(
        self,
        store: SessionStore,
        *,
        clock: Callable[[], float] = time.time,
        max_sessions: int = MAX_SESSIONS,
        max_per_org: int = MAX_SESSIONS_PER_ORG,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max = max_sessions
        self._max_per_org = max_per_org

    def start(self, *, token_id: str, org: str, actor: str) -> Session:
        """A new session for an authenticated org admin token (:class:`SessionsFull` if there
        is no room left without ending another org's session)."""
        now_ms = round(self._clock() * 1000)
        session_id = secrets.token_urlsafe(32)
        record = SessionRecord(
            org=org,
            token_id=token_id,
            actor=actor,
            csrf=secrets.token_urlsafe(32),
            created_at_ms=now_ms,
            last_seen_ms=now_ms,
            expires_at_ms=now_ms + round(SESSION_SECONDS * 1000),
        )
        if not self._store.start(
            session_id, record, max_per_org=self._max_per_org, max_total=self._max
        ):
            raise SessionsFull
        return _session(session_id, record)

    def count(self, org: str | None = None) -> int:
        """How many sessions are held (of ``org``, or of every org): expired ones included until
        the next sign-in drops them."""
        return self._store.count(org)

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, or None (unknown or expired: an expired one is gone)."""
        if not session_id:
            return None
        record = self._store.get(session_id, now_ms=round(self._clock() * 1000))
        return None if record is None else _session(session_id, record)

    def end(self, session_id: str | None) -> None:
        """End a session on every node (sign-out); unknown ids are ignored."""
        if session_id:
            self._store.end(session_id)


def _session(session_id: str, record: SessionRecord) -> Session:
    return Session(
        session_id=session_id,
        token_id=record.token_id,
        org=record.org,
        actor=record.actor,
        csrf=record.csrf,
        expires_at=record.expires_at_ms / 1000,
    )
