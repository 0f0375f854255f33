"""Envelope format v2: seal and open content under a scope key (docs/spec/envelope-v2.md).

Two suites share one header style. The *message* suite seals small payloads in one call with 79
bytes of overhead beyond the scope key id (a per-instance salt, so no two cipher instances share
an AES key, and a commitment to key, header and context; version 1 messages still open); the
*stream* suite seals large assets in segments, in bounded memory, and opens any byte range by
decrypting only the segments that cover it. Every failure to open raises the same
:class:`~ownkey.errors.InvalidCiphertext`.

It also re-exports the two other primitives the pure core needs, SHA-256 and Ed25519 (for the
audit chain's hashes and signed checkpoints), so that ``_primitives`` stays the only module that
touches ``cryptography.hazmat``.
"""

from ownkey.envelope._context import (
    ContextTemplate,
    EncryptionContext,
    encode_context,
    encode_fields,
)
from ownkey.envelope._format import (
    FORMAT_VERSION,
    MESSAGE_FIXED_OVERHEAD,
    SUITE_MESSAGE,
    SUITE_STREAM,
    peek_key_id,
)
from ownkey.envelope._keys import SECRET_KEY_ACCESS, ScopeKey, SecretKeyAccess, combine_shares
from ownkey.envelope._message import (
    MAX_MESSAGE_BYTES,
    SEALS_PER_MESSAGE_KEY,
    MessageCipher,
    RandomSource,
    open_message,
    seal_message,
)
from ownkey.envelope._primitives import (
    GCM_NONCE_BYTES,
    GCM_TAG_BYTES,
    Aes256Gcm,
    Ed25519Signer,
    ed25519_verify,
    sha256,
)
from ownkey.envelope._stream import (
    DEFAULT_SEGMENT_SIZE,
    MAX_SEGMENT_SIZE,
    MIN_SEGMENT_SIZE,
    Readable,
    SeekableReadable,
    StreamLayout,
    StreamOpener,
    Writable,
    blob_suite,
    open_range,
    open_range_into,
    open_stream,
    seal_stream,
    sealed_size,
    stream_layout,
)

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "FORMAT_VERSION",
    "GCM_NONCE_BYTES",
    "GCM_TAG_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_SEGMENT_SIZE",
    "MESSAGE_FIXED_OVERHEAD",
    "MIN_SEGMENT_SIZE",
    "SEALS_PER_MESSAGE_KEY",
    "SECRET_KEY_ACCESS",
    "SUITE_MESSAGE",
    "SUITE_STREAM",
    "Aes256Gcm",
    "ContextTemplate",
    "Ed25519Signer",
    "EncryptionContext",
    "MessageCipher",
    "RandomSource",
    "Readable",
    "ScopeKey",
    "SecretKeyAccess",
    "SeekableReadable",
    "StreamLayout",
    "StreamOpener",
    "Writable",
    "blob_suite",
    "combine_shares",
    "ed25519_verify",
    "encode_context",
    "encode_fields",
    "open_message",
    "open_range",
    "open_range_into",
    "open_stream",
    "peek_key_id",
    "seal_message",
    "seal_stream",
    "sealed_size",
    "sha256",
    "stream_layout",
]
