"""Key-manager calls with retries, error translation and an audit event for every attempt.

Every wrap, unwrap and describe goes through here, so each one is recorded (with the encryption
context, the key id and version, and its outcome) before its result is used; if the record
cannot be written, the result is dropped and :class:`~ownkey.errors.AuditUnavailable` raised (FS-3).
Each call (its retries included) holds one of its org's slots in the node's bulkhead, and each
attempt is timed and counted by provider kind (:class:`~ownkey.keys.KeyManagerCalls`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from ownkey._refs import KeyRef
from ownkey.audit import AuditAction, Outcome
from ownkey.errors import AccessDenied, AuditUnavailable, KeyUnavailable, NotFound
from ownkey.keys._deps import KeyDeps
from ownkey.keys._ports import KeyDescription
from ownkey.keys._records import MasterKey, Wrap
from ownkey.keys._retry import call_with_retry

__all__ = ["describe_key", "unwrap_share", "verify_wrap", "wrap_share"]

T = TypeVar("T")


def _outcome(exc: BaseException) -> Outcome:
    if isinstance(exc, AccessDenied):
        return Outcome.DENIED
    if isinstance(exc, KeyUnavailable):
        return Outcome.UNAVAILABLE
    return Outcome.FAILED


def _call_outcome(exc: BaseException) -> str:
    return Outcome.DENIED.value if isinstance(exc, NotFound) else _outcome(exc).value


def _audited_call(
    deps: KeyDeps,
    action: AuditAction,
    key: KeyRef,
    provider: str,
    detail: dict[str, str],
    call: Callable[[], T],
    *,
    retry: bool,
) -> T:
    kind = provider.partition("/")[0]  # the kind only: a key's own provider name holds its org
    verb = action.value.rpartition(".")[2]

    def timed_call() -> T:
        with deps.calls.timed(kind, verb) as outcome:
            try:
                return call()
            except Exception as exc:
                outcome(_call_outcome(exc))
                raise

    def attempt() -> T:
        try:
            result = timed_call()
        except NotFound as exc:
            denied = AccessDenied(f"the key manager does not know {key}", reason="provider_denied")
            _record(deps, action, key, detail, denied)
            raise denied from exc
        except AuditUnavailable:
            raise
        except Exception as exc:
            _record(deps, action, key, detail, exc)
            raise
        deps.auditor.emit(action, Outcome.OK, org=key.org, key=str(key), detail=detail)
        return result

    with deps.calls.slot(key.org):
        if not retry:
            return attempt()
        return call_with_retry(
            attempt, policy=deps.retry, clock=deps.clock, sleep=deps.sleep, random=deps.random
        )


def _record(
    deps: KeyDeps, action: AuditAction, key: KeyRef, detail: dict[str, str], exc: Exception
) -> None:
    failed = dict(detail, error=type(exc).__name__)
    if isinstance(exc, AccessDenied):
        failed["reason"] = exc.reason
    deps.auditor.emit(action, _outcome(exc), org=key.org, key=str(key), detail=failed)


def wrap_share(
    deps: KeyDeps,
    master: MasterKey,
    share: bytes,
    context: Mapping[str, str],
    *,
    retry: bool = True,
) -> Wrap:
    """Wrap one share under ``master``'s primary version."""
    provider = deps.provider(master.provider)
    detail = dict(context, key_id=master.key_id, version=master.version)
    blob = _audited_call(
        deps,
        AuditAction.WRAP,
        master.ref,
        master.provider,
        detail,
        lambda: provider.wrap(master.key_id, share, context),
        retry=retry,
    )
    return Wrap(master.ref, master.provider, master.key_id, master.version, blob)


def unwrap_share(
    deps: KeyDeps, wrap: Wrap, context: Mapping[str, str], *, retry: bool = True
) -> bytes:
    """Unwrap one share with the key and version that wrapped it."""
    provider = deps.provider(wrap.provider)
    detail = dict(context, key_id=wrap.key_id, version=wrap.version)
    return _audited_call(
        deps,
        AuditAction.UNWRAP,
        wrap.key,
        wrap.provider,
        detail,
        lambda: provider.unwrap(wrap.key_id, wrap.blob, context),
        retry=retry,
    )


def describe_key(deps: KeyDeps, ref: KeyRef, provider: str, key_id: str) -> KeyDescription:
    """Ask ``provider`` about ``key_id`` on behalf of ``ref``, audited in ``ref``'s log (AUD-1):
    a describe is a use of the customer's key manager like a wrap, so it leaves a record."""
    backend = deps.provider(provider)
    detail = {"key_id": key_id, "provider": provider}
    return _audited_call(
        deps,
        AuditAction.DESCRIBE,
        ref,
        provider,
        detail,
        lambda: backend.describe(key_id),
        retry=False,
    )


def verify_wrap(deps: KeyDeps, wrap: Wrap) -> None:
    """Refuse a stored wrap that names another key manager, key or version than ownkey's
    registry holds for the key reference it claims (issue 10, finding 2).

    Without this a row saying ``customer:acme`` but naming the platform key's id would be
    unwrapped by the platform key and audited as a use of acme's key. Raises AccessDenied
    (reason ``integrity``); the caller records it.
    """
    master = deps.registry.get(wrap.key)
    if (
        master is None
        or wrap.provider != master.provider
        or wrap.key_id != master.key_id
        or (wrap.version != master.version and wrap.version not in deps.registry.versions(wrap.key))
    ):
        raise AccessDenied(
            f"a stored share names a key that is not {wrap.key}'s", reason="integrity"
        )
