"""One bounded memo for the service layer, and the cheap key it is looked up by.

Plans and prepared handles are pure functions of a request, so a remembered answer is exactly
the answer: nothing to invalidate, only a bound on memory (least recently used goes first).

:func:`request_key` is the memo key instead of ``json.dumps`` (about four times dearer): the
request's ``marshal`` serialization, in C. It keeps every scalar's type (``True``, ``1`` and
``1.0`` are three keys, as the policy engine tells them apart) and refuses anything that is not
exactly a built-in type (a ``dict`` or ``str`` subclass may carry more than its items, such as a
parser's duplicated keys): such a request gets no key and so no memo. Format version 2 has no
back-references, so the bytes depend only on the value; two equal requests whose objects were
inserted in another order get two keys, which costs a memo entry, never a wrong answer.
"""

from __future__ import annotations

import marshal
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["LruMemo", "request_key"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MARSHAL_VERSION = 2  # the last version without references between objects


def request_key(
    request: Mapping[str, Any], *, without: tuple[str, ...] | str | None = None
) -> bytes | None:
    """A key equal for two requests when they are equal as JSON with the same types and order,
    the top-level fields ``without`` left out; ``None`` when the request is not plain data."""
    if type(request) is not dict:
        return None
    if without is not None:
        names = (without,) if isinstance(without, str) else without
        if any(name in request for name in names):
            request = {name: value for name, value in request.items() if name not in names}
    try:
        return marshal.dumps(request, _MARSHAL_VERSION)
    except ValueError:  # an object that is not exactly a built-in type
        return None


class LruMemo(Generic[K, V]):
    """A thread-safe bounded map from keys to computed values; failures are not remembered."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max_entries = max_entries
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: K, compute: Callable[[], V]) -> V:
        """The value remembered for ``key``, else ``compute()`` remembered (unless it raises)."""
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
                return value
        value = compute()
        with self._lock:
            self._values[key] = value
            if len(self._values) > self._max_entries:
                self._values.popitem(last=False)
        return value
