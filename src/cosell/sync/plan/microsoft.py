"""Microsoft's side of a co-sell engagement reaches the opportunity: status, MSX id, notes.

A referral shared with Microsoft sellers has a second referral in its engagement, owned by
Microsoft (organizationId `msft`, the id Partner Center names Microsoft by in `invitedBy` and
`target`). Microsoft's seller accepts, declines or closes it, sets the MSX id on it
(`trackingInfo.microsoftMsxId`) and appends notes to its `details.notes`. Partner Center
announces each change as `related-referral-created` / `related-referral-updated` naming
*Microsoft's* referral, and its list (the poller, the sweep) shows that referral as changed.

**When it is read.** Microsoft's referral is read only when a key names it or a list shows it
changed. `resolve` GETs the referral behind an unlinked `referral:<id>` key (the GET the create
path made anyway); when it is Microsoft's, our link is found in the store by the engagement id
both referrals share (`Store.link_for_engagement`; a link whose engagement id was never
recorded costs one engagement list call, once). A batch (`reconcile_batch`, the sweep's
`sweep_page`, `cosell sync`) already holds Microsoft's referral from its list call and does
the same store lookup. Either way, a Microsoft referral with nothing new since the markers of
our link's base (`changed`) is not reconciled: it costs nothing beyond the read that showed it
(a GET for a key, nothing for a listed one). A changed one is reconciled with our link as
usual (2 reads) with Microsoft's referral at hand. A reconcile of our own referral or of the
opportunity never reads Microsoft's side, so an unshared referral, and the steady state of a
shared one, costs exactly what it did (2 reads). A lost webhook is repaired by the poller or
the sweep, which list Microsoft's changed referral.

**What reaches the opportunity** (`extend`, no I/O):

- Microsoft's status/substatus, as an audit line ("Microsoft accepted the co-sell",
  "Microsoft declined the co-sell: <reason>", ...). `Partner_Center_Status__c` keeps showing
  our referral's state only: a reconcile of our own key does not read Microsoft's side and
  would otherwise rewrite the field back and forth.
- the MSX id (Microsoft's, else ours) → `Microsoft_CRM_Identifier__c` when it changed.
- each new line of Microsoft's `details.notes` → one ContentNote ("Microsoft: <first words>",
  the line as its content) linked to the opportunity (`write_notes`), and an audit line.

**Idempotence.** What was last seen of Microsoft's side is kept in the link's base snapshot
under reserved keys (`MARKERS`, never mapping field names; the merge ignores them and
`keep_markers` carries them over every other reconcile): its status text, its MSX id and a
short hash per note line seen. Only differences from them are written, so reading an
unchanged Microsoft side writes nothing. The base is saved after every note's
ContentDocumentLink exists; a crash before that re-runs `write_notes`, which first reads the
notes already linked to the opportunity (one SOQL query, only when there are notes to add)
and skips one with the same title and text: each note reaches the opportunity exactly once.
A crash between a ContentNote and its link leaves an unlinked note nobody sees; the retry
creates and links another one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cosell.mapping.model import OPPORTUNITY
from cosell.mapping.types import Value
from cosell.partnercenter.models import Referral
from cosell.store.types import Key, Link
from cosell.sync.plan.audit import show
from cosell.sync.plan.merge import Plan
from cosell.sync.plan.outcome import UNCHANGED, Outcome

MICROSOFT_ORGANIZATION_ID = "msft"
MSX_FIELD = "Microsoft_CRM_Identifier__c"  # the packaged opportunity field (Text(100))

MARKER_PREFIX = "~"
"""Reserved base-snapshot keys start with it (canonical field names are lower_snake_case)."""

STATUS_MARKER = "~microsoft.status"
MSX_MARKER = "~microsoft.msx_id"
NOTES_MARKER = "~microsoft.notes"
MARKERS = (STATUS_MARKER, MSX_MARKER, NOTES_MARKER)
"""Reserved base-snapshot keys: what was last seen of Microsoft's referral."""

_TITLE_WORDS = 8
_TITLE_LENGTH = 255
PREVIEW_LENGTH = 255  # ContentNote.TextPreview: the first 255 characters


@dataclass(frozen=True)
class MicrosoftSide:
    """Microsoft's referral in the engagement of a linked referral, as read this reconcile.

    Attributes:
        referral: Microsoft's referral.
    """

    referral: Referral


@dataclass(frozen=True)
class Note:
    """A Microsoft note to put on the opportunity.

    Attributes:
        title: the ContentNote's title ("Microsoft: <first words>").
        text: the note's line as Microsoft's referral holds it.
    """

    title: str
    text: str


def is_microsofts(referral: Referral) -> bool:
    """Whether the referral is Microsoft's own side of an engagement (not ours)."""
    return referral.organization_id == MICROSOFT_ORGANIZATION_ID


def changed(referral: Referral, base: Mapping[str, Value] | None) -> bool:
    """Whether Microsoft's referral differs from what our link's base last saw of it.

    Args:
        referral: Microsoft's referral as read.
        base: our link's base snapshot (None, or without markers: never seen, so changed).

    Returns:
        True when its status, its MSX id or a note line is new to the markers.
    """
    if base is None or STATUS_MARKER not in base or _status(referral) != base[STATUS_MARKER]:
        return True
    msx = referral.tracking_info.microsoft_msx_id if referral.tracking_info else None
    if msx and msx != base.get(MSX_MARKER):
        return True
    marker = base.get(NOTES_MARKER)
    seen = set(marker.split(",")) if isinstance(marker, str) and marker else set()
    lines = _lines(referral.details.notes if referral.details else None)
    return any(_hash(line) not in seen for line in lines)


def unchanged(key: Key, link: Link, api_calls: int) -> Outcome:
    """The outcome of a Microsoft referral with nothing new since the base."""
    return Outcome(
        key,
        link.id,
        UNCHANGED,
        message="Microsoft's side of the co-sell has not changed since it was last seen",
        api_calls=api_calls,
    )


def keep_markers(plan: Plan, base: Mapping[str, Value] | None) -> Plan:
    """The plan with the base's markers carried into its new base (the merge drops them).

    Every reserved key (`MARKER_PREFIX`: Microsoft's here, the notes history's in
    `notes_history.py`) is carried; mapping field names never start with it.
    """
    kept = {k: v for k, v in (base or {}).items() if k.startswith(MARKER_PREFIX)}
    if not kept:
        return plan
    return replace(plan, new_base={**plan.new_base, **kept})


def _hash(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()[:16]


def _lines(notes: str | None) -> list[str]:
    return [line.strip() for line in (notes or "").splitlines() if line.strip()]


def _status(referral: Referral) -> str | None:
    if referral.status is None:
        return None
    if referral.substatus is None:
        return referral.status.value
    return f"{referral.status.value}/{referral.substatus.value}"


def _status_message(referral: Referral, status: str) -> str:
    reason = f": {referral.status_reason}" if referral.status_reason else ""
    if status == "Active/Accepted":
        return "Microsoft accepted the co-sell"
    if status == "Closed/Declined":
        return f"Microsoft declined the co-sell{reason}"
    if status == "Closed/Won":
        return "Microsoft closed the co-sell as won"
    if status == "Closed/Lost":
        return f"Microsoft closed the co-sell as lost{reason}"
    return f"Microsoft's referral is now {status}"


def note_of(line: str) -> Note:
    """The ContentNote of one note line ("[time] text"): titled by its first words."""
    text = line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line
    words = text.split()
    title = " ".join(words[:_TITLE_WORDS]) + (" …" if len(words) > _TITLE_WORDS else "")
    return Note(title=f"Microsoft: {title}"[:_TITLE_LENGTH], text=line)


@dataclass(frozen=True)
class Extension:
    """What Microsoft's side adds to a reconcile's decision.

    Attributes:
        fields: opportunity fields to write (the MSX id).
        messages: audit messages, one per change.
        markers: the reserved base keys after this reconcile.
        notes: the notes to put on the opportunity.
    """

    fields: dict[str, Any]
    messages: list[str]
    markers: dict[str, Value]
    notes: list[Note]


def extend(
    side: MicrosoftSide, ours: Referral, opportunity: Mapping[str, Any], base: Mapping[str, Value]
) -> Extension:
    """What changed on Microsoft's side since the base, as writes, audit messages and markers.

    Args:
        side: Microsoft's referral as read.
        ours: our referral as read (its notes are where a shared engagement's notes began,
            and its MSX id is used when Microsoft's has none).
        opportunity: the opportunity row as read.
        base: the link's base snapshot (empty before the first reconcile).

    Returns:
        The extension; empty fields, messages and notes when nothing changed.
    """
    theirs = side.referral
    messages: list[str] = []
    fields: dict[str, Any] = {}
    status = _status(theirs)
    first_sight = STATUS_MARKER not in base
    changed = status is not None and status != base.get(STATUS_MARKER)
    if changed and status is not None and not (first_sight and status == "New/Pending"):
        messages.append(_status_message(theirs, status))
    msx = (theirs.tracking_info.microsoft_msx_id if theirs.tracking_info else None) or (
        ours.tracking_info.microsoft_msx_id if ours.tracking_info else None
    )
    if msx and msx != base.get(MSX_MARKER):
        messages.append(f"Microsoft CRM id set to {msx}")
        if (opportunity.get(MSX_FIELD) or None) != msx:
            fields[MSX_FIELD] = msx
    seen_marker = base.get(NOTES_MARKER)
    if isinstance(seen_marker, str):
        seen = set(seen_marker.split(",")) if seen_marker else set()
    else:  # first sight: the engagement's notes began as a copy of ours, already synced
        seen = {_hash(line) for line in _lines(ours.details.notes if ours.details else None)}
    lines = _lines(theirs.details.notes if theirs.details else None)
    notes = [note_of(line) for line in lines if _hash(line) not in seen]
    for note in notes:
        messages.append(f"Microsoft added a note: {show(note.text)}")
    markers: dict[str, Value] = {
        STATUS_MARKER: status,
        MSX_MARKER: msx or base.get(MSX_MARKER),
        NOTES_MARKER: ",".join(sorted(seen | {_hash(line) for line in lines})),
    }
    return Extension(fields=fields, messages=messages, markers=markers, notes=notes)


def apply_extension(decision_writes: dict[str, dict[str, Any]], extension: Extension) -> None:
    """Add the extension's fields to the decision's Salesforce writes (in place).

    An extension with audit messages but no field still gets an (empty) opportunity entry,
    so the reconcile writes `Audit__c` now: the seller sees Microsoft's change at once.
    """
    if extension.fields or extension.messages:
        decision_writes[OPPORTUNITY] = {
            **decision_writes.get(OPPORTUNITY, {}),
            **extension.fields,
        }
