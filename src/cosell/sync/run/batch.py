"""The batch: the same pipeline over up to 200 keys, with shared reads, writes and one record.

`reconcile_batch` reads the batch's links, bases and create intents in one store read each,
its referrals with a few Partner Center list calls and its opportunities with one SOQL `IN`
query; decides each link (`plan.decide`); writes Partner Center per referral and Salesforce
in composite calls of up to 25 subrequests; and records every key in one store transaction
(`run.record`). Keys that need the single path (a create, a 412, child rows, a listed
referral without its eTag) are reconciled alone by `run.reconcile`, with the sides already read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import format_datetime as http_date

from cosell.mapping import (
    ValueMappingError,
)
from cosell.mapping.model import ACCOUNT, OPPORTUNITY
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import Referral, ReferralId
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.client import CompositeSubrequest
from cosell.store.types import Key, KeyFormatError, Link, Record, referral_key
from cosell.sync.io import microsoft as microsoft_io
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.links import link_of
from cosell.sync.io.read import read_opportunities, read_referrals
from cosell.sync.plan import microsoft
from cosell.sync.plan.creates import plain_incoming
from cosell.sync.plan.decide import Decision
from cosell.sync.plan.keys import KeyRef
from cosell.sync.plan.limits import BATCH_SIZE, COMPOSITE_LIMIT
from cosell.sync.plan.outcome import (
    CREATED,
    SKIPPED,
    Outcome,
)
from cosell.sync.plan.record import record_of
from cosell.sync.plan.sides import Sides, records_of
from cosell.sync.run import creates, leads
from cosell.sync.run.park import park
from cosell.sync.run.reconcile import (
    decide_link,
    opportunity_writes,
    outcome_of,
    reconcile_key,
    reconcile_link,
)
from cosell.sync.run.record import record
from cosell.sync.run.refused import salesforce_refusal


@dataclass
class _Pending:
    key: Key
    link: Link
    sides: Sides
    decision: Decision
    referral: Referral | None = None
    calls: ApiCalls = field(default_factory=ApiCalls)
    notes: list[microsoft.Note] = field(default_factory=list)


async def reconcile_batch(ctx: SyncContext, keys: Sequence[Key]) -> list[Outcome]:
    """Reconcile up to 200 keys with shared reads and writes (sweeps, backfills).

    Args:
        ctx: the context.
        keys: at most `BATCH_SIZE` keys; duplicates are reconciled once.

    Returns:
        One outcome per distinct key, in the order given. The shared reads are counted on
        the first outcome, so the sum of `api_calls` is the batch's cost. Referrals in
        `ctx.listed` (a pass's list page) are used as read, not read again.

    Raises:
        ValueError: more than `BATCH_SIZE` keys.
    """
    return await _batch(ctx, keys, ctx.listed)


async def sweep_page(ctx: SyncContext, *, cursor: str | None) -> tuple[list[Outcome], str | None]:
    """Reconcile one page of Partner Center's referrals, oldest change first (`cosell sync --full`).

    Args:
        ctx: the context.
        cursor: None for the first page, else the cursor the previous page returned.

    Returns:
        The page's outcomes and the cursor of the next page (None after the last page).
    """
    calls = ApiCalls(partner_center=1)
    if cursor is None:
        page = await ctx.partner_center.list_page(orderby="updatedDateTime asc", top=BATCH_SIZE)
    else:
        page = await ctx.partner_center.list_page(next_link=cursor)
    referrals: dict[str, Referral] = {str(r.id): r for r in page.referrals if r.id is not None}
    keys = [referral_key(rid) for rid in referrals]
    outcomes = await _batch(ctx, keys, referrals, shared=calls)
    return outcomes, page.next_link


async def _batch(
    ctx: SyncContext,
    keys: Sequence[Key],
    known: Mapping[str, Referral],
    *,
    shared: ApiCalls | None = None,
) -> list[Outcome]:
    distinct = list(dict.fromkeys(keys))
    if len(distinct) > BATCH_SIZE:
        raise ValueError(
            f"a batch takes at most {BATCH_SIZE} keys, got {len(distinct)}: split it into pages"
        )
    shared = shared or ApiCalls()
    outcomes: dict[Key, Outcome] = {}
    linked: dict[Key, Link] = {}
    singles: list[Key] = []
    same: dict[Key, Key] = {}  # a second key of a link already in the batch -> the first key
    first_key: dict[str, Key] = {}
    complete = complete_links(ctx, distinct)
    for key in distinct:
        link = complete.get(key)
        if link is None:
            singles.append(key)
        elif link.id in first_key:
            same[key] = first_key[link.id]
        else:
            first_key[link.id] = key
            linked[key] = link
    pending: list[_Pending] = []
    need = [lk.referral_id for lk in linked.values() if lk.referral_id not in known]
    need += [rid for rid in map(_referral_id, singles) if rid is not None and rid not in known]
    referrals = dict(known)
    if need:
        referrals.update(await read_referrals(ctx, shared, [r for r in need if r]))
    if linked:
        rows = await read_opportunities(
            ctx,
            shared,
            ids=[lk.record_id for lk in linked.values() if lk.record_id],
            with_children=True,
        )
        by_id = {row["Id"]: row for row in rows}
        bases = ctx.store.snapshots([link.id for link in linked.values()])  # one read for all
        for key, link in linked.items():
            referral = referrals.get(link.referral_id or "")
            row = by_id.get(link.record_id or "")
            if referral is None or row is None:
                singles.append(key)  # the single path reads it again and parks it clearly
                continue
            sides = Sides(referral=referral, records=records_of(row))
            try:
                decision = decide_link(ctx, link, sides, base=bases.get(link.id))
            except ValueMappingError:
                singles.append(key)  # the single path parks it with the message
                continue
            if decision.children is not None:  # child rows: the single path, with these sides
                outcomes[key] = await reconcile_link(ctx, key, link, ApiCalls(), sides=sides)
                continue
            pending.append(_Pending(key, link, sides, decision, notes=list(decision.notes)))
    if ctx.dry_run:
        for item in pending:
            outcomes[item.key] = outcome_of(
                item.key, item.link, item.decision, item.calls, dry_run=True
            )
    else:
        # Notes first, as in `reconcile_link`; a key whose notes failed is retried alone.
        wanted = {str(item.sides.opportunity["Id"]): item.notes for item in pending}
        failed = await microsoft_io.write_notes_many(ctx, wanted, shared)
        ctx.failpoint("after-notes")
        singles += [p.key for p in pending if str(p.sides.opportunity["Id"]) in failed]
        pending = [p for p in pending if str(p.sides.opportunity["Id"]) not in failed]
        await _batch_writes(ctx, pending, outcomes, singles)
    spent_before = {item.key: item.calls.total for item in pending}
    await _batch_creates(ctx, singles, referrals, outcomes)
    created = {_referral_id(k) or "" for k, o in outcomes.items() if o.result == CREATED}
    microsoft_io.seed_created(ctx, referrals, created)
    await _batch_referral_creates(ctx, singles, outcomes)
    for key in singles:
        if key not in outcomes:
            outcome = await _single(ctx, key, referrals)
            extra = spent_before.get(key, 0)  # a write that met a 412 before the retry
            outcomes[key] = replace(outcome, api_calls=outcome.api_calls + extra)
    for key, twin in same.items():
        outcomes[key] = replace(outcomes[twin], key=key, api_calls=0)
    ordered = [outcomes[key] for key in distinct]
    if ordered and shared.total:
        ordered[0] = replace(ordered[0], api_calls=ordered[0].api_calls + shared.total)
    return ordered


def _referral_id(key: Key) -> str | None:
    try:
        return KeyRef.parse(key).referral_id
    except KeyFormatError:
        return None


async def _batch_creates(
    ctx: SyncContext,
    singles: list[Key],
    referrals: Mapping[str, Referral],
    outcomes: dict[Key, Outcome],
) -> None:
    """Create the opportunities of the batch's new incoming referrals together (a few calls)."""
    items: list[tuple[Key, Referral, Link | None]] = []
    wanted: list[tuple[Key, Referral]] = []
    for key in singles:
        referral_id = _referral_id(key)
        referral = referrals.get(referral_id or "")
        if key in outcomes or referral_id is None or referral is None:
            continue
        if microsoft.is_microsofts(referral):
            continue  # Microsoft's side of an engagement: resolved by the single path
        wanted.append((key, referral))
    links = ctx.store.links_for_keys([key for key, _ in wanted])  # one read for all
    for key, referral in wanted:
        link = links.get(key)
        intent = ctx.store.create_intent(link.id) if link is not None else None
        if leads.wants_lead(ctx, referral, link):
            continue  # a Lead: created by the single path (`leads.create_lead`)
        if plain_incoming(referral, link) and (intent is None or intent.side == "salesforce"):
            items.append((key, referral, link))
    if not items:
        return
    created = await creates.create_opportunities(ctx, items, ApiCalls())
    for index, (key, _, _) in enumerate(items):
        # The calls are shared: the first outcome carries them, so a batch's sum stays exact.
        outcomes[key] = replace(created[key], api_calls=created[key].api_calls if index == 0 else 0)


async def _batch_referral_creates(
    ctx: SyncContext, singles: list[Key], outcomes: dict[Key, Outcome]
) -> None:
    """Create the referrals of the batch's opportunities that have none.

    One read for all, one POST each (Partner Center has no batch create), one write-back for all.
    """
    wanted: list[tuple[Key, str, Link | None]] = []
    for key in singles:
        try:
            ref = KeyRef.parse(key)
        except KeyFormatError:
            continue
        if key in outcomes or not ref.is_opportunity or ref.record_id is None:
            continue
        link = link_of(ctx.store, ref)
        if link is None or link.referral_id is None:
            wanted.append((key, ref.record_id, link))
    if not wanted:
        return
    calls = ApiCalls()
    rows = await read_opportunities(
        ctx, calls, ids=[record_id for _, record_id, _ in wanted], with_children=True
    )
    by_id = {str(row["Id"]): row for row in rows}
    items = [(key, by_id[record_id], link) for key, record_id, link in wanted if record_id in by_id]
    results = await creates.create_referrals(ctx, items, calls)
    carried = False
    for key, result in results.items():
        if isinstance(result, Outcome):  # an adopted link (a Link) is reconciled alone
            # The calls are shared: the first outcome carries them, so a batch's sum stays exact.
            outcomes[key] = replace(result, api_calls=0 if carried else calls.total)
            carried = True


async def _single(ctx: SyncContext, key: Key, known: Mapping[str, Referral]) -> Outcome:
    """Reconcile one key of a batch alone, without reading again a referral the batch listed."""
    ref = KeyRef.parse(key)
    listed = known.get(ref.referral_id) if ref.referral_id is not None else None
    if listed is not None and microsoft.is_microsofts(listed):
        return await _microsoft_listed(ctx, key, listed)
    if listed is not None and ref.referral_id is not None:
        link = link_of(ctx.store, ref)
        if link is None or link.record_id is None:
            calls = ApiCalls()
            started = await creates.from_referral(
                ctx, key, ref.referral_id, link, calls, referral=listed
            )
            if isinstance(started, Outcome):
                return started
            return await reconcile_link(ctx, key, started, calls)
    return await reconcile_key(ctx, key)


async def _microsoft_listed(ctx: SyncContext, key: Key, referral: Referral) -> Outcome:
    """A listed referral of Microsoft's: reconcile our link with it only when it changed."""
    link = microsoft_io.stored_link(ctx, referral)
    if link is None:  # no link of ours recorded for the engagement: its own key resolves it
        return Outcome(
            key,
            None,
            SKIPPED,
            message="Microsoft's side of an engagement with no linked referral of ours",
        )
    if not microsoft.changed(referral, ctx.store.snapshot(link.id)):
        return microsoft.unchanged(key, link, 0)
    side = microsoft.MicrosoftSide(referral)
    return await reconcile_link(ctx, key, link, ApiCalls(), microsoft_side=side)


def complete_links(ctx: SyncContext, keys: Sequence[Key]) -> dict[Key, Link]:
    """`complete_link` for a batch's keys, in two store reads for all of them."""
    wanted: list[Key] = []
    for key in keys:
        try:
            ref = KeyRef.parse(key)
        except KeyFormatError:
            continue
        if ref.is_referral or ref.is_opportunity:
            wanted.append(key)
    found = {
        Key(key): link
        for key, link in ctx.store.links_for_keys(wanted).items()
        if link.referral_id is not None
        and link.record_id is not None
        and link.sobject == OPPORTUNITY
    }
    creating = ctx.store.intent_link_ids([link.id for link in found.values()])
    return {key: link for key, link in found.items() if link.id not in creating}


async def _batch_writes(
    ctx: SyncContext, pending: list[_Pending], outcomes: dict[Key, Outcome], singles: list[Key]
) -> None:
    writing: list[tuple[_Pending, list[CompositeSubrequest]]] = []
    for item in pending:
        referral = item.sides.referral
        if item.decision.operations and referral.e_tag is None:
            singles.append(item.key)  # a listed referral without its eTag: GET it, write safely
            continue
        if item.decision.operations:
            item.calls.partner_center += 1
            try:
                updated = await ctx.partner_center.patch(
                    ReferralId(referral.id or item.link.referral_id or ""),
                    item.decision.operations,
                    etag=referral.e_tag,
                )
            except pc_errors.ConflictError:
                singles.append(item.key)
                continue
            except pc_errors.TerminalError as exc:
                outcomes[item.key] = await park(
                    ctx,
                    item.key,
                    item.link,
                    f"Partner Center refused the update: {exc}",
                    item.calls,
                    record=item.sides.opportunity,
                    error=exc,
                )
                continue
            referral = updated or referral
        item.referral = referral
        subrequests: list[CompositeSubrequest] = []
        fields = opportunity_writes(ctx, item.link, item.sides, item.decision, referral)
        if fields:
            headers = {}
            if item.sides.last_modified is not None:
                headers["If-Unmodified-Since"] = http_date(item.sides.last_modified, usegmt=True)
            subrequests.append(
                CompositeSubrequest(
                    "PATCH",
                    f"sobjects/{OPPORTUNITY}/{item.sides.opportunity['Id']}",
                    f"o{len(writing)}",
                    body=fields,
                    headers=headers,
                )
            )
        account = item.sides.records.get(ACCOUNT)
        account_fields = item.decision.salesforce_writes.get(ACCOUNT)
        if account_fields and account is not None:
            subrequests.append(
                CompositeSubrequest(
                    "PATCH",
                    f"sobjects/{ACCOUNT}/{account['Id']}",
                    f"a{len(writing)}",
                    body=account_fields,
                )
            )
        writing.append((item, subrequests))
    # Composite calls of up to 25 subrequests, never splitting one key's pair.
    records: list[Record | None] = []
    chunk: list[tuple[_Pending, list[CompositeSubrequest]]] = []
    size = 0
    for entry in writing:
        if size + len(entry[1]) > COMPOSITE_LIMIT and chunk:
            await _send_chunk(ctx, chunk, outcomes, singles, records)
            chunk, size = [], 0
        chunk.append(entry)
        size += len(entry[1])
    if chunk:
        await _send_chunk(ctx, chunk, outcomes, singles, records)
    record(ctx, records)  # the whole batch: one store transaction


async def _send_chunk(
    ctx: SyncContext,
    chunk: list[tuple[_Pending, list[CompositeSubrequest]]],
    outcomes: dict[Key, Outcome],
    singles: list[Key],
    records: list[Record | None],
) -> None:
    subrequests = [sub for _, subs in chunk for sub in subs]
    results = []
    if subrequests:
        chunk[0][0].calls.salesforce += 1
        results = await ctx.salesforce.composite(subrequests)
    by_reference = {r.reference_id: r for r in results}
    for item, subs in chunk:
        failed = [by_reference[s.reference_id] for s in subs if not by_reference[s.reference_id].ok]
        conflict = any(isinstance(r.error, sf_errors.ConflictError) for r in failed)
        if conflict:
            singles.append(item.key)
        elif failed:
            error = failed[0].error
            assert error is not None
            why = await salesforce_refusal(
                ctx,
                error,
                ACCOUNT if failed[0].reference_id.startswith("a") else OPPORTUNITY,
                item.calls,
                record_id=str(item.sides.opportunity["Id"]),
            )
            outcomes[item.key] = await park(
                ctx,
                item.key,
                item.link,
                f"Salesforce refused the update: {why}",
                item.calls,
                record=item.sides.opportunity,
                error=failed[0].error,
            )
        else:
            now = ctx.clock.now()
            written = item.referral.updated_date_time if item.referral else None
            item.decision = item.decision.written(written)
            records.append(record_of(item.link, item.decision, api_calls=item.calls.total, now=now))
            outcomes[item.key] = outcome_of(item.key, item.link, item.decision, item.calls)
