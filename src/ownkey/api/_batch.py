"""Batches on the data plane: many messages of one container in one request (issue 25).

A chat service seals every message; one HTTP request per message pays a token check, a JSON
parse and a route for a few microseconds of sealing. ``POST /v1/seal/batch`` and
``POST /v1/open/batch`` take one container's request (the asset without its id, the scope, the
actor) and up to :data:`MAX_ITEMS` items: one authentication, one plan, one prepared handle.

Each item's result is reported on its own, in order: its envelope (or plaintext), or a problem
document like the single routes' (``type``, ``title``, ``status``, ``detail``, and ``reason`` /
``tombstone`` for a denial, ``field`` for a bad value). An item's own fault (a bad asset id, a
damaged envelope, base64 that is not) fails that item alone; what concerns the container (a
revocation, a key manager down) fails every item alike. The answer is ``200`` whenever the
request itself was well formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from ownkey.api._models import (
    Actor,
    AssetIn,
    ProtectionOut,
    Text,
    _asset_schema,
    _Strict,
    decode_base64,
    encode_base64,
)
from ownkey.api._problems import problem_body
from ownkey.errors import InvalidRequest, OwnkeyError

__all__ = [
    "MAX_ITEMS",
    "BatchResult",
    "ContainerRequest",
    "OpenBatchIn",
    "OpenBatchOut",
    "SealBatchIn",
    "SealBatchOut",
    "decoded_items",
    "results_of",
]

#: Items a batch may carry (the body is bounded too: the 16 MiB route limit of /v1/seal).
MAX_ITEMS = 1000


class ContainerRequest(_Strict):
    """One container's request: the policy's ``asset`` (its ``asset_id`` is each item's), the
    scope, and the ``actor`` every item is sealed or opened for."""

    asset: Annotated[AssetIn, WithJsonSchema(_asset_schema()), Field(title="Asset")]
    scope: Text = Field(description="The container: a channel, chat, meeting or user id.")
    actor: Actor | None = Field(None, description="The end user (the key-usage log).")

    def to_request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"asset": self.asset.to_json(), "scope": self.scope}
        if self.actor is not None:
            request["actor"] = self.actor
        return request


#: Base64 checked per item (``decoded_items``), so that one bad item fails alone.
ItemBase64 = Annotated[str, WithJsonSchema({"type": "string", "contentEncoding": "base64"})]


class SealItemIn(_Strict):
    asset_id: str = Field(description="The asset's own id (checked per item).")
    data: ItemBase64 = Field(description="The plaintext, standard base64.")


class OpenItemIn(_Strict):
    asset_id: str = Field(description="The asset's own id (checked per item).")
    sealed: ItemBase64 = Field(description="What a seal returned, standard base64.")


class SealBatchIn(_Strict):
    request: ContainerRequest
    items: list[SealItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class OpenBatchIn(_Strict):
    request: ContainerRequest
    items: list[OpenItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class BatchResult(_Strict):
    """One item's result: ``value`` (base64 envelope or plaintext) or ``error``."""

    asset_id: str
    value: str | None = None
    error: dict[str, Any] | None = None


class SealBatchOut(_Strict):
    results: list[BatchResult]
    sealed: int = Field(description="How many items were sealed.")
    failed: int = Field(description="How many items failed (each says why).")
    protection: ProtectionOut | None = Field(
        None, description="What protects the items sealed (as /v1/seal says it)."
    )


class OpenBatchOut(_Strict):
    results: list[BatchResult]
    opened: int
    failed: int


def decoded_items(
    items: Sequence[SealItemIn | OpenItemIn],
) -> tuple[list[tuple[str, bytes]], dict[int, OwnkeyError]]:
    """The items' bytes, and the errors of those whose base64 does not decode (by position):
    those fail alone, the others go on."""
    decoded: list[tuple[str, bytes]] = []
    failed: dict[int, OwnkeyError] = {}
    for index, item in enumerate(items):
        text = item.data if isinstance(item, SealItemIn) else item.sealed
        name = "data" if isinstance(item, SealItemIn) else "sealed"
        try:
            decoded.append((item.asset_id, decode_base64(text, f"items[{index}].{name}")))
        except InvalidRequest as exc:
            failed[index] = exc
    return decoded, failed


def results_of(
    items: Sequence[SealItemIn | OpenItemIn],
    done: list[bytes | OwnkeyError],
    failed: dict[int, OwnkeyError],
) -> list[BatchResult]:
    """Every item's result in order: what the service answered, or its decoding error."""
    answers = iter(done)
    results: list[BatchResult] = []
    for index, item in enumerate(items):
        outcome = failed[index] if index in failed else next(answers)
        if isinstance(outcome, OwnkeyError):
            results.append(BatchResult(asset_id=item.asset_id, error=problem_body(outcome)))
        else:
            results.append(BatchResult(asset_id=item.asset_id, value=encode_base64(outcome)))
    return results
