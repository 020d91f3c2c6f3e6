"""The history of Partner Center's notes: each change kept as a Note on the opportunity.

The mapping syncs `details.notes` with the opportunity's Description both ways (one text, the
last value wins); a change made in Partner Center replaces the Description, so what was there
before would be gone. So each change of the Partner Center notes is also kept as a ContentNote
linked to the opportunity ("Partner Center notes #<hash>: <first words>", the whole text as
its content), written with `microsoft.write_notes`, which Microsoft's own notes use too.

**What is a change** (`due`, no I/O): the link has a base with the notes field (a referral's
first notes arrive with the opportunity's create, not as a change), Partner Center's notes
differ from the base (they changed there since both sides last agreed), they are not empty
(nothing to keep), and they differ from Salesforce's (when Salesforce holds them already they
are our own echo: the seller's Description written to Partner Center; or a retry after the
Description was written, whose note was written before it, see below).

**Exactly once.** The hash of the last notes kept is a marker in the base snapshot
(`HISTORY_MARKER`, carried over every reconcile like Microsoft's markers), so a change that is
never adopted as the base (a conflict won by Salesforce, a field that only flows to Partner
Center) gives one note, not one per reconcile. The note is written *before* the reconcile's
writes: a crash after the Description was written leaves both sides equal, which `due` takes
for an echo, so the note must exist by then. A crash between the note and the base's save
re-runs `write_notes`, which finds the note on the opportunity (same title, with the hash) and
skips it. The cost: one SOQL query and two creates per change, nothing otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from cosell.mapping import Mapping as SyncMapping
from cosell.mapping.types import Value
from cosell.sync.plan.microsoft import Note

NOTES_PATH = ("details", "notes")
HISTORY_MARKER = "~notes.partner_center"
"""Reserved base-snapshot key: the hash of the last Partner Center notes kept as a Note."""

_TITLE_WORDS = 8
_TITLE_LENGTH = 255
_HASH_LENGTH = 8


def notes_field(mapping: SyncMapping) -> str | None:
    """The canonical name of the field mapped to `details/notes`, or None when none is."""
    for mapped in mapping.fields:
        if mapped.path == NOTES_PATH:
            return mapped.name
    return None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]


def note_of(text: str) -> Note:
    """The Note keeping one version of the Partner Center notes, titled by its hash and first words."""
    words = text.split()
    preview = " ".join(words[:_TITLE_WORDS]) + (" …" if len(words) > _TITLE_WORDS else "")
    return Note(title=f"Partner Center notes #{_hash(text)}: {preview}"[:_TITLE_LENGTH], text=text)


def due(
    mapping: SyncMapping,
    partner_center: Mapping[str, Value],
    salesforce: Mapping[str, Value],
    base: Mapping[str, Value] | None,
) -> Note | None:
    """The Note to keep for a change of the Partner Center notes since the base, if any.

    Args:
        mapping: the mapping (which field holds the notes).
        partner_center: Partner Center's canonical values as read.
        salesforce: Salesforce's canonical values as read.
        base: the link's base snapshot (None before the first reconcile).

    Returns:
        The Note, or None when the notes did not change in Partner Center (see the module
        docstring) or this version was kept already.
    """
    name = notes_field(mapping)
    if name is None or base is None or name not in base:
        return None
    theirs = partner_center.get(name)
    if not isinstance(theirs, str) or not theirs.strip():
        return None
    if theirs in (base[name], salesforce.get(name)) or base.get(HISTORY_MARKER) == _hash(theirs):
        return None
    return note_of(theirs)


def marker(note: Note) -> dict[str, Value]:
    """The base-snapshot marker saying that `note`'s version of the notes was kept."""
    return {HISTORY_MARKER: _hash(note.text)}
