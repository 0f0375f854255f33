"""The one rule for a user's identity (an email address), and its one comparable form.

Every place that stores, grants or checks a user calls :func:`canonical_email` and compares the
strings it returns, nothing else: the org directory (``ownkey user add``, ``POST
/v1/orgs/{org}/users``), the platform's CMK Hybrid grants and membership, and the customer's key
service (token ``email`` claims, revocations, the privileged list). Two spellings are one user
exactly when their canonical forms are equal.

The rule, and why:

- **ASCII only.** A non-ASCII character is refused, not folded: Unicode case mapping merges
  letters that look different and splits letters that look alike (``"\\u212a".lower()`` is
  ``"k"``, so ``"\\u212aim@acme.test".lower()`` was kim's address and got kim's grant), and
  NFKC, confusable tables or IDNA each merge another set. Refusing them leaves one mapping,
  ASCII lower-casing, that merges only ``A``-``Z`` with ``a``-``z``.
- **A valid address**: one ``@``; a local part of 1 to 64 characters of RFC 5322's ``atext``
  and non-leading, non-trailing, non-repeated dots; a domain of at least two DNS labels (letters,
  digits, inner hyphens, 1 to 63 each), 253 at most; 254 in all. ``ann`` alone is not a user.
- **Lower-cased, local part too.** The domain is case-insensitive by DNS; the local part is by
  every identity provider ownkey meets, and one stored form means ``Ann@Acme.test`` and
  ``ann@acme.test`` can never be two users, nor two revocations, nor two grants.

A refusal is :class:`~ownkey.errors.InvalidRequest` with one line naming the field.
"""

from __future__ import annotations

import re
from typing import Final

from ownkey.errors import InvalidRequest

__all__ = ["MAX_EMAIL_CHARS", "canonical_email"]

MAX_EMAIL_CHARS: Final = 254
_LOCAL: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z"
)
_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def _refuse(field: str, value: str, why: str) -> InvalidRequest:
    shown = value if len(value) <= 64 else value[:61] + "..."
    return InvalidRequest(field, f"{shown!a} is not a user's email address: {why}")


def canonical_email(field: str, value: object) -> str:
    """The canonical form of the email address ``value`` (ASCII, lower-cased), or
    InvalidRequest naming ``field`` with one line that says which part of the rule failed."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(field, "must be an email address such as ann@acme.example")
    if not value.isascii():
        raise _refuse(field, value, "only ASCII is accepted (a look-alike letter is another user)")
    if len(value) > MAX_EMAIL_CHARS:
        raise _refuse(field, value, f"longer than {MAX_EMAIL_CHARS} characters")
    local, at, domain = value.partition("@")
    if not at:
        raise _refuse(field, value, "no @domain")
    if not local or len(local) > 64 or not _LOCAL.match(local):
        raise _refuse(field, value, "the part before @ is not a valid local part")
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _refuse(field, value, "the part after @ is not a domain such as acme.example")
    return value.lower()
