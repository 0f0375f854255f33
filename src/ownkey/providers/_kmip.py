"""The ``kmip`` provider: AES-256 keys in a KMIP server, reached with PyKMIP over mutual TLS.

**Keys and versions.** A key id is a KMIP ``Name``; every active or deactivated symmetric key
carrying that name is one version, named by its KMIP unique identifier. The primary version is the
newest (``Initial Date``, then identifier) that is active. Rotation creates and activates a new
object under the same name.

**Binding the context, in the server.** Every wrap and unwrap hands the canonical context
(ENV-3 bytes, exactly) to the KMIP server as the associated data of an AES-256-GCM ``Encrypt`` or
``Decrypt`` (KMIP 1.4 fields; PyKMIP's client cannot send them, so the request is built from its
payload classes, :func:`_send`). The server draws the IV, computes the 128-bit tag over the context
and checks it on decrypt: it never returns a share for another context, and it sees the context
of every call (for its log, its policies)::

    blob v2 = 0x02 | u8 len(uid) | uid | u8 len(iv) | iv (12-16) | tag (16) | E_gcm(share)

Before the first use, each provider object probes the server once (:meth:`KmipProvider._probe`):
encrypt a random value with one associated data, and require that another is refused and the
first accepted. A server that lacks AES-GCM associated data, or accepts and ignores it, is a
:class:`~ownkey.errors.ConfigError` unless ``allow_local_binding`` was set, which makes wraps
version-1 blobs instead (never a silent downgrade; a version-2 blob is never opened there).

**Version-1 blobs** (sealed before, or under ``allow_local_binding``) still open: the context is
bound on ownkey's side only. Each drew a random 32-byte data key (DEK), sealed the share with it
in the envelope message suite (AES-256-GCM, key commitment, the context as associated data, a key
id that commits to the KMIP key id and version), and had the KMIP key encrypt the DEK (AES-CBC,
PKCS#5 padding, a server-chosen IV)::

    blob v1 = frame(uid, iv (16) || E_kmip(DEK) (48) || seal_message(DEK, share, context))

Either way a wrong context, a changed byte anywhere, or a blob of another key fails with
:class:`~ownkey.errors.InvalidCiphertext`, and the share is only recoverable through the server.
A rotation followed by a re-wrap moves version-1 blobs to version 2.

**Lifecycle.** KMIP has no reversible "disabled" (a revoked object never becomes active again),
no *pending destruction* and no tombstone, so ownkey keeps those states in the customer's server
itself, as an opaque object named ``ownkey-state:<key id>`` holding a
:class:`~ownkey.providers._common.StateMark`, which every ownkey node reads. *disable* records
``disabled`` there and leaves the KMIP objects active; *enable* removes the mark
(``reversible_disable`` is True). PyKMIP's server has no reversible way to stop a key: its states
only move forward, and a client may not change the ``Cryptographic Usage Mask`` nor the
``Operation Policy Name`` of an object. So with ``disable_in_server`` *disable* also revokes
(``Revoke``, privilege withdrawn) every active version, which the server then refuses to every
client, and *enable* raises :class:`~ownkey.errors.LifecycleError` (``reversible_disable`` is
False). *schedule_destruction* and *cancel_destruction* replace the mark;
*destroy* revokes (KMIP ``Revoke``, cessation of operation) and destroys (``Destroy``) every
version, irreversibly, and leaves a ``destroyed`` mark as the tombstone, but only where the
customer configured ownkey to own that step (``owns_destruction=True``, setting
``owns_destruction=true``). By default ownkey's destruction leaves the KMIP objects and the
``pending_destruction`` mark in the customer's server (no wrap or unwrap through ownkey), a due
destruction is not applied on the next use either, and the receipt says the key remains there.
A key whose versions the customer revoked in the KMIP server (no active version) reads as
``disabled`` as well, and its *enable* raises :class:`~ownkey.errors.LifecycleError`: KMIP
cannot re-activate it.

Every wrap and unwrap checks the mark. The mark, like the versions, is cached per key for
``_VERSIONS_TTL`` seconds, so an enabled key costs no extra round trip: a state change made
through this provider object acts on its very next call (it updates its cache), one made by
another ownkey node (or by hand in the server) within ``_VERSIONS_TTL``. A revocation in the KMIP
server needs no mark: the server refuses the key's next use itself.

**Errors.** ``PERMISSION_DENIED`` and ``WRONG_KEY_LIFECYCLE_STATE`` are
:class:`~ownkey.errors.AccessDenied` (the reason read back from the key's state); a failed
decryption (``CRYPTOGRAPHIC_FAILURE``, or PyKMIP's ``GENERAL_FAILURE`` for a bad tag or padding) is
InvalidCiphertext; a server certificate that does not verify, or an unsupported operation, is
:class:`~ownkey.errors.ConfigError`; the server rejecting *our* certificate (a revoked client
certificate) is AccessDenied; timeouts, refused or reset connections are
:class:`~ownkey.errors.KeyUnavailable`. Every socket operation is bounded by ``timeout``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import select
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Unpack

with warnings.catch_warnings():
    # PyKMIP 0.11 imports declarative_base from SQLAlchemy's 1.x location, which warns once at
    # import time (a MovedIn20Warning, a DeprecationWarning); nothing else is silenced.
    warnings.filterwarnings(
        "ignore", message=r"The ``declarative_base\(\)`` function", category=DeprecationWarning
    )
    from kmip import enums
    from kmip.core import exceptions as kmip_core_errors
    from kmip.core.attributes import CryptographicParameters
    from kmip.core.messages import messages as kmip_messages
    from kmip.core.messages import payloads as kmip_payloads
    from kmip.core.messages.contents import Operation as KmipOperation
    from kmip.pie import exceptions as kmip_errors
    from kmip.pie import objects as kmip_objects
    from kmip.pie.client import ProxyKmipClient

from ownkey.envelope import ScopeKey, open_message, seal_message
from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    LifecycleError,
    NotFound,
    OwnkeyError,
)
from ownkey.keys import (
    DestructionOutcome,
    DestructionReceipt,
    KeyAction,
    KeyDescription,
    KeyState,
    destruction_due,
    next_state,
)
from ownkey.providers._common import (
    BLOB_FORMAT,
    Adapter,
    AdapterOptions,
    StateMark,
    check_plaintext,
    context_bytes,
    frame,
    unframe,
)

__all__ = ["KmipProvider"]

# PyKMIP logs every failed connection at ERROR with no handler of its own, so Python's
# last-resort handler printed two extra lines on stderr before ownkey's one-line error. A
# NullHandler keeps them off stderr; an application that configures logging still gets them.
logging.getLogger("kmip").addHandler(logging.NullHandler())

_STATE_PREFIX: Final = "ownkey-state:"
_DEK_BYTES = 32
_IV_BYTES = 16
_CBC_BYTES = 48  # a 32-byte DEK plus one block of PKCS#5 padding
_KID_LABEL: Final = b"ownkey/kmip/v1\x00"
#: The format byte of a blob the server sealed with AES-GCM over the context (version 2); a
#: version-1 blob (:data:`~ownkey.providers._common.BLOB_FORMAT`) still opens.
_AEAD_FORMAT: Final = 0x02
_TAG_BYTES = 16
_MIN_IV_BYTES, _MAX_IV_BYTES = 12, 16  # GCM's standard 96 bits; PyKMIP's server draws 128
#: The KMIP version of the AES-GCM requests: associated data and tag exist from KMIP 1.4 on
#: (PyKMIP's encoder silently leaves them out of an older message).
_AEAD_KMIP_VERSION: Any = enums.KMIPVersion.KMIP_1_4
#: The associated data of the probe, and the one its ciphertext must be refused under.
_PROBE_AAD: Final = (b"ownkey/kmip/probe/a", b"ownkey/kmip/probe/b")
#: How long the versions and the state mark of a key are cached: the bound on how late this node
#: sees a change made by another node (a disable, an enable) or in the KMIP server by hand.
_VERSIONS_TTL = 30.0
_CBC_PARAMS: Final = {
    "block_cipher_mode": enums.BlockCipherMode.CBC,
    "padding_method": enums.PaddingMethod.PKCS5,
    "cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
}
_USAGE: Final = [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]

_DENIED_REASONS = frozenset(
    {enums.ResultReason.PERMISSION_DENIED, enums.ResultReason.WRONG_KEY_LIFECYCLE_STATE}
)
_CONFIG_REASONS = frozenset(
    {
        enums.ResultReason.INVALID_FIELD,
        enums.ResultReason.INVALID_MESSAGE,
        enums.ResultReason.OPERATION_NOT_SUPPORTED,
        enums.ResultReason.FEATURE_NOT_SUPPORTED,
        enums.ResultReason.KEY_FORMAT_TYPE_NOT_SUPPORTED,
        enums.ResultReason.ILLEGAL_OPERATION,
        enums.ResultReason.AUTHENTICATION_NOT_SUCCESSFUL,
    }
)
_BAD_BLOB_REASONS = frozenset(
    {enums.ResultReason.CRYPTOGRAPHIC_FAILURE, enums.ResultReason.GENERAL_FAILURE}
)
#: What a server answers an AES-GCM request it cannot do: it lacks the mode, the fields or KMIP 1.4.
_NO_AEAD_REASONS = _CONFIG_REASONS - {enums.ResultReason.AUTHENTICATION_NOT_SUCCESSFUL}
# TLS alerts with which a server rejects the client's certificate: the customer cut us off.
_REJECTED_ALERTS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_UNKNOWN_CA",
    "ALERT_ACCESS_DENIED",
    "CERTIFICATE_REQUIRED",
)


def _kid(key_id: str, uid: str) -> bytes:
    """The envelope key id: commits to the KMIP key id and version (it is associated data)."""
    digest = hashlib.sha256(_KID_LABEL + key_id.encode() + b"\x00" + uid.encode()).digest()
    return b"kmip:" + digest[:16]


@dataclass(frozen=True, slots=True)
class _Version:
    uid: str
    state: Any  # enums.State
    created: int


@dataclass(frozen=True, slots=True)
class _Versions:
    versions: tuple[_Version, ...]
    fetched: float

    @property
    def primary(self) -> _Version | None:
        active = [v for v in self.versions if v.state == enums.State.ACTIVE]
        return active[-1] if active else None

    def get(self, uid: str) -> _Version | None:
        for version in self.versions:
            if version.uid == uid:
                return version
        return None


@dataclass(frozen=True, slots=True)
class _Mark:
    mark: StateMark | None
    fetched: float


# When an interrupted change left more than one mark (every change registers the new mark before
# it destroys the old one, so that the key never reads as enabled in between), a tombstone wins;
# otherwise the least destructive: an interrupted schedule or cancel reads as disabled (refused,
# and never shredded on the strength of a half-made change).
_MARK_PRECEDENCE: Final = {KeyState.DISABLED: 0, KeyState.PENDING_DESTRUCTION: 1}


def _in_force(marks: list[StateMark]) -> StateMark | None:
    if not marks:
        return None
    for mark in marks:
        if mark.state is KeyState.DESTROYED:
            return mark
    return min(marks, key=lambda mark: _MARK_PRECEDENCE.get(mark.state, len(_MARK_PRECEDENCE)))


def _alive(client: Any) -> bool:
    """Whether an idle connection is still open: an idle socket that is readable has met an
    end of stream or a reset (the server restarted, a proxy cut it)."""
    sock = getattr(client.proxy, "socket", None)
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _discard(client: Any) -> None:
    """Close a client and its socket for sure (PyKMIP forgets, without closing, a socket whose
    shutdown fails, e.g. after a reset)."""
    sock = getattr(client.proxy, "socket", None)
    with contextlib.suppress(Exception):
        client.close()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
    client.proxy.socket = None


def _order(version: _Version) -> tuple[int, int, str]:
    return (
        version.created,
        int(version.uid) if version.uid.isascii() and version.uid.isdigit() else 0,
        version.uid,
    )


class _NoAeadError(Exception):
    """The server answered an AES-GCM request without doing AES-GCM (no tag, odd sizes)."""


def _gcm_parameters(*, random_iv: bool) -> Any:
    return CryptographicParameters(
        block_cipher_mode=enums.BlockCipherMode.GCM,
        cryptographic_algorithm=enums.CryptographicAlgorithm.AES,
        tag_length=_TAG_BYTES,
        random_iv=random_iv or None,
    )


def _send(client: Any, operation: Any, payload: Any) -> Any:
    """Send one request and return its response payload, or raise KmipOperationFailure.

    PyKMIP's ``ProxyKmipClient.encrypt``/``decrypt`` take no associated data and return no tag,
    although its payload classes and its server carry both; so ownkey builds the request from
    those classes and sends it on the client's own connection, in KMIP 1.4 (where the fields
    exist), leaving the version of every other request as it was.
    """
    proxy = client.proxy
    item = kmip_messages.RequestBatchItem(
        operation=KmipOperation(operation), request_payload=payload
    )
    previous, proxy.kmip_version = proxy.kmip_version, _AEAD_KMIP_VERSION
    try:
        reply = proxy._send_and_receive_message(proxy._build_request_message(None, [item]))
    finally:
        proxy.kmip_version = previous
    answer = reply.batch_items[0]
    status = answer.result_status.value
    if status != enums.ResultStatus.SUCCESS:
        reason = getattr(answer.result_reason, "value", None)
        message = getattr(answer.result_message, "value", None)
        raise kmip_errors.KmipOperationFailure(status, reason, message)
    return answer.response_payload


def _gcm_encrypt(client: Any, uid: str, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes, bytes]:
    """``(iv, tag, ciphertext)`` of the server's AES-GCM over ``plaintext`` with ``aad``; the
    server draws the IV (a FIPS module may refuse a caller's)."""
    payload = kmip_payloads.EncryptRequestPayload(
        unique_identifier=uid,
        cryptographic_parameters=_gcm_parameters(random_iv=True),
        data=plaintext,
        auth_additional_data=aad,
    )
    answer = _send(client, enums.Operation.ENCRYPT, payload)
    iv, tag, data = answer.iv_counter_nonce, answer.auth_tag, answer.data
    if (
        iv is None
        or tag is None
        or data is None
        or not _MIN_IV_BYTES <= len(iv) <= _MAX_IV_BYTES
        or len(tag) != _TAG_BYTES
        or len(data) != len(plaintext)
    ):
        raise _NoAeadError()
    return bytes(iv), bytes(tag), bytes(data)


def _gcm_decrypt(client: Any, uid: str, iv: bytes, tag: bytes, data: bytes, aad: bytes) -> bytes:
    """The server's AES-GCM decryption: it checks the tag over ``data`` and ``aad`` itself."""
    payload = kmip_payloads.DecryptRequestPayload(
        unique_identifier=uid,
        cryptographic_parameters=_gcm_parameters(random_iv=False),
        data=data,
        iv_counter_nonce=iv,
        auth_additional_data=aad,
        auth_tag=tag,
    )
    return bytes(_send(client, enums.Operation.DECRYPT, payload).data or b"")


def _frame_aead(uid: str, iv: bytes, tag: bytes, data: bytes) -> bytes:
    """``0x02 | u8 len(uid) | uid | u8 len(iv) | iv | tag (16) | ciphertext``."""
    return bytes((_AEAD_FORMAT,)) + frame(uid, bytes((len(iv),)) + iv + tag + data)[1:]


def _unframe_aead(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    """``(uid, iv, tag, ciphertext)`` of a version-2 blob; any malformation is
    InvalidCiphertext."""
    uid, body = unframe(bytes((BLOB_FORMAT,)) + blob[1:])
    if not body or not _MIN_IV_BYTES <= body[0] <= _MAX_IV_BYTES:
        raise InvalidCiphertext()
    iv_end = 1 + body[0]
    tag, data = body[iv_end : iv_end + _TAG_BYTES], body[iv_end + _TAG_BYTES :]
    if len(tag) != _TAG_BYTES or not data:
        raise InvalidCiphertext()
    return uid, body[1:iv_end], tag, data


class KmipProvider(Adapter):
    """Customer keys in a KMIP server (PyKMIP's, or any KMIP 1.x server with AES-CBC).

    ``certfile``/``keyfile`` are the client's certificate and key, ``ca_file`` the CA that signed
    the server's certificate; the server's name (``server_hostname``, default ``host``) is
    checked against its certificate. At most ``pool_size`` connections stay open.
    ``owns_destruction`` lets ownkey's destruction revoke and destroy the key's KMIP objects;
    off, they stay in the customer's server and the receipt says so.

    ``allow_local_binding`` (default False) lets a server that cannot bind AES-GCM associated data
    be used with the context bound on ownkey's side only (version-1 blobs); without it such a
    server is a :class:`~ownkey.errors.ConfigError`, never a silent downgrade.
    ``disable_in_server`` (default False) makes :meth:`disable` also revoke every version in the
    server, so that no client can use them any more, at the price of an :meth:`enable` that is
    refused (``reversible_disable`` is then False): KMIP cannot re-activate a revoked object.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 5696,
        certfile: str,
        keyfile: str,
        ca_file: str,
        server_hostname: str | None = None,
        pool_size: int = 8,
        allow_local_binding: bool = False,
        disable_in_server: bool = False,
        **options: Unpack[AdapterOptions],
    ) -> None:
        """``options``: ``name`` (default ``kmip``), ``timeout`` (default 2 s),
        ``owns_destruction``, ``random``, ``clock`` (:class:`AdapterOptions`)."""
        super().__init__("kmip", options, timeout=2.0)
        self._allow_local_binding = allow_local_binding
        self._disable_in_server = disable_in_server
        #: Whether :meth:`disable` can be undone (False when it revokes in the server).
        self.reversible_disable: bool = not disable_in_server
        self._aead: bool | None = None  # does the server bind associated data? None: not probed
        self._host = host
        self._port = port
        self._server_hostname = server_hostname or host
        self._pool_size = pool_size
        self._certfile, self._keyfile, self._ca_file = certfile, keyfile, ca_file
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"kmip: cannot load the client certificate, key or CA ({type(exc).__name__})"
            ) from exc
        self._tls = context
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._versions: dict[str, _Versions] = {}
        self._marks: dict[str, _Mark] = {}

    def __repr__(self) -> str:
        return f"<KmipProvider name={self._name} server={self._host}:{self._port}>"

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> Any:
        client = ProxyKmipClient(hostname=self._host, port=self._port, config_file=os.devnull)
        proxy = client.proxy
        tls, server_hostname, timeout = self._tls, self._server_hostname, self._timeout

        def create_socket(sock: socket.socket) -> None:
            # PyKMIP's own socket set-up checks no host name and uses a deprecated protocol
            # constant; this one verifies the server's name and speaks TLS 1.2 or newer.
            proxy.socket = tls.wrap_socket(sock, server_hostname=server_hostname)
            proxy.socket.settimeout(timeout)

        proxy._create_socket = create_socket
        try:
            client.open()
        except BaseException:
            _discard(client)
            raise
        return client

    @contextlib.contextmanager
    def _client(self, what: str, *, decrypting: bool = False) -> Iterator[Any]:
        """A pooled, open client; SDK failures leave as ownkey errors, broken links are closed."""
        client = self._idle_client()
        healthy = False
        try:
            if client is None:
                client = self._connect()
            yield client
            healthy = True
        except OwnkeyError:
            healthy = True  # raised by this module: the connection itself is fine
            raise
        except kmip_errors.KmipOperationFailure as exc:
            healthy = True  # the server answered: the connection is fine
            raise self._translate(what, exc, decrypting=decrypting) from exc
        except Exception as exc:
            raise self._translate(what, exc, decrypting=decrypting) from exc
        finally:
            if client is not None:
                self._release(client, healthy=healthy)

    def _idle_client(self) -> Any | None:
        """A pooled connection that is still open, if any (closed ones are dropped)."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                client = self._idle.pop()
            if _alive(client):
                return client
            _discard(client)

    def _release(self, client: Any, *, healthy: bool) -> None:
        if healthy:
            with self._lock:
                if len(self._idle) < self._pool_size:
                    self._idle.append(client)
                    return
        _discard(client)

    def _translate(self, what: str, exc: Exception, *, decrypting: bool) -> OwnkeyError:
        if isinstance(exc, kmip_errors.KmipOperationFailure):
            reason = exc.reason
            label = getattr(reason, "name", "unknown")
            if reason in _DENIED_REASONS:
                return AccessDenied(f"{what}: the KMIP server refused ({label})")
            if reason == enums.ResultReason.ITEM_NOT_FOUND:
                return NotFound(f"{what}: no such object in the KMIP server")
            if decrypting and reason in _BAD_BLOB_REASONS:
                return InvalidCiphertext()
            if reason in _CONFIG_REASONS:
                return ConfigError(f"{what}: the KMIP server refused the request ({label})")
            return KeyUnavailable(f"{what}: the KMIP server failed ({label})")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConfigError(
                f"{what}: the KMIP server's certificate does not verify against the CA "
                f"({exc.verify_message})"
            )
        if isinstance(exc, ssl.SSLError) and any(
            alert in (exc.reason or "") for alert in _REJECTED_ALERTS
        ):
            return AccessDenied(
                f"{what}: the KMIP server rejected ownkey's client certificate ({exc.reason})"
            )
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return KeyUnavailable(f"{what}: the KMIP server did not answer in {self._timeout:g}s")
        if isinstance(exc, OSError):
            return KeyUnavailable(f"{what}: cannot reach the KMIP server ({type(exc).__name__})")
        if isinstance(
            exc,
            (
                kmip_errors.ClientConnectionFailure,
                kmip_errors.ClientConnectionNotOpen,
                kmip_core_errors.KmipError,
                kmip_core_errors.NetworkingError,
            ),
        ):
            return KeyUnavailable(f"{what}: KMIP connection failed ({type(exc).__name__})")
        # A reply PyKMIP could not parse (a cut or garbled stream) is a transport failure.
        return KeyUnavailable(f"{what}: unexpected KMIP failure ({type(exc).__name__})")

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            _discard(client)

    # -- objects --------------------------------------------------------------------------

    def _locate(self, client: Any, name: str, object_type: Any) -> list[str]:
        factory = client.attribute_factory
        return [
            str(uid)
            for uid in client.locate(
                attributes=[
                    factory.create_attribute(enums.AttributeType.NAME, name),
                    factory.create_attribute(enums.AttributeType.OBJECT_TYPE, object_type),
                ]
            )
        ]

    def _fetch_versions(self, client: Any, key_id: str) -> _Versions:
        found = []
        for uid in self._locate(client, key_id, enums.ObjectType.SYMMETRIC_KEY):
            _, attributes = client.get_attributes(uid, ["State", "Initial Date"])
            values = {a.attribute_name.value: a.attribute_value.value for a in attributes}
            found.append(_Version(uid, values.get("State"), int(values.get("Initial Date") or 0)))
        found.sort(key=_order)
        versions = _Versions(tuple(found), time.monotonic())
        with self._lock:
            self._versions[key_id] = versions
        return versions

    def _cached_versions(self, client: Any, key_id: str, *, need: str | None = None) -> _Versions:
        with self._lock:
            cached = self._versions.get(key_id)
        if (
            cached is not None
            and time.monotonic() - cached.fetched < _VERSIONS_TTL
            and (need is None or cached.get(need) is not None)
            and (need is not None or cached.primary is not None)
        ):
            return cached
        return self._fetch_versions(client, key_id)

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._versions.pop(key_id, None)
            self._marks.pop(key_id, None)

    def _remember_mark(self, key_id: str, mark: StateMark | None, since: float) -> None:
        """Cache ``mark`` as the server's from ``since`` on, unless a newer view is cached (a
        read that began before this node's own change must not overwrite it)."""
        with self._lock:
            cached = self._marks.get(key_id)
            if cached is None or cached.fetched <= since:
                self._marks[key_id] = _Mark(mark, since)

    def _mark(self, client: Any, key_id: str) -> tuple[StateMark | None, list[str]]:
        """The key's state mark in the server (None: no mark) and the ids of its objects."""
        since = time.monotonic()
        uids = self._locate(client, _STATE_PREFIX + key_id, enums.ObjectType.OPAQUE_DATA)
        try:
            marks = [StateMark.from_bytes(bytes(client.get(uid).value)) for uid in uids]
        except ValueError as exc:
            raise ConfigError(f"the KMIP state object of {key_id} is unreadable") from exc
        mark = _in_force(marks)
        self._remember_mark(key_id, mark, since)
        return mark, uids

    def _set_mark(self, client: Any, key_id: str, mark: StateMark | None) -> None:
        """Replace the key's state mark: the new one is registered before the old ones go."""
        _, old = self._mark(client, key_id)
        with self._lock:
            self._marks.pop(key_id, None)  # if a step fails, the next call reads the server
        if mark is not None:
            opaque = kmip_objects.OpaqueObject(
                mark.to_bytes(), enums.OpaqueDataType.NONE, name=_STATE_PREFIX + key_id
            )
            client.register(opaque)
        for uid in old:
            client.destroy(uid)
        self._remember_mark(key_id, mark, time.monotonic())  # acts on this node's next call

    def _admit(self, key_id: str) -> None:
        """Refuse a wrap or unwrap at once when the key's state mark says it is not enabled.

        The mark is cached for ``_VERSIONS_TTL`` seconds: no round trip for a key whose mark was
        read recently, and a change made by another node is seen within that time.
        """
        with self._lock:
            cached = self._marks.get(key_id)
        if cached is not None and time.monotonic() - cached.fetched < _VERSIONS_TTL:
            mark = cached.mark
        else:
            with self._client(f"read the state of {key_id}") as client:
                mark = self._mark(client, key_id)[0]
        if mark is not None and not mark.state.usable:
            raise AccessDenied(f"kmip key {key_id} is {mark.state.value}", reason=mark.state.value)

    def _state(self, client: Any, key_id: str) -> tuple[KeyState, _Versions, StateMark | None]:
        versions = self._fetch_versions(client, key_id)
        mark, _ = self._mark(client, key_id)
        if mark is not None and mark.state is KeyState.DESTROYED:
            return KeyState.DESTROYED, _Versions((), versions.fetched), mark
        if not versions.versions:
            raise NotFound(f"no key named {key_id} in the KMIP server")
        if mark is not None and mark.state is KeyState.PENDING_DESTRUCTION:
            due = destruction_due(mark.state, mark.destroy_at, self._clock())
            if due and self.owns_destruction:
                self._shred(client, key_id, versions, mark)
                destroyed = StateMark(KeyState.DESTROYED, mark.destroy_at)
                return KeyState.DESTROYED, _Versions((), versions.fetched), destroyed
            return KeyState.PENDING_DESTRUCTION, versions, mark
        if mark is not None and mark.state is KeyState.DISABLED:
            return KeyState.DISABLED, versions, mark
        # No mark: disabled only if the customer revoked every version in the server.
        state = KeyState.ENABLED if versions.primary is not None else KeyState.DISABLED
        return state, versions, mark

    def _shred(self, client: Any, key_id: str, versions: _Versions, mark: StateMark) -> int:
        """Revoke the active versions and destroy all; return how many were revoked."""
        revoked = 0
        for version in versions.versions:
            if version.state == enums.State.ACTIVE:
                client.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, version.uid)
                revoked += 1
            client.destroy(version.uid)
        self._forget(key_id)
        self._set_mark(client, key_id, StateMark(KeyState.DESTROYED, mark.destroy_at))
        return revoked

    def _refusal(self, key_id: str, cause: OwnkeyError) -> OwnkeyError:
        """Turn a refusal met during wrap/unwrap into AccessDenied with the key's state."""
        self._forget(key_id)
        try:
            with self._client(f"describe {key_id}") as client:
                state = self._state(client, key_id)[0]
        except NotFound:
            return NotFound(f"no key named {key_id} in the KMIP server")
        except OwnkeyError:
            return cause
        if state.usable:
            if isinstance(cause, NotFound):
                return KeyUnavailable(f"kmip key {key_id} changed during the call; try again")
            return AccessDenied(f"the KMIP server refused key {key_id}")
        return AccessDenied(f"kmip key {key_id} is {state.value}", reason=state.value)

    def _create_version(self, client: Any, key_id: str) -> str:
        uid = str(
            client.create(
                enums.CryptographicAlgorithm.AES,
                256,
                name=key_id,
                cryptographic_usage_mask=_USAGE,
            )
        )
        try:
            client.activate(uid)
        except Exception:
            with contextlib.suppress(Exception):
                client.destroy(uid)
            raise
        self._forget(key_id)
        return uid

    # -- KeyProvider ----------------------------------------------------------------------

    def create_key(self, *, label: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")[:64] or "key"
        key_id = f"{slug}-{self._random(6).hex()}"
        with self._client(f"create key {key_id}") as client:
            self._create_version(client, key_id)
        return key_id

    def _binds_in_server(self, client: Any, uid: str) -> bool:
        """Whether the server binds the context itself; probed once per provider object.

        True: wrap and unwrap with the server's AES-GCM, the context as associated data. False:
        the server cannot, and ``allow_local_binding`` allows version-1 blobs. Otherwise raise
        ConfigError: the context would be bound on ownkey's side only, and that is not done
        silently. (Concurrent first calls may both probe; the answers agree.)
        """
        with self._lock:
            known = self._aead
        if known is None:
            known = self._probe(client, uid)
            with self._lock:
                self._aead = known
        if not known and not self._allow_local_binding:
            raise ConfigError(
                "kmip: the server does not bind AES-GCM associated data (KMIP 1.4), so it would "
                "never see the encryption context; set allow_local_binding to bind the context "
                "on ownkey's side only"
            )
        return known

    def _probe(self, client: Any, uid: str) -> bool:
        """Ask the server to AES-GCM-encrypt a random value under version ``uid`` with one
        associated data, and check that it refuses to decrypt it under another and decrypts it
        under the first: a server that accepts the fields but ignores them fails this."""
        secret = self._random(_DEK_BYTES)
        good, bad = _PROBE_AAD
        try:
            iv, tag, data = _gcm_encrypt(client, uid, secret, good)
            try:
                _gcm_decrypt(client, uid, iv, tag, data, bad)
            except kmip_errors.KmipOperationFailure as exc:
                if exc.reason not in _BAD_BLOB_REASONS:
                    raise
            else:
                return False  # it decrypted under other associated data: it ignores them
            return _gcm_decrypt(client, uid, iv, tag, data, good) == secret
        except _NoAeadError:
            return False
        except kmip_errors.KmipOperationFailure as exc:
            if exc.reason in _NO_AEAD_REASONS:
                return False
            raise

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        check_plaintext(plaintext)
        aad = context_bytes(context)
        self._admit(key_id)
        try:
            with self._client(f"wrap under {key_id}") as client:
                primary = self._cached_versions(client, key_id).primary
                if primary is None:
                    raise AccessDenied(f"kmip key {key_id} has no active version")
                if not self._binds_in_server(client, primary.uid):
                    return self._wrap_locally(client, key_id, primary.uid, plaintext, context)
                try:
                    iv, tag, data = _gcm_encrypt(client, primary.uid, plaintext, aad)
                except _NoAeadError as exc:
                    raise ConfigError(
                        "the KMIP server answered AES-GCM with unexpected sizes"
                    ) from exc
        except (AccessDenied, NotFound) as exc:
            raise self._refusal(key_id, exc) from exc
        return _frame_aead(primary.uid, iv, tag, data)

    def _wrap_locally(
        self, client: Any, key_id: str, uid: str, plaintext: bytes, context: Mapping[str, str]
    ) -> bytes:
        """A version-1 blob: the server encrypts a fresh DEK (AES-CBC), the context is bound by
        ownkey's envelope only (``allow_local_binding``, for a server without AES-GCM)."""
        dek = self._random(_DEK_BYTES)
        encrypted, iv = client.encrypt(
            dek, uid=uid, cryptographic_parameters=dict(_CBC_PARAMS, random_iv=True)
        )
        if len(iv) != _IV_BYTES or len(encrypted) != _CBC_BYTES:
            raise ConfigError("the KMIP server answered AES-CBC with unexpected sizes")
        sealed = seal_message(
            ScopeKey(_kid(key_id, uid), dek), plaintext, context, random=self._random
        )
        return frame(uid, bytes(iv) + bytes(encrypted) + sealed)

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        aad = context_bytes(context)
        aead = wrapped[:1] == bytes((_AEAD_FORMAT,))
        if aead:
            uid, iv, tag, data = _unframe_aead(wrapped)
        else:
            uid, data = unframe(wrapped)
            if len(data) <= _IV_BYTES + _CBC_BYTES:
                raise InvalidCiphertext()
        self._admit(key_id)
        try:
            with self._client(f"unwrap under {key_id}", decrypting=True) as client:
                if self._cached_versions(client, key_id, need=uid).get(uid) is None:
                    if not self._fetch_versions(client, key_id).versions:
                        raise NotFound(f"no key named {key_id} in the KMIP server")
                    raise InvalidCiphertext()  # not a version of this key
                if not aead:
                    dek = client.decrypt(
                        data[_IV_BYTES : _IV_BYTES + _CBC_BYTES],
                        uid=uid,
                        cryptographic_parameters=dict(_CBC_PARAMS),
                        iv_counter_nonce=data[:_IV_BYTES],
                    )
                else:
                    self._aead_or_refuse(client, uid)
                    share = _gcm_decrypt(client, uid, iv, tag, data, aad)
        except (AccessDenied, NotFound) as exc:
            raise self._refusal(key_id, exc) from exc
        if aead:
            if len(share) != len(data):
                raise InvalidCiphertext()
            return share
        if len(dek) != _DEK_BYTES:
            raise InvalidCiphertext()
        return open_message(
            ScopeKey(_kid(key_id, uid), bytes(dek)), data[_IV_BYTES + _CBC_BYTES :], context
        )

    def _aead_or_refuse(self, client: Any, uid: str) -> None:
        """A version-2 blob opens only where the server binds associated data (else ConfigError:
        a server that ignored them would open it under any context)."""
        if not self._binds_in_server(client, uid):
            raise ConfigError(
                "kmip: this blob was sealed by a server that binds the context, and this server "
                "does not (probed); refusing to open it without that check"
            )

    def describe(self, key_id: str) -> KeyDescription:
        with self._client(f"describe {key_id}") as client:
            state, versions, mark = self._state(client, key_id)
        names = tuple(v.uid for v in versions.versions)
        primary = versions.primary
        return KeyDescription(
            key_id=key_id,
            state=state,
            primary_version=primary.uid if primary else (names[-1] if names else ""),
            versions=names,
            destroy_at=mark.destroy_at if mark is not None else None,
            label=key_id,
        )

    def rotate(self, key_id: str) -> str:
        with self._client(f"rotate {key_id}") as client:
            state = self._state(client, key_id)[0]
            next_state(state, KeyAction.ROTATE)
            return self._create_version(client, key_id)

    def disable(self, key_id: str) -> None:
        """Record ``disabled`` in the key's state mark; with ``disable_in_server``, also revoke
        every active version, so that the server refuses them to every client.

        The mark comes first: should a revocation fail, every ownkey node already refuses the
        key, and a second ``disable`` is refused (the key is disabled) while the revocation is
        incomplete; the customer's console can finish it. Without ``disable_in_server`` the
        KMIP objects stay Active: PyKMIP's server (and KMIP) cannot make a key unusable and
        usable again, so a reversible disable can only be a mark that ownkey obeys.
        """
        with self._client(f"disable {key_id}") as client:
            state, versions, _ = self._state(client, key_id)
            next_state(state, KeyAction.DISABLE)
            self._set_mark(client, key_id, StateMark(KeyState.DISABLED))
            if not self._disable_in_server:
                return
            with self._lock:
                self._versions.pop(key_id, None)
            for version in versions.versions:
                if version.state == enums.State.ACTIVE:
                    client.revoke(
                        enums.RevocationReasonCode.PRIVILEGE_WITHDRAWN,
                        version.uid,
                        revocation_message="ownkey: key disabled",
                    )

    def enable(self, key_id: str) -> None:
        """Remove the ``disabled`` mark; a key revoked in the KMIP server cannot come back."""
        with self._client(f"enable {key_id}") as client:
            state, versions, _ = self._state(client, key_id)
            next_state(state, KeyAction.ENABLE)
            if versions.primary is None:
                raise LifecycleError(
                    f"kmip key {key_id} has no active version: it was revoked in the KMIP "
                    "server (by hand, or by a disable with disable_in_server), and KMIP cannot "
                    "re-activate a revoked key; create a new key for new content"
                )
            self._set_mark(client, key_id, None)

    def schedule_destruction(self, key_id: str, *, destroy_at: float) -> None:
        with self._client(f"schedule destruction of {key_id}") as client:
            state = self._state(client, key_id)[0]
            next_state(state, KeyAction.SCHEDULE_DESTRUCTION)
            self._set_mark(client, key_id, StateMark(KeyState.PENDING_DESTRUCTION, destroy_at))

    def cancel_destruction(self, key_id: str) -> None:
        with self._client(f"cancel destruction of {key_id}") as client:
            state = self._state(client, key_id)[0]
            next_state(state, KeyAction.CANCEL_DESTRUCTION)
            self._set_mark(client, key_id, StateMark(KeyState.DISABLED))

    def destroy(self, key_id: str) -> DestructionReceipt:
        """Revoke and destroy every version when ownkey owns the step; else leave them.

        The answer is the server's: after the calls, how many symmetric keys it still locates
        under the key's name (0 once destroyed) and the state mark it holds.
        """
        with self._client(f"destroy {key_id}") as client:
            state, versions, mark = self._state(client, key_id)
            answer: dict[str, str] = {}
            if state is not KeyState.DESTROYED:
                if state is not KeyState.PENDING_DESTRUCTION or mark is None:
                    raise LifecycleError(
                        f"kmip key {key_id} is {state.value}; schedule its destruction first"
                    )
                if not self.owns_destruction:
                    return DestructionReceipt(
                        DestructionOutcome.RETAINED,
                        {
                            "kmip_objects_left": str(len(versions.versions)),
                            "kmip_states": ",".join(
                                sorted({v.state.name for v in versions.versions})
                            ),
                            "kmip_mark": state.value,
                        },
                    )
                answer["kmip_revoked"] = str(self._shred(client, key_id, versions, mark))
                answer["kmip_destroyed"] = str(len(versions.versions))
            left = self._locate(client, key_id, enums.ObjectType.SYMMETRIC_KEY)
            marked = self._mark(client, key_id)[0]
        if left:
            raise KeyUnavailable(f"kmip key {key_id}: {len(left)} object(s) survived destruction")
        answer["kmip_objects_left"] = "0"
        answer["kmip_mark"] = marked.state.value if marked is not None else "none"
        return DestructionReceipt(DestructionOutcome.DESTROYED, answer)
