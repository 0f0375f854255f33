"""Console sessions: an org admin token exchanged for a random session id, held on this node.

Why server-side: the cookie then carries nothing but an unguessable id, so neither the token nor
the org can be read or forged from it, and signing out (or the token being revoked) ends the
session at once. The token text stays in this process's memory only, and is shown to the token
store again on every request: a revoked token stops opening the console on its next page.

Each session has its own CSRF token, which every form posts back; a pre-session token guards
the sign-in form the same way (double submit: cookie and field must match).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SESSION_SECONDS", "Session", "Sessions", "same_secret"]

#: A session ends this long after sign-in, whatever it does (then sign in again).
SESSION_SECONDS = 8 * 3600.0
#: At most this many live sessions per node; the oldest goes first (a bound on memory).
MAX_SESSIONS = 10_000


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

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def start(self, *, token: str, org: str, actor: str) -> Session:
        """A new session for an authenticated org admin token."""
        session = Session(
            session_id=secrets.token_urlsafe(32),
            token=token,
            org=org,
            actor=actor,
            csrf=secrets.token_urlsafe(32),
            expires_at=self._clock() + SESSION_SECONDS,
        )
        with self._lock:
            while len(self._by_id) >= MAX_SESSIONS:
                self._by_id.pop(next(iter(self._by_id)))
            self._by_id[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, or None (unknown or expired: an expired one is gone)."""
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires_at <= self._clock():
                del self._by_id[session_id]
                return None
        return session

    def end(self, session_id: str | None) -> None:
        """Forget a session (sign-out); unknown ids are ignored."""
        if session_id:
            with self._lock:
                self._by_id.pop(session_id, None)
