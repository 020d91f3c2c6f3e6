"""Microsoft's side, its I/O: resolving a key of Microsoft's referral to our link, writing its notes (pure part: `plan/microsoft.py`)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cosell.mapping.model import OPPORTUNITY
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import EngagementId, Referral
from cosell.salesforce.values import soql_in, soql_quote
from cosell.store.types import Key, Link, Record, referral_key
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.read import read_referral
from cosell.sync.plan.microsoft import (
    NOTES_MARKER,
    PREVIEW_LENGTH,
    STATUS_MARKER,
    MicrosoftSide,
    Note,
    changed,
    extend,
    is_microsofts,
    unchanged,
)
from cosell.sync.plan.outcome import SKIPPED, Outcome
from cosell.sync.plan.sides import Sides


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
    ours_in: dict[str, str] = {}  # engagement id -> our created referral's id
    for referral_id in created:
        ours = referrals.get(referral_id)
        if ours is not None and ours.engagement_id:
            ours_in[ours.engagement_id] = referral_id
    theirs_all = [
        theirs
        for theirs in referrals.values()
        if is_microsofts(theirs) and (theirs.engagement_id or "") in ours_in
    ]
    if not theirs_all:
        return
    # Three store transactions for the whole batch: the links, their bases, the new bases.
    wanted = [referral_key(ours_in[theirs.engagement_id or ""]) for theirs in theirs_all]
    links = ctx.store.links_for_keys(wanted)
    bases = ctx.store.snapshots([link.id for link in links.values()])
    seeded: list[Record] = []
    for theirs, key in zip(theirs_all, wanted, strict=True):
        link = links.get(key)
        if (
            link is None
            or link.engagement_id != theirs.engagement_id
            or link.sobject != OPPORTUNITY
            or link.record_id is None
            or link.referral_id is None
        ):
            continue
        base = bases.get(link.id) or {}
        if STATUS_MARKER in base:
            continue
        markers = extend(MicrosoftSide(theirs), referrals[link.referral_id], {}, base).markers
        seen = {STATUS_MARKER: markers[STATUS_MARKER], NOTES_MARKER: markers[NOTES_MARKER]}
        seeded.append(Record(link.id, snapshot={**base, **seen}))
    if seeded:
        ctx.store.record(seeded)


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
        if (note.title, note.text[:PREVIEW_LENGTH]) in existing:
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
        existing.add((note.title, note.text[:PREVIEW_LENGTH]))


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
        if (note.title, note.text[:PREVIEW_LENGTH]) not in existing.get(opportunity, set())
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


@dataclass(frozen=True)
class Resolved:
    """A key naming Microsoft's referral, resolved to our linked referral of the engagement.

    Attributes:
        link: our referral's link.
        side: Microsoft's referral as read.
    """

    link: Link
    side: MicrosoftSide
