"""Client SDK for CMK Hybrid (service 1001): content the platform stores but can never open.

:class:`HybridClient` (sync) and :class:`AsyncHybridClient` (httpx async) seal and open chat
messages for a conversation: a fresh DEK per message, wrapped by the *customer's* key service
(``ownkey hybrid serve``), the message in ownkey's envelope with service ID 1001 and the
conversation in its context. :class:`DekCache` bounds how long an unwrapped DEK is reused.
:class:`PlatformCredentials` (:class:`AsyncPlatformCredentials`) obtains the platform's
authorization tokens. Errors are ownkey's:
``KeyUnavailable`` (key service or platform unreachable), ``AccessDenied`` (refused: a token, the
role, membership, a revocation), ``InvalidCiphertext`` (the message does not open). See
docs/hybrid.md.
"""

from ownkey.client._cache import DekCache
from ownkey.client._client import AsyncHybridClient, HybridClient
from ownkey.client._credentials import (
    AsyncCredentials,
    AsyncPlatformCredentials,
    Credentials,
    PlatformCredentials,
)
from ownkey.client._format import MessageHeader, read_header

__all__ = [
    "AsyncCredentials",
    "AsyncHybridClient",
    "AsyncPlatformCredentials",
    "Credentials",
    "DekCache",
    "HybridClient",
    "MessageHeader",
    "PlatformCredentials",
    "read_header",
]
