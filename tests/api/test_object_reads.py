"""A GET reads the store once and verifies the stream's layout once, however many chunks it
streams, and a ranged GET decrypts only the segments that cover the range (and the final one)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from ownkey.envelope import _stream
from tests.api.conftest import Api, recording

SIZE = 3 * (1 << 20) + 4321  # four 1 MiB chunks of a download, many 256 KiB segments


def _put(api: Api, data: bytes) -> None:
    answer = api.client.put(
        "/v1/objects/rec-1",
        content=data,
        headers={**api.platform, "Ownkey-Request": json.dumps(recording())},
    )
    assert answer.status_code in (200, 201), answer.text


def _count(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_download_reads_the_store_once_and_checks_the_layout_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(SIZE)
    _put(api, data)
    store = api.runtime.assets.store
    opens, gets = _count(monkeypatch, store, "open"), _count(monkeypatch, store, "get")
    layouts = _count(monkeypatch, _stream, "stream_layout")
    answer = api.client.get("/v1/objects/rec-1", headers=api.platform)
    assert answer.status_code == 200
    assert answer.content == data
    assert (len(opens), len(gets)) == (1, 0)
    assert len(layouts) == 1


def test_a_ranged_download_decrypts_only_the_covering_segments(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(SIZE)
    _put(api, data)
    segments = _count(monkeypatch, _stream, "_open_segment")
    start = SIZE // 2
    answer = api.client.get(
        "/v1/objects/rec-1", headers={**api.platform, "Range": f"bytes={start}-{start + 9}"}
    )
    assert answer.status_code == 206
    assert answer.content == data[start : start + 10]
    assert answer.headers["Content-Range"] == f"bytes {start}-{start + 9}/{SIZE}"
    assert len(segments) == 2  # the one covering segment and the final one (ENV-5.8)


def test_a_range_outside_the_object_is_416_with_its_size(api: Api) -> None:
    _put(api, os.urandom(SIZE))
    answer = api.client.get(
        "/v1/objects/rec-1", headers={**api.platform, "Range": f"bytes={SIZE + 5}-"}
    )
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == f"bytes */{SIZE}"
