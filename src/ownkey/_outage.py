"""Riding out a short database outage on the data plane (issue 28, item 7): one rule, used by
the key layer (a cached scope key's record re-check) and the service's read caches.

The hot path's read caches (key records, revocation rules, the org directory) re-read the
database every re-check interval (1 s). When that read fails because the database cannot be
reached, the last answer keeps serving for at most :data:`OUTAGE_GRACE` seconds after it was
read, and the read is tried again at most once a second: warm traffic goes on through a short
outage, as the token check does (``storage/_tokens.py``). Nothing can change meanwhile through
ownkey (a revocation is a database write, refused during the outage); a longer outage fails the
calls, as before. Any other error is raised at once.
"""

from __future__ import annotations

__all__ = ["OUTAGE_GRACE", "RETRY_AFTER", "is_outage"]

#: How long a last answer serves after it was read while the database cannot be reached.
OUTAGE_GRACE = 30.0
#: How long a failed re-read is not tried again (so an outage costs one attempt a second).
RETRY_AFTER = 1.0
_OUTAGE_NAMES = frozenset({"OperationalError", "InterfaceError"})


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (SQLAlchemy's ``OperationalError``
    or ``InterfaceError``, matched by name so that the memory profile never imports
    SQLAlchemy)."""
    return any(
        cls.__name__ in _OUTAGE_NAMES and cls.__module__.startswith("sqlalchemy")
        for cls in type(exc).__mro__
    )
