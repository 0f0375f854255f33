"""The catalog is the seed as data: every service ID, its inclusions and its exclusions."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import ownkey.catalog
from ownkey.catalog import (
    ASSET_TYPES,
    SERVICE_IDS,
    AssetType,
    Group,
    OwnerKind,
    asset_type,
    render_catalog_markdown,
)
from ownkey.errors import NotFound

ROOT = Path(__file__).resolve().parents[2]
# The product specification, committed so the check runs in every clone; a test below keeps the
# copy equal to the shared original when that sits beside the checkout.
SEED = ROOT / "docs" / "spec" / "seed" / "cmk-protected-content.txt"
SHARED_SEED = ROOT.parent / "shared" / "seed" / "cmk-protected-content.txt"

# The seed's table, in its order: (service ID, asset name).
SEED_ROWS = [
    ("0001", "Meeting/webinar recordings"), ("0010", "Clips"), ("0011", "Whiteboards"),
    ("0002", "Phone recordings"), ("0003", "Phone voicemails"), ("0006", "Compliance archives"),
    ("0009", "Phone MMS messages"), ("0004", "User calendar access"),
    ("0005", "Zoom Room calendar access"), ("0007", "Other access"), ("0008", "Team Chat"),
    ("0012", "Revenue Accelerator"), ("0013", "Events"), ("0017", "Notes"), ("0018", "Docs"),
    ("9999", "Personal identifiers"), ("0014", "Recording and transcripts"),
    ("0015", "Voicemails and voicemail transcripts"), ("0016", "Messaging transcripts"),
    ("0025", "Email transcripts and files"), ("0019", "Conversations in the AI Companion panel"),
    ("0020", "File history"), ("0021", "Email history"), ("0022", "Custom AI files"),
    ("0023", "Connector credentials"), ("1001", "Hybrid chat data"),
]  # fmt: skip


def test_public_names_are_pinned() -> None:
    """The package's front door is a curated ``__all__``; changing it is a deliberate act."""
    assert set(ownkey.catalog.__all__) == {
        "ASSET_TYPES", "SERVICE_IDS", "AssetType", "ContainerKind", "Group", "OwnerKind",
        "asset_type", "render_catalog_markdown",
    }  # fmt: skip


def test_every_row_of_the_seed_is_in_the_catalog_in_order() -> None:
    """Seed: "... as described in the following list (with their Service ID as it appears in the
    encryption context)." Every row, with its 4-character string ID."""
    assert [(e.service_id, e.name) for e in ASSET_TYPES] == SEED_ROWS
    assert all(isinstance(e.service_id, str) and len(e.service_id) == 4 for e in ASSET_TYPES)
    assert len(SERVICE_IDS) == len(ASSET_TYPES) == 26


def test_catalog_matches_the_seed_file() -> None:
    """The same IDs as the product page itself, when it is at hand."""
    text = SEED.read_text(encoding="utf-8")
    table = text.split("AssetService IDDescription", 1)[1]
    found = re.findall(r"[A-Za-z)*]\s?(\d{4})", table)
    assert set(found) == SERVICE_IDS


@pytest.mark.parametrize(
    ("service_id", "excluded", "sentence"),
    [
        ("0001", {"poll", "q_and_a", "survey", "poll_report", "file_transfer"},
         "Polls (Q&A, surveys, and reports) and in-meeting file transfers are not encrypted."),
        ("0010", {"custom_avatar"}, "but not the custom avatar"),
        ("0008", {"reaction", "giphy"},
         "Reaction emojis and giphys (and the associated URLs) will not be encrypted"),
        ("0016", {"attachment"}, "Does not include attachments from social channels and SMS."),
        ("0017", {"my_note"}, "This does not include content from My Notes."),
    ],
)  # fmt: skip
def test_the_seeds_exclusions_are_recorded(
    service_id: str, excluded: set[str], sentence: str
) -> None:
    """Every "not encrypted" sentence of the seed is an excluded component, quoted."""
    entry = asset_type(service_id)
    assert set(entry.excluded) == excluded
    assert sentence in entry.excluded_note
    assert all(entry.excludes(component) for component in excluded)


def test_only_the_seeds_exclusions_are_excluded() -> None:
    """No other service loses a component."""
    with_exclusions = {e.service_id for e in ASSET_TYPES if e.excluded}
    assert with_exclusions == {"0001", "0010", "0008", "0016", "0017"}


def test_groups_follow_the_seeds_headings() -> None:
    """Seed headings: Internal assets, Zoom Contact Center, AI Companion, Custom AI Companion,
    CMK Hybrid."""
    by_group = {g: [e.service_id for e in ASSET_TYPES if e.group is g] for g in Group}
    assert by_group[Group.CONTACT_CENTER] == ["0014", "0015", "0016", "0025"]
    assert by_group[Group.AI_COMPANION] == ["0019", "0020", "0021"]
    assert by_group[Group.CUSTOM_AI_COMPANION] == ["0022", "0023"]
    assert by_group[Group.CMK_HYBRID] == ["1001"]
    assert len(by_group[Group.INTERNAL]) == 16


def test_the_starred_ai_services_carry_both_notes() -> None:
    """Seed: the AI Companion and Custom AI Companion rows are starred ("*Note: Large
    organizations can also enable the encryption of certain log and index data ..."), and the
    third-party model note is about AI Companion features."""
    starred = {"0019", "0020", "0021", "0022", "0023"}
    assert {e.service_id for e in ASSET_TYPES if e.large_org_log_index_note} == starred
    assert {e.service_id for e in ASSET_TYPES if e.third_party_model_note} == starred


def test_only_personal_identifiers_skip_enabling_and_licensing() -> None:
    """Seed (9999): "This category does not need to be enabled ... regardless of whether a user
    has licensed CMK or not." """
    assert [e.service_id for e in ASSET_TYPES if not e.needs_enabling] == ["9999"]
    assert [e.service_id for e in ASSET_TYPES if not e.needs_licence] == ["9999"]
    assert asset_type("9999").owner_kinds == frozenset(OwnerKind)


def test_call_queues_own_phone_recordings_and_voicemails() -> None:
    """Seed: "... not only for individual (licensed) users but also for all call queues." """
    for service_id in ("0002", "0003"):
        assert OwnerKind.CALL_QUEUE in asset_type(service_id).owner_kinds


def test_unknown_service_ids_are_not_found() -> None:
    """An unknown ID never falls back to a default; 0024 is a gap in the seed's numbering."""
    for service_id in ("0024", "8", "", "00011"):
        with pytest.raises(NotFound):
            asset_type(service_id)


def test_bad_entries_are_refused() -> None:
    """The data checks itself: a 4-digit ID and disjoint, non-empty component lists."""
    with pytest.raises(ValueError, match="4 digits"):
        AssetType("8", "x", Group.INTERNAL, "", included=("a",))
    with pytest.raises(ValueError, match="vocabulary"):
        AssetType("0100", "x", Group.INTERNAL, "", included=("a",), excluded=("a",))
    with pytest.raises(ValueError, match="AI-generated"):
        AssetType("0100", "x", Group.INTERNAL, "", included=("a",), ai_generated=frozenset("b"))


def test_committed_catalog_doc_is_the_generator_output() -> None:
    """docs/catalog.md is generated (scripts/gen-catalog-doc); it must not drift from the data."""
    committed = (ROOT / "docs" / "catalog.md").read_text(encoding="utf-8")
    assert committed == render_catalog_markdown()


def test_catalog_doc_lists_every_service_with_inclusions_and_exclusions() -> None:
    """The table a customer reads: every ID, what is protected and what is not."""
    doc = render_catalog_markdown()
    for entry in ASSET_TYPES:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{entry.service_id}`"))
        assert all(f"`{c}`" in row for c in entry.included + entry.excluded)


def test_committed_seed_is_the_shared_original() -> None:
    """The committed seed is byte for byte the original, whose SHA-256 was recorded beside it
    when it was copied (so a clone without the shared original still checks it)."""
    recorded = SEED.with_name(SEED.name + ".sha256").read_text(encoding="ascii").split()[0]
    assert hashlib.sha256(SEED.read_bytes()).hexdigest() == recorded
    if SHARED_SEED.exists():  # beside the original: the record itself is still the original's
        assert hashlib.sha256(SHARED_SEED.read_bytes()).hexdigest() == recorded
