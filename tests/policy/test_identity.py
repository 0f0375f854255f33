"""The one identity rule (``ownkey.policy.canonical_email``), issue 23 section 4.

``str.lower()`` merged identities: ``"\\u212aim@acme.test".lower()`` is kim's address. The rule
refuses every non-ASCII character and lower-cases ASCII only, so two spellings are one user
exactly when they are equal ignoring ASCII case. The property tests try confusable input.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ownkey.errors import InvalidRequest
from ownkey.policy import canonical_email

KIM = "kim@acme.test"

#: Letters that look like, or case-map to, ASCII ones: Kelvin sign, Angstrom sign, long s,
#: dotless i, dotted capital I, Cyrillic a/e/o/c/p/x, Greek omicron, fullwidth letters, the
#: ligature "ff", a combining dot, a zero-width joiner, a non-breaking space.
CONFUSABLES = (
    "\u212a\u212b\u017f\u0131\u0130\u0430\u0435\u043e\u0441\u0440\u0445\u03bf"
    "\uff41\uff2b\ufb00\u0307\u200d\u00a0"
)


def test_kelvin_sign_is_not_kims_address() -> None:
    """The attack: U+212A KELVIN SIGN + ``im@acme.test`` lower-cased to kim's address."""
    kelvin = "\u212aim@acme.test"
    assert kelvin.lower() == KIM  # what str.lower() did
    with pytest.raises(InvalidRequest, match="only ASCII"):
        canonical_email("email", kelvin)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("Ann@Acme.test", "ann@acme.test"), ("ANN@ACME.TEST", "ann@acme.test"), (KIM, KIM)],
)
def test_case_is_one_user(spelling: str, canonical: str) -> None:
    assert canonical_email("user", spelling) == canonical


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("ann", "no @domain"),
        ("ann@", "not a domain"),
        ("@acme.test", "not a valid local part"),
        ("ann@acme", "not a domain"),
        ("a b@acme.test", "not a valid local part"),
        ("ann@acme.test@x.test", "not a domain"),
        (".ann@acme.test", "not a valid local part"),
        ("a..nn@acme.test", "not a valid local part"),
        ("ann@-acme.test", "not a domain"),
        ("ann@acme.test\n", "not a domain"),
        ("a\x01b@acme.example", "not a valid local part"),
        ("\u0430nn@acme.test", "only ASCII"),
        ("x" * 65 + "@acme.test", "not a valid local part"),
        ("ann@" + "a" * 250 + ".test", "longer than 254"),
    ],
)
def test_what_is_not_an_address_is_refused_in_one_line(value: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why) as caught:
        canonical_email("user", value)
    assert "\n" not in str(caught.value)


@given(st.text(max_size=80))
@example("\u212aim@acme.test")
@example("K\u0130M@acme.test")
def test_any_text_is_refused_or_canonical(value: str) -> None:
    """Whatever comes in: refused, or ASCII, lower-case, fixed by a second pass, and equal to
    the input ignoring ASCII case only (nothing but A-Z/a-z is ever merged)."""
    try:
        out = canonical_email("user", value)
    except InvalidRequest:
        return
    assert out.isascii()
    assert out == out.lower()
    assert canonical_email("user", out) == out
    assert value.isascii()
    assert len(out) == len(value)
    assert all(a == b or a.lower() == b for a, b in zip(value, out, strict=True))


_ADDRESS = st.from_regex(
    r"[a-z][a-z0-9._+-]{0,10}[a-z0-9]@[a-z]{1,8}\.(test|example)", fullmatch=True
)


@given(
    address=_ADDRESS.filter(lambda a: ".." not in a and ".@" not in a),
    data=st.data(),
)
def test_a_confusable_spelling_never_reaches_the_address_it_imitates(
    address: str, data: st.DataObject
) -> None:
    """Replace any one character by a confusable: refused, never the original user."""
    assert canonical_email("user", address) == address
    at = data.draw(st.integers(0, len(address) - 1))
    imitation = address[:at] + data.draw(st.sampled_from(CONFUSABLES)) + address[at + 1 :]
    with pytest.raises(InvalidRequest, match="only ASCII"):
        canonical_email("user", imitation)


@given(st.lists(st.sampled_from("kKsSiI" + CONFUSABLES), min_size=1, max_size=6))
def test_two_spellings_are_one_user_only_when_equal_ignoring_ascii_case(
    local: list[str],
) -> None:
    """Over letters whose Unicode case maps collide with ASCII (K, S, I and their look-alikes):
    the canonical forms of two spellings are equal only when ``casefold`` on ASCII says so."""
    spelling = "".join(local) + "@acme.test"
    try:
        out = canonical_email("user", spelling)
    except InvalidRequest:
        assert not spelling.isascii()
        return
    assert out == spelling.lower()
    assert spelling.isascii()


def test_the_licence_check_compares_canonical_forms_and_merges_no_look_alike() -> None:
    """The data plane's half: the directory stores ``ann@acme.test``; a request naming
    ``Ann@Acme.test`` is ann (it fell back to the platform key), ``\\u212aim@acme.test`` is
    not kim."""
    from ownkey.policy import OrgSettings

    org = OrgSettings(cmk=True, licensed_users=frozenset({"ann@acme.test", KIM, "legacy-id"}))
    assert org.licenses("ann@acme.test")
    assert org.licenses("Ann@Acme.test")
    assert org.licenses("legacy-id")  # an id that is no email matches as given
    assert not org.licenses("\u212aim@acme.test")
    assert not org.licenses("bob@acme.test")
    assert not org.licenses(None)
