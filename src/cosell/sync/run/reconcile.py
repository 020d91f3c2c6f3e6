"""The reconcile: read both sides of a key, merge against the base, write what differs.

A key (`referral:<id>` or `salesforce:Opportunity:<id>`) only says "this may be out of date".
`reconcile_key` resolves it to a link (or starts a create, `creates.py`), then:

1. **Read** the referral (its eTag) and the opportunity with its account (one SOQL query,
   its `LastModifiedDate`): 2 calls.
2. **Merge** (`cosell.sync.plan.merge.merge`, pure) the canonical values of both sides against the
   base snapshot: a `Plan` of values to write each way, conflicts (the mapping's owner won) and
   refusals (Salesforce changes Partner Center's rules would refuse).
3. **Write** Partner Center first (one JSON Patch with `If-Match: <eTag read>`), then the
   opportunity (one PATCH with `If-Unmodified-Since: <LastModifiedDate read>`) carrying the
   mapped fields *and* cosell's own fields in the same call: `Partner_Center_Status__c`,
   `Partner_Center_Sync_Status__c`, `Partner_Center_Sync_Error__c`, the identity fields when
   they are missing, and `Audit__c` (see `audit.py`). Each is sent only when it differs from
   what was read, so a reconcile with nothing to do writes nothing: 0 writes, 2 reads.
   A 412 on either write means someone changed the record after we read it: re-read both
   sides and merge again, at most `MAX_ATTEMPTS` times (then `ConcurrentEditsError`, which
   the engine retries later). A Partner Center write that succeeded before a Salesforce 412
   is harmless: the re-read sees Partner Center holding the value Salesforce holds, which the
   merge adopts as the new base.
4. **Record**: save the plan's new base, the conflicts (losing value in the conflicts table
   and the audit), one audit entry, and the link's sync status.

Level-triggered: our own writes leave both sides equal to the new base, so the echo of a
write (a webhook, a poller seeing our change) plans nothing and writes nothing, and running a
reconcile again after a crash at any point finishes the job.

Errors: a refused change (refusal) or a terminal API error is *parked*: the link and the
opportunity get sync status `Error` and a message that says what to fix; the key is tried
again on its next change or sweep, and a reconcile that meets the same error again writes
nothing. Retriable errors (throttling, outages) are raised for the engine to retry with
backoff.

With lead sync, lead referrals get a Lead instead, and links still on a Lead (and
`salesforce:Lead:<id>` keys) are reconciled by `leads.py` until the Lead is converted.

A `referral:<id>` key naming Microsoft's side of one of our co-sell engagements (its
related-referral events) is resolved to our linked referral (`microsoft_io.resolve`: the GET;
our link is found in the store by engagement id), and Microsoft's changes since the base reach the opportunity
with the same reconcile (`microsoft.py`); a batch does the same for the Microsoft referrals its
list shows changed, and spends nothing on unchanged ones. A change of the Partner Center notes
is also kept as a Note on the opportunity, written before the writes (`notes_history.py`).

`dry_run` (on the context) reads and plans and writes nothing at all, not even to the store.

Batches (`reconcile_batch`, `sweep_page`) do the same for up to 200 keys with shared reads
(one Partner Center list call per 50 referral ids or one list page, one SOQL `IN` query) and
shared Salesforce writes (composite calls of 25 PATCHes, each still with its own
`If-Unmodified-Since`); Partner Center has no batch write, so each changed referral costs
one PATCH. New incoming referrals get their opportunities, accounts and contacts created
together (`creates.create_opportunities`: 6 Salesforce calls for up to 200, and up to 3 more
for their solutions and team). Keys that need another kind of create, or whose write loses a
race, fall back to `reconcile_key`.

Collections (`collections.py`): the opportunity query also reads its Microsoft solutions,
contact roles and team members (child subqueries, same call), `decide` merges them as sets
(`sets.plan`: their Partner Center changes join the JSON Patch), and `apply` writes
the opportunity's fields and its child rows in one composite call. In a batch, a key with
child rows to write is reconciled alone with the sides the batch already read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import format_datetime as http_date
from typing import Any

import structlog

from cosell.mapping import (
    ValueMappingError,
)
from cosell.mapping.model import ACCOUNT, OPPORTUNITY
from cosell.mapping.types import Value
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import Referral, ReferralId
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.client import CompositeSubrequest
from cosell.store.types import Key, KeyFormatError, Link, Record, referral_key
from cosell.sync.io import child_rows
from cosell.sync.io import microsoft as microsoft_io
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.links import link_of
from cosell.sync.io.read import read_opportunities, read_referral, read_referrals
from cosell.sync.plan import microsoft, sets
from cosell.sync.plan.audit import (
    AUDIT_ENTRIES,
    line,
    render_audit_field,
)
from cosell.sync.plan.creates import plain_incoming
from cosell.sync.plan.decide import Decision, decide
from cosell.sync.plan.errors import ConcurrentEditsError
from cosell.sync.plan.keys import KeyRef
from cosell.sync.plan.leads import LEAD
from cosell.sync.plan.limits import BATCH_SIZE, COMPOSITE_LIMIT, MAX_ATTEMPTS
from cosell.sync.plan.outcome import (
    CREATED,
    SKIPPED,
    Outcome,
)
from cosell.sync.plan.record import record_of
from cosell.sync.plan.sides import Sides, differs, records_of, status_text
from cosell.sync.run import creates, leads
from cosell.sync.run.park import park
from cosell.sync.run.record import record

log = structlog.get_logger(__name__)


class Unread:
    """`decide_link`'s `base` when the caller did not read it (None is "no base yet")."""


UNREAD = Unread()


async def reconcile_key(ctx: SyncContext, key: Key) -> Outcome:
    """Bring one key's referral and opportunity into agreement (or create the missing side).

    Args:
        ctx: the context; `ctx.dry_run` plans without writing anything.
        key: `referral:<id>` or `salesforce:Opportunity:<id>`.

    Returns:
        What was done (or would be, in a dry run).

    Raises:
        ConcurrentEditsError: every attempt met a concurrent edit; retry later.
        cosell.partnercenter.errors.RetriableError, cosell.salesforce.errors.RetriableError:
            a side is throttling or unavailable; retry later with backoff.
        FailpointError: a test's failpoint fired.
    """
    calls = ApiCalls()
    try:
        ref = KeyRef.parse(key)
    except KeyFormatError as exc:
        return Outcome(key, None, SKIPPED, message=str(exc))
    side: microsoft.MicrosoftSide | None = None
    link = link_of(ctx.store, ref) if ref.is_referral or ref.is_opportunity else None
    if ref.referral_id is not None:
        referral_id = ref.referral_id
        read: Referral | None = None
        if link is None:  # maybe Microsoft's side of one of our engagements
            resolved = await microsoft_io.resolve(ctx, key, referral_id, calls)
            if isinstance(resolved, Outcome):
                return resolved
            if isinstance(resolved, microsoft_io.Resolved):
                link, side = resolved.link, resolved.side
            else:
                read = resolved
        if link is None or link.record_id is None:
            started = await creates.from_referral(ctx, key, referral_id, link, calls, referral=read)
            if isinstance(started, Outcome):
                return started
            link = started
    else:
        assert ref.record_id is not None
        if ref.sobject == LEAD:
            return await leads.reconcile_record_key(ctx, key, ref.record_id)
        if not ref.is_opportunity:
            return Outcome(
                key,
                None,
                SKIPPED,
                message=f"{ref.sobject} records are not synced (only Opportunity and Lead)",
            )
        if link is None or link.referral_id is None:
            started = await creates.from_opportunity(ctx, key, ref.record_id, link, calls)
            if isinstance(started, Outcome):
                return started
            link = started
    if link.sobject == LEAD:
        return await leads.reconcile_lead(ctx, key, link, calls)
    if not ctx.dry_run and ctx.store.create_intent(link.id) is not None:
        ctx.store.resolve_create_intent(link.id)  # both ids are known: the create is done
    return await reconcile_link(ctx, key, link, calls, microsoft_side=side)


async def reconcile_link(
    ctx: SyncContext,
    key: Key,
    link: Link,
    calls: ApiCalls,
    *,
    sides: Sides | None = None,
    microsoft_side: microsoft.MicrosoftSide | None = None,
) -> Outcome:
    """Reconcile a complete link (referral id and record id known).

    Args:
        ctx: the context.
        key: the key being reconciled (for the outcome).
        link: the link.
        calls: counts API calls.
        sides: both sides when already read (a batch); read here when None.
        microsoft_side: Microsoft's referral of the engagement, when the key named it
            (`microsoft.py`): its changes reach the opportunity too.

    Returns:
        The outcome.
    """
    for _attempt in range(MAX_ATTEMPTS):
        if sides is None:
            loaded = await load(ctx, key, link, calls)
            if isinstance(loaded, Outcome):
                return loaded
            sides = loaded
        ctx.failpoint("after-read")
        try:
            decision = decide_link(ctx, link, sides, microsoft_side=microsoft_side)
        except ValueMappingError as exc:
            return await park(ctx, key, link, unmappable(exc), calls, record=sides.opportunity)
        decision = await with_children(ctx, sides, decision, calls)
        if ctx.dry_run:
            return outcome_of(key, link, decision, calls, dry_run=True)
        try:
            # Notes first: a crash after the writes must find them (`notes_history`).
            await microsoft_io.write_notes(ctx, sides, list(decision.notes), calls)
            ctx.failpoint("after-notes")
            await apply(ctx, link, sides, decision, calls)
            ctx.failpoint("after-writes")
        except (pc_errors.ConflictError, sf_errors.ConflictError) as exc:
            log.info("sync.reconcile.concurrent_edit", key=key, side=type(exc).__module__)
            sides = None
            continue
        except pc_errors.TerminalError as exc:
            return await park(
                ctx,
                key,
                link,
                f"Partner Center refused the update: {exc}",
                calls,
                record=sides.opportunity,
            )
        except sf_errors.TerminalError as exc:
            return await park(
                ctx,
                key,
                link,
                f"Salesforce refused the update: {exc}",
                calls,
                record=sides.opportunity,
            )
        finish(ctx, link, decision, calls)
        if decision.plan.merge_again:  # accepted: the edits held while on hold go now
            return await reconcile_link(ctx, key, ctx.store.get_link(link.id) or link, calls)
        return outcome_of(key, link, decision, calls)
    raise ConcurrentEditsError(
        f"{key}: the record changed while cosell wrote it, {MAX_ATTEMPTS} times in a row; "
        "the reconcile is retried later"
    )


def decide_link(
    ctx: SyncContext,
    link: Link,
    sides: Sides,
    *,
    microsoft_side: microsoft.MicrosoftSide | None = None,
    keep_notes: bool = True,
    base: Mapping[str, Value] | Unread | None = UNREAD,
) -> Decision:
    """`plan.decide.decide` for a link: the base from the store (unless read), time from the clock."""
    return decide(
        ctx.mapping,
        link,
        sides,
        base=ctx.store.snapshot(link.id) if isinstance(base, Unread) else base,
        now=ctx.clock.now(),
        referral_link=ctx.referral_link(link.referral_id) if link.referral_id else None,
        microsoft_side=microsoft_side,
        keep_notes=keep_notes,
    )


async def with_children(
    ctx: SyncContext, sides: Sides, decision: Decision, calls: ApiCalls
) -> Decision:
    """The decision with the people to add looked up (`child_rows.resolve`), if there are any."""
    if decision.children is None:
        return decision
    resolved = await child_rows.resolve(ctx, sides, decision.children, calls)
    plan = replace(
        decision.plan,
        new_base={
            **decision.plan.new_base,
            **sets.unmatched_base(decision.plan.new_base, resolved),
        },
    )
    message = "; ".join(m for m in (decision.message, *resolved.messages) if m) or None
    children = None if resolved.children.is_empty else resolved.children
    notice = decision.notice or bool(resolved.messages)
    return replace(decision, plan=plan, message=message, children=children, notice=notice)


async def load(ctx: SyncContext, key: Key, link: Link, calls: ApiCalls) -> Sides | Outcome:
    """Read both sides of a link concurrently; a side that is gone parks the link.

    Returns:
        Both sides, or the outcome of parking the link when a side cannot be read for good.
    """
    assert link.referral_id is not None
    assert link.record_id is not None
    referral, rows = await asyncio.gather(
        read_referral(ctx, calls, link.referral_id),
        read_opportunities(ctx, calls, ids=[link.record_id], with_children=True),
        return_exceptions=True,
    )
    opportunity = rows[0] if isinstance(rows, list) and rows else None
    for failure in (referral, rows):
        if isinstance(failure, BaseException) and not isinstance(
            failure, pc_errors.TerminalError | sf_errors.TerminalError
        ):
            raise failure
    if isinstance(referral, pc_errors.TerminalError):
        return await park(
            ctx,
            key,
            link,
            _unreadable_referral(link.referral_id, referral),
            calls,
            record=opportunity,
        )
    if isinstance(rows, sf_errors.TerminalError):
        return await park(
            ctx, key, link, f"cannot read opportunity {link.record_id}: {rows}", calls
        )
    if opportunity is None:
        return await park(
            ctx,
            key,
            link,
            f"opportunity {link.record_id} no longer exists (deleted, or not visible to the "
            "integration user): restore it from the recycle bin or share it with the "
            "integration user",
            calls,
        )
    assert isinstance(referral, Referral)
    return Sides(referral=referral, records=records_of(opportunity))


def unmappable(exc: ValueMappingError) -> str:
    """The parked message for a value the mapping cannot convert."""
    return (
        f"a value cannot be converted by the mapping: {exc}. Correct the value, or add it to "
        "the mapping file's value map (`cosell mapping check` lists the problems)"
    )


def _unreadable_referral(referral_id: str, error: pc_errors.PartnerCenterError) -> str:
    if isinstance(error, pc_errors.NotFoundError):
        return (
            f"referral {referral_id} no longer exists in Partner Center or is not visible to the "
            "signed-in user: check the user's Referrals role, or untick Sync with Partner Center"
        )
    return f"cannot read referral {referral_id} from Partner Center: {error}"


async def apply(
    ctx: SyncContext, link: Link, sides: Sides, decision: Decision, calls: ApiCalls
) -> None:
    """Write the decision: Partner Center (If-Match), then the opportunity (If-Unmodified-Since).

    Raises:
        ConflictError: a side changed since it was read (either client's).
        TerminalError: a side refused the write (either client's).
    """
    referral = sides.referral
    assert link.referral_id is not None
    if decision.operations:
        calls.partner_center += 1
        updated = await ctx.partner_center.patch(
            ReferralId(referral.id or link.referral_id), decision.operations, etag=referral.e_tag
        )
        referral = updated or referral
        ctx.failpoint("after-partner-center-write")
    opportunity_fields = opportunity_writes(ctx, link, sides, decision, referral)
    if decision.children is not None:  # the fields and the child rows in one composite call
        await child_rows.write(ctx, sides, opportunity_fields, decision.children, calls)
    elif opportunity_fields:
        calls.salesforce += 1
        await ctx.salesforce.update(
            OPPORTUNITY,
            sides.opportunity["Id"],
            opportunity_fields,
            if_unmodified_since=sides.last_modified,
        )
    account_fields = decision.salesforce_writes.get(ACCOUNT)
    account = sides.records.get(ACCOUNT)
    if account_fields and account is not None:
        calls.salesforce += 1
        await ctx.salesforce.update(ACCOUNT, account["Id"], account_fields)


def opportunity_writes(
    ctx: SyncContext, link: Link, sides: Sides, decision: Decision, referral: Referral
) -> dict[str, Any]:
    """The opportunity's fields to write, with the status as Partner Center now holds it."""
    fields = dict(decision.salesforce_writes.get(OPPORTUNITY, {}))
    actual = status_text(referral)
    if actual is not None and differs(
        sides.opportunity.get(ctx.fields.partner_center_status), actual
    ):
        fields[ctx.fields.partner_center_status] = actual
    elif ctx.fields.partner_center_status in fields and not differs(
        sides.opportunity.get(ctx.fields.partner_center_status), actual
    ):
        del fields[ctx.fields.partner_center_status]
    if decision.message and (fields or decision.logs_now):
        fields[ctx.fields.audit] = render_audit_field(
            [line(ctx.clock.now(), decision.message)],
            ctx.store.audit(link.id, limit=AUDIT_ENTRIES),
        )
    return fields


def finish(ctx: SyncContext, link: Link, decision: Decision, calls: ApiCalls) -> None:
    """Record a reconcile whose writes succeeded, in one store transaction (`run.record`)."""
    record(ctx, [record_of(link, decision, api_calls=calls.total, now=ctx.clock.now())])


def outcome_of(
    key: Key, link: Link, decision: Decision, calls: ApiCalls, *, dry_run: bool = False
) -> Outcome:
    """The outcome of a decision carried out (or only planned, in a dry run)."""
    message = decision.refusal or decision.waiting or decision.message
    if dry_run and message:
        message = f"dry run: {message}"
    return Outcome(
        key=key,
        link_id=link.id,
        result=decision.result,
        to_salesforce=dict(decision.plan.to_salesforce),
        to_partner_center=dict(decision.plan.to_partner_center),
        message=message,
        api_calls=calls.total,
        dry_run=dry_run,
    )


# -- batches ------------------------------------------------------------------------------


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


def complete_link(ctx: SyncContext, key: Key) -> Link | None:
    """The link of `key` when it can be reconciled in a batch (both ids known, no create under way)."""
    try:
        ref = KeyRef.parse(key)
    except KeyFormatError:
        return None
    link = link_of(ctx.store, ref) if ref.is_referral or ref.is_opportunity else None
    if link is None or link.referral_id is None or link.record_id is None:
        return None
    if link.sobject != OPPORTUNITY or ctx.store.create_intent(link.id) is not None:
        return None
    return link


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
            outcomes[item.key] = await park(
                ctx,
                item.key,
                item.link,
                f"Salesforce refused the update: {failed[0].error}",
                item.calls,
                record=item.sides.opportunity,
            )
        else:
            now = ctx.clock.now()
            records.append(record_of(item.link, item.decision, api_calls=item.calls.total, now=now))
            outcomes[item.key] = outcome_of(item.key, item.link, item.decision, item.calls)


# -- explain (`cosell plan`) ----------------------------------------------------------------
