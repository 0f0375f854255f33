"""The key service's own value rule (an issuer URL), beside ``ownkey.policy``'s.

``hybrid init`` and the revocation list check what they are given with these (emails by
``ownkey.policy.canonical_email``, the one identity rule of the project) before anything is
written, so that a typo is refused in one line instead of becoming a setting or a revocation
that no token could ever match.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ownkey.errors import InvalidRequest
from ownkey.policy import check_id

__all__ = ["check_issuer"]


def check_issuer(field: str, url: str) -> str:
    """An issuer is an ``https://`` (or, on loopback and in tests, ``http://``) URL with a host:
    tokens are checked against it and its JWKS is fetched from it."""
    check_id(field, url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # an unclosed [IPv6 literal, a bad port
        host = None
    if host is None or parts.scheme not in ("https", "http") or " " in url:
        raise InvalidRequest(field, "an issuer URL such as https://idp.example.com")
    return url
