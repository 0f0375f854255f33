"""ENV-3: the canonical, unambiguous encoding of the encryption context."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ownkey.envelope import ContextTemplate, EncryptionContext, encode_context

names = st.from_regex(r"[a-z0-9_.-]{1,64}", fullmatch=True)
values = st.text(max_size=40).filter(lambda v: len(v.encode()) <= 1024)
contexts = st.dictionaries(names, values, max_size=8)


def test_known_encoding() -> None:
    """ENV-3.x layout, byte for byte: count, then sorted length-prefixed pairs."""
    assert encode_context({"scope": "c1", "org": "acme"}) == (
        b"\x02" + b"\x03org" + b"\x00\x04acme" + b"\x05scope" + b"\x00\x02c1"
    )
    assert encode_context({}) == b"\x00"


@given(contexts, contexts)
def test_different_maps_never_share_an_encoding(a: dict[str, str], b: dict[str, str]) -> None:
    """ENV-3.4."""
    assert (encode_context(a) == encode_context(b)) == (a == b)


@given(contexts)
def test_encoding_ignores_insertion_order(pairs: dict[str, str]) -> None:
    """ENV-3.4: one map, one encoding."""
    reordered = dict(reversed(list(pairs.items())))
    assert encode_context(pairs) == encode_context(reordered)
    assert EncryptionContext(pairs).encoded == encode_context(pairs)


def test_shifting_bytes_between_name_and_value_changes_the_encoding() -> None:
    """ENV-3.4: the classic ambiguity of plain concatenation cannot happen."""
    assert encode_context({"ab": "c"}) != encode_context({"a": "bc"})
    assert encode_context({"a": ""}) != encode_context({})


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ({"Org": "x"}, "'Org'"),
        ({"": "x"}, "''"),
        ({"a" * 65: "x"}, "must be 1-64"),
        ({"org": "x" * 1025}, "exceeds 1024 bytes"),
        ({"org": 5}, "must be a string"),
        ({f"k{i}": "" for i in range(33)}, "limit is 32"),
    ],
)
def test_bad_contexts_are_refused_with_the_entry_named(pairs: dict[str, str], message: str) -> None:
    """ENV-3.1, ENV-3.2, ENV-3.3, ENV-3.5."""
    with pytest.raises(ValueError, match=message):
        encode_context(pairs)


def test_context_is_immutable_and_hashable() -> None:
    ctx = EncryptionContext({"org": "acme"}, scope="c1")
    assert dict(ctx) == {"org": "acme", "scope": "c1"}
    assert hash(ctx) == hash(EncryptionContext(scope="c1", org="acme"))
    assert ctx == EncryptionContext(org="acme", scope="c1")
    assert ctx == {"org": "acme", "scope": "c1"}
    with pytest.raises(TypeError):
        ctx["org"] = "globex"  # type: ignore[index]


@given(contexts, names, values)
def test_a_template_encodes_exactly_what_encode_context_does(
    fixed: dict[str, str], name: str, value: str
) -> None:
    """The prepared path's spliced encoding is the canonical one (ENV-3.4), whatever the name's
    place among the fixed names."""
    fixed.pop(name, None)
    assert ContextTemplate(fixed, name).encode(value) == encode_context({**fixed, name: value})


def test_a_template_refuses_what_encode_context_refuses() -> None:
    with pytest.raises(ValueError, match="both fixed and varying"):
        ContextTemplate({"asset_id": "x"}, "asset_id")
    with pytest.raises(ValueError, match="must be 1-64"):
        ContextTemplate({"Org": "x"}, "asset_id")
    template = ContextTemplate({"org": "acme"}, "asset_id")
    with pytest.raises(ValueError, match="exceeds 1024 bytes"):
        template.encode("x" * 1025)
    with pytest.raises(ValueError, match="must be a string"):
        template.encode(7)  # type: ignore[arg-type]
