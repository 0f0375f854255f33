"""Console sessions: an org admin token exchanged for a random session id, held on this node.

Why server-side: the cookie then carries nothing but an unguessable id, so neither the token nor
the org can be read or forged from it, and signing out (or the token being revoked) ends the
session at once. The token text stays in this process's memory only, and is shown to the token
store again on every request: a revoked token stops opening the console on its next page.

Each session has its own CSRF token, which every form posts back; a pre-session token guards
the sign-in form the same way (double submit: cookie and field must match).

Memory is bounded per org, never at another org's expense (issue 23): an org has at most
:data:`MAX_SESSIONS_PER_ORG` live sessions, a new one ending that org's oldest; the node holds at
most :data:`MAX_SESSIONS`, and when they are all live a new sign-in is refused
(:class:`SessionsFull`) rather than ending a session of another org.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
#: At most this many live sessions per node (a bound on memory); a sign-in beyond is refused.
MAX_SESSIONS = 10_000
#: At most this many live sessions per org; a new one ends that org's oldest. Far above the
#: admins an org signs in at once, far below :data:`MAX_SESSIONS`.
MAX_SESSIONS_PER_ORG = 64


class SessionsFull(Exception):  # noqa: N818 - an answer, not an error of the error tree
    """The node holds :data:`MAX_SESSIONS` live sessions: no room without ending another org's."""


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time equality of a posted secret and the expected one (False when missing)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in org admin: the org, the audit actor, the form token, when it ends."""

    session_id: str = field(repr=False)
    token: str = field(repr=False)
    org: str
    actor: str
    csrf: str = field(repr=False)
    expires_at: float


class Sessions:
    """The live sessions of one app, by id (thread-safe: sync routes run in a thread pool)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        max_sessions: int = MAX_SESSIONS,
        max_per_org: int = MAX_SESSIONS_PER_ORG,
    ) -> None:
        self._clock = clock
        self._max = max_sessions
        self._max_per_org = max_per_org
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}  # in sign-in order: the oldest first
        self._by_org: dict[str, dict[str, None]] = {}  # org -> its ids, the oldest first

    def start(self, *, token: str, org: str, actor: str) -> Session:
        """A new session for an authenticated org admin token (:class:`SessionsFull` if the
        node has no room left without ending another org's session)."""
        now = self._clock()
        session = Session(
            session_id=secrets.token_urlsafe(32),
            token=token,
            org=org,
            actor=actor,
            csrf=secrets.token_urlsafe(32),
            expires_at=now + SESSION_SECONDS,
        )
        with self._lock:
            self._drop_expired(now)
            mine = self._by_org.get(org, {})
            while mine and len(mine) >= self._max_per_org:
                self._drop(next(iter(mine)))
            if len(self._by_id) >= self._max:
                raise SessionsFull
            self._by_id[session.session_id] = session
            self._by_org.setdefault(org, {})[session.session_id] = None
        return session

    def count(self, org: str | None = None) -> int:
        """How many sessions are held (of ``org``, or of every org): expired ones included until
        they are next looked at."""
        with self._lock:
            return len(self._by_id) if org is None else len(self._by_org.get(org, ()))

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, or None (unknown or expired: an expired one is gone)."""
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires_at <= self._clock():
                self._drop(session_id)
                return None
        return session

    def end(self, session_id: str | None) -> None:
        """Forget a session (sign-out); unknown ids are ignored."""
        if session_id:
            with self._lock:
                self._drop(session_id)

    def _drop_expired(self, now: float) -> None:
        """Forget the expired sessions: every session lives as long, so they come first."""
        while self._by_id:
            oldest = next(iter(self._by_id.values()))
            if oldest.expires_at > now:
                return
            self._drop(oldest.session_id)

    def _drop(self, session_id: str) -> None:
        session = self._by_id.pop(session_id, None)
        if session is None:
            return
        mine = self._by_org.get(session.org)
        if mine is not None:
            mine.pop(session_id, None)
            if not mine:
                del self._by_org[session.org]
