"""Adapters to key managers (local, PKCS#11, KMIP, AWS KMS).

Each provider implements :class:`ownkey.keys.KeyProvider` and translates its manager's errors
into ownkey's error tree. :class:`LocalKeyProvider` holds keys in this process: the embedded
default and the provider of the tests.
"""

from ownkey.providers._local import LocalKeyProvider

__all__ = ["LocalKeyProvider"]
