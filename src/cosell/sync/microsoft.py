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

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cosell.mapping.types import Value
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import EngagementId, Referral
from cosell.salesforce.values import soql_in, soql_quote
from cosell.store.types import Key, Link
from cosell.sync.audit import show
from cosell.sync.context import OPPORTUNITY, ApiCalls, SyncContext
from cosell.sync.merge import Plan
from cosell.sync.outcome import SKIPPED, UNCHANGED, Outcome
from cosell.sync.sides import Sides, read_referral

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
_PREVIEW_LENGTH = 255  # ContentNote.TextPreview: the first 255 characters


@dataclass(frozen=True)
class MicrosoftSide:
    """Microsoft's referral in the engagement of a linked referral, as read this reconcile.

    Attributes:
        referral: Microsoft's referral.
    """

    referral: Referral


@dataclass(frozen=True)
class Resolved:
    """A key naming Microsoft's referral, resolved to our linked referral of the engagement.

    Attributes:
        link: our referral's link.
        side: Microsoft's referral as read.
    """

    link: Link
    side: MicrosoftSide


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


async def resolve(
    ctx: SyncContext, key: Key, referral_id: str, calls: ApiCalls
) -> Resolved | Referral | Outcome | None:
    """Read an unlinked referral; when it is Microsoft's, find our linked referral beside it.

    Our link is found in the store by the engagement id both referrals share; only a link
    whose engagement id was never recorded costs the engagement list call (and gets the id
    recorded, so the next time is free). A Microsoft referral unchanged since the markers of
    our link's base is not reconciled at all: the GET is the whole cost.

    Args:
        ctx: the context.
        key: the key being reconciled (for a skipped or unchanged outcome).
        referral_id: the referral the key names.
        calls: counts API calls (the GET, and the engagement list when needed).

    Returns:
        `Resolved` for a changed Microsoft referral of an engagement with a linked referral
        of ours; an unchanged outcome when it did not change since the base; a skipped
        outcome for Microsoft's referral without one (nothing of ours to update, and no
        opportunity is ever created for Microsoft's referral); the referral as read when it
        is not Microsoft's (the create path goes on with it); None when it cannot be read
        (the create path reports why).
    """
    try:
        referral = await read_referral(ctx, calls, referral_id)
    except (pc_errors.NotFoundError, pc_errors.AccessDeniedError):
        return None
    if not is_microsofts(referral):
        return referral
    link = stored_link(ctx, referral)
    if link is None and referral.engagement_id is not None:
        link = await _listed_link(ctx, referral.engagement_id, calls)
    if link is None:
        return Outcome(
            key,
            None,
            SKIPPED,
            message=f"referral {referral_id} is Microsoft's side of engagement "
            f"{referral.engagement_id}, which has no linked referral of ours yet",
            api_calls=calls.total,
        )
    if not changed(referral, ctx.store.snapshot(link.id)):
        return unchanged(key, link, calls.total)
    return Resolved(link, MicrosoftSide(referral))


def stored_link(ctx: SyncContext, referral: Referral) -> Link | None:
    """Our complete opportunity link in the engagement of Microsoft's referral (no API call)."""
    if referral.engagement_id is None:
        return None
    return ctx.store.link_for_engagement(referral.engagement_id, OPPORTUNITY)


async def _listed_link(ctx: SyncContext, engagement_id: str, calls: ApiCalls) -> Link | None:
    """Our link found by listing the engagement (one call); its engagement id is recorded."""
    calls.partner_center += 1
    for other in await ctx.partner_center.engagement(EngagementId(engagement_id)):
        if other.id is None or is_microsofts(other):
            continue
        link = ctx.store.link_for_referral(other.id)
        if link is not None and link.record_id is not None:
            if not ctx.dry_run and link.engagement_id != engagement_id:
                link = ctx.store.update_link(link.id, engagement_id=engagement_id)
            return link
    return None


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


def seed_created(ctx: SyncContext, referrals: Mapping[str, Referral], created: set[str]) -> None:
    """Mark Microsoft's side as seen for engagements whose opportunity a batch just created.

    The opportunity was made from the engagement as it is: Microsoft's status and notes are
    its starting point, not news, so the next sweep finds them unchanged and spends nothing
    on them. The MSX id is not marked: one already set still reaches the opportunity.

    Args:
        ctx: the context (nothing is recorded in a dry run).
        referrals: the referrals the batch listed, by id (both sides of an engagement).
        created: the ids of our referrals whose opportunity the batch created.
    """
    if ctx.dry_run or not created:
        return
    for theirs in referrals.values():
        link = stored_link(ctx, theirs) if is_microsofts(theirs) else None
        ours = referrals.get(link.referral_id or "") if link is not None else None
        if link is None or ours is None or link.referral_id not in created:
            continue
        base = ctx.store.snapshot(link.id) or {}
        if STATUS_MARKER in base:
            continue
        markers = extend(MicrosoftSide(theirs), ours, {}, base).markers
        seen = {STATUS_MARKER: markers[STATUS_MARKER], NOTES_MARKER: markers[NOTES_MARKER]}
        ctx.store.save_snapshot(link.id, {**base, **seen})


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


async def write_notes(ctx: SyncContext, sides: Sides, notes: list[Note], calls: ApiCalls) -> None:
    """Put each note on the opportunity once: skip one already linked, else create and link it.

    One SOQL query reads the notes linked to the opportunity; each missing note costs a
    ContentNote create and a ContentDocumentLink create.

    Args:
        ctx: the context.
        sides: both sides as read (the opportunity's id).
        notes: the notes new since the base.
        calls: counts API calls.
    """
    if not notes:
        return
    opportunity_id = str(sides.opportunity["Id"])
    soql = (
        "SELECT Id, Title, TextPreview FROM ContentNote WHERE Id IN (SELECT ContentDocumentId "  # noqa: S608 - quoted
        f"FROM ContentDocumentLink WHERE LinkedEntityId = {soql_quote(opportunity_id)})"
    )
    calls.salesforce += 1
    existing = {
        (row.get("Title"), row.get("TextPreview")) async for row in ctx.salesforce.query(soql)
    }
    for note in notes:
        if (note.title, note.text[:_PREVIEW_LENGTH]) in existing:
            continue
        calls.salesforce += 1
        note_id = await ctx.salesforce.create(
            "ContentNote",
            {"Title": note.title, "Content": base64.b64encode(note.text.encode()).decode()},
        )
        calls.salesforce += 1
        await ctx.salesforce.create(
            "ContentDocumentLink",
            {
                "ContentDocumentId": note_id,
                "LinkedEntityId": opportunity_id,
                "ShareType": "V",
                "Visibility": "AllUsers",
            },
        )
        existing.add((note.title, note.text[:_PREVIEW_LENGTH]))


async def write_notes_many(
    ctx: SyncContext, wanted: Mapping[str, list[Note]], calls: ApiCalls
) -> set[str]:
    """`write_notes` for a batch: each note on its opportunity once, with shared calls.

    Two SOQL queries read the notes already linked to the opportunities (their links, then
    their titles and previews); one sObject-collection create makes the missing ContentNotes
    and one links them (200 records per call).

    Args:
        ctx: the context.
        wanted: opportunity id -> the notes new since its base.
        calls: counts API calls.

    Returns:
        The opportunities whose notes could not all be written (their reconcile is retried
        alone, which reports why).
    """
    wanted = {opportunity: notes for opportunity, notes in wanted.items() if notes}
    if not wanted:
        return set()
    existing = await _linked_notes(ctx, list(wanted), calls)
    missing = [
        (opportunity, note)
        for opportunity, notes in wanted.items()
        for note in dict.fromkeys(notes)
        if (note.title, note.text[:_PREVIEW_LENGTH]) not in existing.get(opportunity, set())
    ]
    if not missing:
        return set()
    calls.salesforce += 1
    made = await ctx.salesforce.create_many(
        "ContentNote",
        [
            {"Title": note.title, "Content": base64.b64encode(note.text.encode()).decode()}
            for _, note in missing
        ],
    )
    failed = {
        opportunity
        for (opportunity, _), result in zip(missing, made, strict=True)
        if not result.success
    }
    links = [
        (opportunity, result.id)
        for (opportunity, _), result in zip(missing, made, strict=True)
        if result.success and opportunity not in failed
    ]
    if links:
        calls.salesforce += 1
        linked = await ctx.salesforce.create_many(
            "ContentDocumentLink",
            [
                {
                    "ContentDocumentId": note_id,
                    "LinkedEntityId": opportunity,
                    "ShareType": "V",
                    "Visibility": "AllUsers",
                }
                for opportunity, note_id in links
            ],
        )
        failed |= {
            opportunity
            for (opportunity, _), result in zip(links, linked, strict=True)
            if not result.success
        }
    return failed


async def _linked_notes(
    ctx: SyncContext, opportunities: list[str], calls: ApiCalls
) -> dict[str, set[tuple[Any, Any]]]:
    """(Title, TextPreview) of the notes linked to each opportunity (two queries)."""
    documents: dict[str, set[str]] = {}
    links = (
        "SELECT ContentDocumentId, LinkedEntityId FROM ContentDocumentLink "  # noqa: S608 - quoted
        f"WHERE LinkedEntityId IN {soql_in(opportunities)}"
    )
    calls.salesforce += 1
    async for row in ctx.salesforce.query(links):
        documents.setdefault(str(row["ContentDocumentId"]), set()).add(str(row["LinkedEntityId"]))
    if not documents:
        return {}
    notes = (
        "SELECT Id, Title, TextPreview FROM ContentNote "  # noqa: S608 - quoted
        f"WHERE Id IN {soql_in(sorted(documents))}"
    )
    calls.salesforce += 1
    existing: dict[str, set[tuple[Any, Any]]] = {}
    async for row in ctx.salesforce.query(notes):
        for opportunity in documents.get(str(row["Id"]), set()):
            existing.setdefault(opportunity, set()).add((row.get("Title"), row.get("TextPreview")))
    return existing


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
