"""`notes_history.due`: which reads of both sides make a change of the Partner Center notes."""

from __future__ import annotations

import pytest

from cosell.mapping import load_mapping
from cosell.mapping.types import Value
from cosell.sync.plan.notes_history import HISTORY_MARKER, due, marker, note_of

MAPPING = load_mapping()
BASE: dict[str, Value] = {"notes": "agreed", "name": "Deal"}


@pytest.mark.parametrize(
    ("partner_center", "salesforce", "base"),
    [
        ("changed", "agreed", None),  # no base: the create brought the notes
        ("changed", "agreed", {"name": "Deal"}),  # notes not in the base yet
        ("agreed", "agreed", BASE),  # nothing changed
        ("agreed", "seller's", BASE),  # the seller changed them, not Partner Center
        ("seller's", "seller's", BASE),  # our echo, or a retry after the Description write
        ("  ", "agreed", BASE),  # emptied: nothing to keep
        (None, "agreed", BASE),
    ],
)
def test_no_note_is_due(
    partner_center: Value, salesforce: Value, base: dict[str, Value] | None
) -> None:
    assert due(MAPPING, {"notes": partner_center}, {"notes": salesforce}, base) is None


def test_a_partner_center_change_is_due_once() -> None:
    note = due(MAPPING, {"notes": "changed"}, {"notes": "agreed"}, BASE)
    assert note is not None
    assert note == note_of("changed")
    assert note.title.startswith("Partner Center notes #")
    assert note.title.endswith(": changed")
    kept = {**BASE, **marker(note)}
    assert HISTORY_MARKER in kept
    assert due(MAPPING, {"notes": "changed"}, {"notes": "other"}, kept) is None
    assert due(MAPPING, {"notes": "changed again"}, {"notes": "agreed"}, kept) is not None


def test_two_versions_sharing_their_first_words_get_different_titles() -> None:
    words = " ".join(f"w{n}" for n in range(20))
    first, second = note_of(words), note_of(words + " and more")
    assert first.title != second.title
    assert first.title.endswith(" …")


def test_a_mapping_without_notes_keeps_none() -> None:
    without = MAPPING.model_copy(
        update={"fields": [f for f in MAPPING.fields if f.name != "notes"]}
    )
    assert due(without, {"notes": "changed"}, {"notes": "agreed"}, BASE) is None
