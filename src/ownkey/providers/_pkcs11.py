"""The ``pkcs11`` provider: AES-256 keys in an HSM token, reached through python-pkcs11.

A key is the set of AES secret-key objects whose ``CKA_LABEL`` is the key id; each object is one
version, named by its ``CKA_ID`` (``v1``, ``v2``, ... for keys ownkey creates; ``x<hex>`` for an
object created outside ownkey with another id). Keys ownkey creates are token objects that are
sensitive, not extractable, and allowed to encrypt and decrypt only (no wrap/unwrap).

Wrapping is ``C_Encrypt`` with ``CKM_AES_GCM``: a random 96-bit IV, a 128-bit tag, and as
additional authenticated data the provider label, key id, version and canonical encryption
context (:func:`~ownkey.providers._common.binding`). ``CKM_AES_KEY_WRAP`` is not used because it
has no associated data. The blob is ``frame(version, iv || ciphertext || tag)``.

Lifecycle, expressed with the token's own attributes so that the HSM enforces it:

- *disable* clears ``CKA_ENCRYPT`` and ``CKA_DECRYPT`` on every version (the token answers
  ``CKR_KEY_FUNCTION_NOT_PERMITTED``); *enable* sets them again;
- *pending destruction* and *destroyed* have no PKCS#11 equivalent: a small data object
  (``CKO_DATA``, label ``ownkey-state:<key id>``) beside the key records them;
- *destroy* calls ``C_DestroyObject`` on every version and leaves the state object as a tombstone,
  only if the customer configured ownkey to own that step (``owns_destruction=True``, setting
  ``owns_destruction=true``); by default the token's objects stay, ownkey's destruction of the key
  leaves them untouched (still pending destruction, encrypt and decrypt off) and its receipt says
  the key remains in the customer's HSM. A due destruction is applied on the next use likewise
  only when ownkey owns it.

Error translation (SDK -> ownkey): a failed tag check is reported by SoftHSM2 as
``CKR_GENERAL_ERROR`` (others say ``CKR_ENCRYPTED_DATA_INVALID``); both mean the blob does not open
under this key and context, so they become :class:`~ownkey.errors.InvalidCiphertext` (a refusal,
never retried as an outage). ``CKR_KEY_FUNCTION_NOT_PERMITTED`` is
:class:`~ownkey.errors.AccessDenied`; a wrong PIN, a missing token or an unsupported mechanism is
:class:`~ownkey.errors.ConfigError`; a removed device, a closed session or a device error is
:class:`~ownkey.errors.KeyUnavailable` (the session is reopened on the next call).

python-pkcs11 initialises the library without locking callbacks, which tells the library
(SoftHSM2 among them) that calls are never concurrent; every call into one library therefore
takes that library's lock, waiting at most ``timeout`` seconds for it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Unpack, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    LifecycleError,
    NotFound,
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
    Adapter,
    AdapterOptions,
    StateMark,
    binding,
    check_plaintext,
    context_bytes,
    frame,
    unframe,
)

__all__ = ["Pkcs11Provider"]

_LABEL: Final = b"ownkey/pkcs11/aes-gcm/v1"
_STATE_PREFIX: Final = "ownkey-state:"
_NONCE_BYTES = 12
_TAG_BITS = 128
_KEY_BITS = 256
_VERSION_ID = re.compile(rb"v([1-9][0-9]{0,8})\Z")
_KEY_ID = re.compile(r"[A-Za-z0-9._:/-]{1,128}\Z")
#: CKR_KEY_FUNCTION_NOT_PERMITTED, which python-pkcs11 0.10 does not map to a class.
_CKR_KEY_FUNCTION_NOT_PERMITTED = 0x68

_LIBRARY_LOCKS: dict[str, threading.Lock] = {}
_LIBRARY_LOCKS_GUARD = threading.Lock()

_UNAVAILABLE: tuple[type[Exception], ...] = (
    p11.DeviceError,
    p11.DeviceMemory,
    p11.DeviceRemoved,
    p11.FunctionCancelled,
    p11.HostMemory,
    p11.OperationActive,
    p11.SessionClosed,
    p11.SessionCount,
    p11.SessionHandleInvalid,
    p11.TokenNotPresent,
    p11.UserNotLoggedIn,
)
_CONFIG: tuple[type[Exception], ...] = (
    p11.FunctionNotSupported,
    p11.KeySizeRange,
    p11.KeyTypeInconsistent,
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.MultipleTokensReturned,
    p11.NoSuchToken,
    p11.PinExpired,
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinLocked,
    p11.SlotIDInvalid,
    p11.TokenNotRecognised,
    p11.TokenWriteProtected,
    p11.UserPinNotInitialized,
)
_BAD_BLOB: tuple[type[Exception], ...] = (
    p11.GeneralError,
    p11.EncryptedDataInvalid,
    p11.EncryptedDataLenRange,
    p11.DataLenRange,
)


def _library_lock(path: str) -> threading.Lock:
    with _LIBRARY_LOCKS_GUARD:
        return _LIBRARY_LOCKS.setdefault(path, threading.Lock())


def _not_permitted(exc: Exception) -> bool:
    return type(exc) is p11.PKCS11Error and hex(_CKR_KEY_FUNCTION_NOT_PERMITTED) in str(exc)


def _version_name(cka_id: bytes) -> str:
    if _VERSION_ID.match(cka_id):
        return cka_id.decode("ascii")
    return "x" + cka_id.hex()


def _version_id(name: str) -> bytes | None:
    if _VERSION_ID.match(name.encode("ascii", "replace")):
        return name.encode("ascii")
    if name.startswith("x"):
        try:
            return bytes.fromhex(name[1:])
        except ValueError:
            return None
    return None


def _version_number(name: str) -> int:
    return int(name[1:]) if _VERSION_ID.match(name.encode("ascii", "replace")) else 0


@dataclass(frozen=True, slots=True)
class _Version:
    name: str
    key: pkcs11.SecretKey
    usable: bool


class Pkcs11Provider(Adapter):
    """Customer keys in a PKCS#11 token (an HSM, or SoftHSM2 in tests).

    ``pin`` is the token's user PIN (read it from a secret store; it never appears in a message
    or a ``repr``). ``timeout`` bounds the wait for the library lock, in seconds.
    ``owns_destruction`` lets ownkey's destruction call ``C_DestroyObject`` on the key's objects;
    off, they stay in the token (the customer's to destroy) and the receipt says so.
    """

    def __init__(
        self,
        *,
        library: str,
        token_label: str,
        pin: str,
        **options: Unpack[AdapterOptions],
    ) -> None:
        """``options``: ``name`` (default ``pkcs11``), ``timeout`` (default 5 s),
        ``owns_destruction``, ``random``, ``clock`` (:class:`AdapterOptions`)."""
        super().__init__("pkcs11", options, timeout=5.0)
        self._library_path = library
        self._token_label = token_label
        self._pin = pin
        self._lock = _library_lock(library)
        self._session: pkcs11.Session | None = None

    def __repr__(self) -> str:
        return (
            f"<Pkcs11Provider name={self._name} library={self._library_path} "
            f"token={self._token_label} pin=<redacted>>"
        )

    # -- sessions and error translation ---------------------------------------------------

    def _open(self) -> pkcs11.Session:
        try:
            lib = pkcs11.lib(self._library_path)
        except (p11.PKCS11Error, OSError) as exc:
            raise ConfigError(
                f"cannot load the PKCS#11 library {self._library_path}: {type(exc).__name__}"
            ) from exc
        try:
            token = lib.get_token(token_label=self._token_label)
        except p11.NoSuchToken as exc:
            raise ConfigError(f"no PKCS#11 token labelled {self._token_label!r}") from exc
        try:
            return token.open(user_pin=self._pin, rw=True)
        except p11.UserAlreadyLoggedIn:
            # Login is per application: another session of this process is already logged in.
            return token.open(rw=True)

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[pkcs11.Session]:
        """Hold the library lock and a session; translate everything the SDK raises."""
        if not self._lock.acquire(timeout=self._timeout):
            raise KeyUnavailable(f"the PKCS#11 library stayed busy for {self._timeout:g}s")
        try:
            if self._session is None:
                self._session = self._open()
            yield self._session
        except (AccessDenied, InvalidCiphertext, NotFound, LifecycleError, ConfigError):
            raise
        except _CONFIG as exc:
            raise ConfigError(f"{what}: the PKCS#11 token refused: {type(exc).__name__}") from exc
        except _UNAVAILABLE as exc:
            self._drop_session()
            raise KeyUnavailable(
                f"{what}: the PKCS#11 token is unavailable: {type(exc).__name__}"
            ) from exc
        except p11.PKCS11Error as exc:
            self._drop_session()
            raise KeyUnavailable(f"{what}: PKCS#11 error {type(exc).__name__}") from exc
        finally:
            self._lock.release()

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(p11.PKCS11Error):
                session.close()

    def close(self) -> None:
        """Close the session (the library stays loaded for the process)."""
        with self._lock:
            self._drop_session()

    # -- objects --------------------------------------------------------------------------

    @staticmethod
    def _check_key_id(key_id: str) -> None:
        if not _KEY_ID.match(key_id):
            raise NotFound(f"{key_id!r} is not a pkcs11 key id (1-128 of [A-Za-z0-9._:/-])")

    @staticmethod
    def _versions(session: pkcs11.Session, key_id: str) -> list[_Version]:
        found = []
        for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_id}
        ):
            key = cast(pkcs11.SecretKey, obj)
            attrs = key.get_attributes([Attribute.ID, Attribute.ENCRYPT, Attribute.DECRYPT])
            found.append(
                _Version(
                    _version_name(bytes(attrs[Attribute.ID] or b"")),
                    key,
                    bool(attrs[Attribute.ENCRYPT]) and bool(attrs[Attribute.DECRYPT]),
                )
            )
        found.sort(key=lambda v: (_version_number(v.name), v.name))
        return found

    @staticmethod
    def _mark_objects(session: pkcs11.Session, key_id: str) -> list[pkcs11.Object]:
        return list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: _STATE_PREFIX + key_id}
            )
        )

    def _mark(self, session: pkcs11.Session, key_id: str) -> StateMark | None:
        objects = self._mark_objects(session, key_id)
        if not objects:
            return None
        try:
            return StateMark.from_bytes(bytes(objects[0][Attribute.VALUE]))
        except ValueError as exc:
            raise ConfigError(f"the state object of pkcs11 key {key_id} is unreadable") from exc

    def _set_mark(self, session: pkcs11.Session, key_id: str, mark: StateMark | None) -> None:
        for obj in self._mark_objects(session, key_id):
            obj.destroy()
        if mark is not None:
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.LABEL: _STATE_PREFIX + key_id,
                    Attribute.APPLICATION: "ownkey",
                    Attribute.VALUE: mark.to_bytes(),
                }
            )

    def _state(
        self, session: pkcs11.Session, key_id: str
    ) -> tuple[KeyState, list[_Version], StateMark | None]:
        """The key's state, its versions, and its mark; applies a due destruction."""
        versions = self._versions(session, key_id)
        mark = self._mark(session, key_id)
        if mark is not None and mark.state is KeyState.DESTROYED:
            return KeyState.DESTROYED, [], mark
        if not versions:
            raise NotFound(f"no key labelled {key_id} in PKCS#11 token {self._token_label}")
        if mark is not None and mark.state is KeyState.PENDING_DESTRUCTION:
            due = destruction_due(mark.state, mark.destroy_at, self._clock())
            if due and self.owns_destruction:
                self._shred(session, key_id, versions, mark)
                return KeyState.DESTROYED, [], StateMark(KeyState.DESTROYED, mark.destroy_at)
            return KeyState.PENDING_DESTRUCTION, versions, mark
        state = KeyState.ENABLED if versions[-1].usable else KeyState.DISABLED
        return state, versions, mark

    def _shred(
        self, session: pkcs11.Session, key_id: str, versions: list[_Version], mark: StateMark
    ) -> None:
        for version in versions:
            version.key.destroy()
        self._set_mark(session, key_id, StateMark(KeyState.DESTROYED, mark.destroy_at))

    def _denied(self, session: pkcs11.Session, key_id: str) -> AccessDenied:
        state = self._state(session, key_id)[0]
        reason = state.value if not state.usable else "provider_denied"
        return AccessDenied(f"pkcs11 key {key_id} is {state.value}", reason=reason)

    def _usable_versions(self, session: pkcs11.Session, key_id: str) -> list[_Version]:
        state, versions, _ = self._state(session, key_id)
        if not state.usable:
            raise AccessDenied(f"pkcs11 key {key_id} is {state.value}", reason=state.value)
        return versions

    def _generate(self, session: pkcs11.Session, key_id: str, version: str) -> None:
        session.generate_key(
            KeyType.AES,
            _KEY_BITS,
            id=version.encode("ascii"),
            label=key_id,
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.PRIVATE: True,
                Attribute.MODIFIABLE: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
            },
        )

    # -- KeyProvider ----------------------------------------------------------------------

    def create_key(self, *, label: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")[:64] or "key"
        key_id = f"{slug}-{self._random(6).hex()}"
        with self._call("create key") as session:
            self._generate(session, key_id, "v1")
        return key_id

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        check_plaintext(plaintext)
        context_bytes(context)
        self._check_key_id(key_id)
        nonce = self._random(_NONCE_BYTES)
        with self._call(f"wrap under {key_id}") as session:
            primary = self._usable_versions(session, key_id)[-1]
            aad = binding(_LABEL, key_id, primary.name, context)
            try:
                body = cast(EncryptMixin, primary.key).encrypt(
                    plaintext,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, aad, _TAG_BITS),
                )
            except p11.PKCS11Error as exc:
                if _not_permitted(exc):
                    raise self._denied(session, key_id) from exc
                raise
        return frame(primary.name, nonce + cast(bytes, body))

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        context_bytes(context)
        self._check_key_id(key_id)
        name, body = unframe(wrapped)
        if _version_id(name) is None or len(body) < _NONCE_BYTES + _TAG_BITS // 8:
            raise InvalidCiphertext()
        with self._call(f"unwrap under {key_id}") as session:
            versions = {v.name: v for v in self._usable_versions(session, key_id)}
            version = versions.get(name)
            if version is None:
                raise InvalidCiphertext()
            aad = binding(_LABEL, key_id, name, context)
            try:
                plaintext = cast(DecryptMixin, version.key).decrypt(
                    body[_NONCE_BYTES:],
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(body[:_NONCE_BYTES], aad, _TAG_BITS),
                )
            except _BAD_BLOB:
                raise InvalidCiphertext() from None
            except p11.PKCS11Error as exc:
                if _not_permitted(exc):
                    raise self._denied(session, key_id) from exc
                raise
        return cast(bytes, plaintext)

    def describe(self, key_id: str) -> KeyDescription:
        self._check_key_id(key_id)
        with self._call(f"describe {key_id}") as session:
            state, versions, mark = self._state(session, key_id)
        names = tuple(v.name for v in versions)
        return KeyDescription(
            key_id=key_id,
            state=state,
            primary_version=names[-1] if names else "",
            versions=names,
            destroy_at=mark.destroy_at if mark is not None else None,
            label=key_id,
        )

    def rotate(self, key_id: str) -> str:
        self._check_key_id(key_id)
        with self._call(f"rotate {key_id}") as session:
            state, versions, _ = self._state(session, key_id)
            next_state(state, KeyAction.ROTATE)
            name = f"v{max((_version_number(v.name) for v in versions), default=0) + 1}"
            self._generate(session, key_id, name)
        return name

    def _set_usable(self, versions: list[_Version], usable: bool) -> None:
        for version in versions:
            version.key[Attribute.ENCRYPT] = usable
            version.key[Attribute.DECRYPT] = usable

    def disable(self, key_id: str) -> None:
        self._check_key_id(key_id)
        with self._call(f"disable {key_id}") as session:
            state, versions, _ = self._state(session, key_id)
            next_state(state, KeyAction.DISABLE)
            self._set_usable(versions, False)

    def enable(self, key_id: str) -> None:
        self._check_key_id(key_id)
        with self._call(f"enable {key_id}") as session:
            state, versions, _ = self._state(session, key_id)
            next_state(state, KeyAction.ENABLE)
            self._set_usable(versions, True)

    def schedule_destruction(self, key_id: str, *, destroy_at: float) -> None:
        self._check_key_id(key_id)
        with self._call(f"schedule destruction of {key_id}") as session:
            state, versions, _ = self._state(session, key_id)
            next_state(state, KeyAction.SCHEDULE_DESTRUCTION)
            self._set_usable(versions, False)  # already disabled; made certain
            self._set_mark(session, key_id, StateMark(KeyState.PENDING_DESTRUCTION, destroy_at))

    def cancel_destruction(self, key_id: str) -> None:
        self._check_key_id(key_id)
        with self._call(f"cancel destruction of {key_id}") as session:
            state = self._state(session, key_id)[0]
            next_state(state, KeyAction.CANCEL_DESTRUCTION)
            self._set_mark(session, key_id, None)

    def destroy(self, key_id: str) -> DestructionReceipt:
        """``C_DestroyObject`` on every version when ownkey owns the step; else leave them.

        The answer is the token's: how many secret-key objects carry the key's label after
        the call (0 once destroyed).
        """
        self._check_key_id(key_id)
        with self._call(f"destroy {key_id}") as session:
            state, versions, mark = self._state(session, key_id)
            if state is not KeyState.DESTROYED:
                if state is not KeyState.PENDING_DESTRUCTION or mark is None:
                    raise LifecycleError(
                        f"pkcs11 key {key_id} is {state.value}; schedule its destruction first"
                    )
                if not self.owns_destruction:
                    return DestructionReceipt(
                        DestructionOutcome.RETAINED,
                        {
                            "pkcs11_token": self._token_label,
                            "pkcs11_objects_left": str(len(versions)),
                            "pkcs11_state": state.value,
                        },
                    )
                self._shred(session, key_id, versions, mark)
            left = len(self._versions(session, key_id))
        if left:
            raise KeyUnavailable(f"pkcs11 key {key_id}: {left} object(s) survived destruction")
        answer = {"pkcs11_token": self._token_label, "pkcs11_objects_left": "0"}
        if state is not KeyState.DESTROYED:
            answer["pkcs11_objects_destroyed"] = str(len(versions))
        return DestructionReceipt(DestructionOutcome.DESTROYED, answer)

    def attributes(self, key_id: str) -> Mapping[str, Any]:
        """What the token says about the primary version (for ``ownkey key register``)."""
        self._check_key_id(key_id)
        with self._call(f"inspect {key_id}") as session:
            versions = self._versions(session, key_id)
            if not versions:
                raise NotFound(f"no key labelled {key_id} in PKCS#11 token {self._token_label}")
            key = versions[-1].key
            attrs = key.get_attributes(
                [
                    Attribute.KEY_TYPE,
                    Attribute.VALUE_LEN,
                    Attribute.SENSITIVE,
                    Attribute.EXTRACTABLE,
                ]
            )
        return {
            "key_type": str(attrs[Attribute.KEY_TYPE]),
            "bits": int(attrs[Attribute.VALUE_LEN]) * 8,
            "sensitive": bool(attrs[Attribute.SENSITIVE]),
            "extractable": bool(attrs[Attribute.EXTRACTABLE]),
        }
