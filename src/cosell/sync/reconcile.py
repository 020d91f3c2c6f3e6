"""The reconcile: read both sides of a key, merge against the base, write what differs.

A key (`referral:<id>` or `salesforce:Opportunity:<id>`) only says "this may be out of date".
`reconcile_key` resolves it to a link (or starts a create, `creates.py`), then:

1. **Read** the referral (its eTag) and the opportunity with its account (one SOQL query,
   its `LastModifiedDate`): 2 calls.
2. **Merge** (`cosell.sync.merge.merge`, pure) the canonical values of both sides against the
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
related-referral events) is resolved to our linked referral (`microsoft.resolve`: the GET;
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
(`collections.plan`: their Partner Center changes join the JSON Patch), and `apply` writes
the opportunity's fields and its child rows in one composite call. In a batch, a key with
child rows to write is reconciled alone with the sides the batch already read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import format_datetime as http_date
from typing import Any

import structlog

from cosell.mapping import (
    ValueMappingError,
    partner_center_operations,
    partner_center_values,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping.types import STAGE_FIELD, Value
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import Referral, ReferralId
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.client import CompositeSubrequest
from cosell.store.types import Key, KeyFormatError, Link, SyncStatus, parse_key, referral_key
from cosell.sync import collections, creates, deadlines, leads, microsoft, notes_history
from cosell.sync.audit import (
    AUDIT_ENTRIES,
    describe_plan,
    line,
    plan_details,
    render_audit_field,
)
from cosell.sync.context import (
    ACCOUNT,
    OPPORTUNITY,
    SYNC_ERROR_LENGTH,
    ApiCalls,
    SyncContext,
)
from cosell.sync.errors import ConcurrentEditsError
from cosell.sync.merge import Plan, merge
from cosell.sync.outcome import (
    CONFLICT,
    CREATED,
    ERROR,
    REFUSED,
    SKIPPED,
    SYNCED,
    UNCHANGED,
    Outcome,
)
from cosell.sync.rules import ReferralState
from cosell.sync.sides import (
    Sides,
    differs,
    read_opportunities,
    read_referral,
    read_referrals,
    records_of,
    status_text,
)

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 3  # reads-merge-writes per reconcile when writes keep meeting 412s
BATCH_LIMIT = 200  # keys per batch: one SOQL IN list, one sObject-collection chunk
SWEEP_PAGE = 200  # referrals per sweep page ($top)
COMPOSITE_CHUNK = 25  # subrequests per composite call (Salesforce's limit)


@dataclass(frozen=True)
class Decision:
    """What one reconcile plans for one link, before anything is written.

    Attributes:
        plan: the merge's plan.
        base: the base it was made against (None: first reconcile of the link).
        partner_center: Partner Center's canonical values as read.
        salesforce: Salesforce's canonical values as read.
        operations: the JSON Patch operations for Partner Center.
        salesforce_writes: role → fields for Salesforce (the opportunity's include cosell's
            own status and identity fields; `Audit__c` is added at write time).
        message: the audit message (None: nothing worth an audit entry).
        refusal: the message parked on the link for refused changes, or None.
        children: the opportunity's child rows to write (`collections.py`), or None.
        notice: the message tells the seller something the writes do not show (a team member
            who is no Salesforce user), so `Audit__c` carries it even without other writes.
        waiting: what waits (held changes, the expiry warning: `deadlines.py`), shown with
            sync status Pending when nothing is refused; None when nothing waits.
        wake_at: when to reconcile the key again although nothing changes, or None.
    """

    plan: Plan
    base: Mapping[str, Value] | None
    partner_center: Mapping[str, Value]
    salesforce: Mapping[str, Value]
    operations: list[dict[str, Any]]
    salesforce_writes: dict[str, dict[str, Any]]
    message: str | None
    refusal: str | None
    children: collections.ChildWrites | None = None
    notice: bool = False
    waiting: str | None = None
    wake_at: datetime | None = None

    @property
    def writes_salesforce(self) -> bool:
        """Whether Salesforce gets any write: the records' fields or the child rows."""
        return bool(self.salesforce_writes) or self.children is not None

    @property
    def result(self) -> str:
        """The outcome's result if the writes succeed."""
        if self.plan.refusals:
            return REFUSED
        if self.plan.conflicts:
            return CONFLICT
        if self.operations or self.writes_salesforce:
            return SYNCED
        return UNCHANGED

    @property
    def logs_now(self) -> bool:
        """Whether `Audit__c` must show this reconcile now, not with the next write."""
        return bool(self.message) and bool(
            self.writes_salesforce
            or self.plan.conflicts
            or self.plan.refusals
            or self.notice
            or self.waiting
        )


def own_fields(
    ctx: SyncContext,
    link: Link,
    opportunity: Mapping[str, Any],
    *,
    partner_center_status: str | None,
    error: str | None,
    notice: str | None = None,
) -> dict[str, Any]:
    """Cosell's own opportunity fields that differ from what was read.

    Args:
        ctx: the context (for the referral link URL).
        link: the link (its referral id is the identity written back).
        opportunity: the opportunity row as read.
        partner_center_status: "Status/Substatus" after this reconcile.
        error: the message to show, or None when the link is in sync.
        notice: what waits (shown with status Pending when there is no error), or None.

    Returns:
        The fields to write (empty when all are as they should be).
    """
    shown = error or notice
    wanted: dict[str, Any] = {
        ctx.fields.sync_status: _sync_status(error, notice).value,
        ctx.fields.sync_error: shown[:SYNC_ERROR_LENGTH] if shown else None,
    }
    if partner_center_status is not None:
        wanted[ctx.fields.partner_center_status] = partner_center_status
    if link.referral_id is not None:
        wanted[ctx.fields.referral_id] = link.referral_id
        wanted[ctx.fields.referral_link] = ctx.referral_link(link.referral_id)
    return {name: value for name, value in wanted.items() if differs(opportunity.get(name), value)}


def _sync_status(error: str | None, notice: str | None) -> SyncStatus:
    if error:
        return SyncStatus.ERROR
    return SyncStatus.PENDING if notice else SyncStatus.SYNCED


def decide(ctx: SyncContext, link: Link, sides: Sides) -> Decision:
    """Merge both sides against the link's base and turn the plan into writes (no I/O but the store read).

    Args:
        ctx: the context.
        link: the link.
        sides: both sides as read.

    Returns:
        The decision.
    """
    mapping = ctx.mapping
    referral = sides.referral_json
    pc_values = partner_center_values(mapping, referral)
    sf_values = salesforce_values(mapping, sides.records)
    base = ctx.store.snapshot(link.id)
    now = ctx.clock.now()
    state = ReferralState.of(sides.referral, now=now, hold_wins=ctx.hold_wins)
    plan = merge(pc_values, sf_values, base, mapping.rules(), state)
    plan = microsoft.keep_markers(plan, base)
    extended = collections.plan(
        mapping.collections, sides.referral, referral, sides.opportunity, base, plan
    )
    plan = extended.plan
    operations = (
        partner_center_operations(mapping, plan.to_partner_center, referral)
        if plan.to_partner_center
        else []
    ) + extended.operations
    writes: dict[str, dict[str, Any]] = {}
    if plan.to_salesforce:
        for role, fields in salesforce_updates(mapping, plan.to_salesforce, sides.records).items():
            if fields:
                writes[role] = dict(fields)
    refusal = "; ".join(r.reason for r in plan.refusals) or None
    stage = plan.to_partner_center.get(STAGE_FIELD)
    predicted = stage if isinstance(stage, str) else status_text(sides.referral)
    warning = deadlines.expiry_warning(sides.referral, now)
    notice = deadlines.notice(plan, warning)
    own = own_fields(
        ctx,
        link,
        sides.opportunity,
        partner_center_status=predicted,
        error=refusal,
        notice=notice,
    )
    if own:
        writes[OPPORTUNITY] = {**writes.get(OPPORTUNITY, {}), **own}
    # A refusal or a notice already shown on the link is not news: no audit entry for it.
    news = (refusal or notice) != link.last_error
    message = describe_plan(plan if news else replace(plan, refusals=(), held=()), base)
    if warning and news:
        message = "; ".join(m for m in (message, f"warning: {warning}") if m)
    return Decision(
        plan=plan,
        base=base,
        partner_center=pc_values,
        salesforce=sf_values,
        operations=operations,
        salesforce_writes=writes,
        message="; ".join(m for m in (message, *extended.messages) if m) or None,
        refusal=refusal,
        children=extended.children,
        waiting=None if refusal else notice,
        wake_at=deadlines.wake_at(plan, sides.referral, now),
    )


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
        parsed = parse_key(key)
    except KeyFormatError as exc:
        return Outcome(key, None, SKIPPED, message=str(exc))
    side: microsoft.MicrosoftSide | None = None
    if parsed[0] == "referral":
        referral_id = parsed[1]
        link = ctx.store.link_for_referral(referral_id)
        read: Referral | None = None
        if link is None:  # maybe Microsoft's side of one of our engagements
            resolved = await microsoft.resolve(ctx, key, referral_id, calls)
            if isinstance(resolved, Outcome):
                return resolved
            if isinstance(resolved, microsoft.Resolved):
                link, side = resolved.link, resolved.side
            else:
                read = resolved
        if link is None or link.record_id is None:
            started = await creates.from_referral(ctx, key, referral_id, link, calls, referral=read)
            if isinstance(started, Outcome):
                return started
            link = started
    else:
        _, sobject, record_id = parsed
        if sobject == leads.LEAD:
            return await leads.reconcile_record_key(ctx, key, record_id)
        if sobject != OPPORTUNITY:
            return Outcome(
                key,
                None,
                SKIPPED,
                message=f"{sobject} records are not synced (only Opportunity and Lead)",
            )
        link = ctx.store.link_for_record(sobject, record_id)
        if link is None or link.referral_id is None:
            started = await creates.from_opportunity(ctx, key, record_id, link, calls)
            if isinstance(started, Outcome):
                return started
            link = started
    if link.sobject == leads.LEAD:
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
        try:
            decision = decide(ctx, link, sides)
        except ValueMappingError as exc:
            return await park(ctx, key, link, sides.opportunity, unmappable(exc), calls)
        notes: list[microsoft.Note] = []
        if microsoft_side is not None:
            decision, notes = with_microsoft(decision, microsoft_side, sides)
        decision = await with_children(ctx, sides, decision, calls)
        decision, notes = with_history(ctx, decision, notes)
        if ctx.dry_run:
            return _outcome(key, link, decision, calls, dry_run=True)
        try:
            # Notes first: a crash after the writes must find them (`notes_history`).
            await microsoft.write_notes(ctx, sides, notes, calls)
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
                sides.opportunity,
                f"Partner Center refused the update: {exc}",
                calls,
            )
        except sf_errors.TerminalError as exc:
            return await park(
                ctx, key, link, sides.opportunity, f"Salesforce refused the update: {exc}", calls
            )
        finish(ctx, link, decision, calls)
        if decision.plan.merge_again:  # accepted: the edits held while on hold go now
            return await reconcile_link(ctx, key, ctx.store.get_link(link.id) or link, calls)
        return _outcome(key, link, decision, calls)
    raise ConcurrentEditsError(
        f"{key}: the record changed while cosell wrote it, {MAX_ATTEMPTS} times in a row; "
        "the reconcile is retried later"
    )


def with_microsoft(
    decision: Decision, side: microsoft.MicrosoftSide, sides: Sides
) -> tuple[Decision, list[microsoft.Note]]:
    """The decision with Microsoft's changes since the base added, and the notes to create."""
    extension = microsoft.extend(side, sides.referral, sides.opportunity, decision.base or {})
    plan = replace(decision.plan, new_base={**decision.plan.new_base, **extension.markers})
    writes = {role: dict(fields) for role, fields in decision.salesforce_writes.items()}
    microsoft.apply_extension(writes, extension)
    message = "; ".join(m for m in (decision.message, *extension.messages) if m) or None
    decision = replace(decision, plan=plan, salesforce_writes=writes, message=message)
    return decision, extension.notes


async def with_children(
    ctx: SyncContext, sides: Sides, decision: Decision, calls: ApiCalls
) -> Decision:
    """The decision with the people to add looked up (`collections.resolve`), if there are any."""
    if decision.children is None:
        return decision
    resolved = await collections.resolve(ctx, sides, decision.children, calls)
    plan = replace(
        decision.plan,
        new_base={
            **decision.plan.new_base,
            **collections.unmatched_base(decision.plan.new_base, resolved),
        },
    )
    message = "; ".join(m for m in (decision.message, *resolved.messages) if m) or None
    children = None if resolved.children.is_empty else resolved.children
    notice = decision.notice or bool(resolved.messages)
    return replace(decision, plan=plan, message=message, children=children, notice=notice)


def with_history(
    ctx: SyncContext, decision: Decision, notes: list[microsoft.Note]
) -> tuple[Decision, list[microsoft.Note]]:
    """The decision and notes with a change of the Partner Center notes kept (`notes_history`)."""
    kept = notes_history.due(
        ctx.mapping, decision.partner_center, decision.salesforce, decision.base
    )
    if kept is None:
        return decision, notes
    plan = replace(decision.plan, new_base={**decision.plan.new_base, **notes_history.marker(kept)})
    writes = {role: dict(fields) for role, fields in decision.salesforce_writes.items()}
    writes.setdefault(OPPORTUNITY, {})  # so that Audit__c shows it now
    message = "; ".join(m for m in (decision.message, "Partner Center notes kept as a Note") if m)
    return replace(decision, plan=plan, salesforce_writes=writes, message=message), [kept, *notes]


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
            ctx, key, link, opportunity, _unreadable_referral(link.referral_id, referral), calls
        )
    if isinstance(rows, sf_errors.TerminalError):
        return await park(
            ctx, key, link, None, f"cannot read opportunity {link.record_id}: {rows}", calls
        )
    if opportunity is None:
        return await park(
            ctx,
            key,
            link,
            None,
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
    opportunity_fields = opportunity_writes(ctx, link, sides, decision, referral)
    if decision.children is not None:  # the fields and the child rows in one composite call
        await collections.write(ctx, sides, opportunity_fields, decision.children, calls)
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
    """Record a reconcile whose writes succeeded: base, conflicts, audit, link status."""
    store = ctx.store
    plan = decision.plan
    if decision.base is None or dict(decision.base) != dict(plan.new_base):
        store.save_snapshot(link.id, plan.new_base)
    for conflict in plan.conflicts:
        store.record_conflict(
            link.id,
            field=conflict.field,
            partner_center=conflict.partner_center,
            salesforce=conflict.salesforce,
            base=conflict.base,
            winner=str(conflict.winner),
        )
    if decision.message:
        store.record_audit(
            link.id,
            decision.message,
            details={**plan_details(plan), "api_calls": calls.total},
        )
    if decision.wake_at is not None and link.referral_id is not None:
        store.set_wakeup(referral_key(link.referral_id), decision.wake_at)
    status = _sync_status(decision.refusal, decision.waiting)
    shown = decision.refusal or decision.waiting
    wrote = bool(decision.operations) or decision.writes_salesforce
    if wrote or link.sync_status != status or link.last_error != shown:
        changes: dict[str, Any] = {"sync_status": status, "last_error": shown}
        if status == SyncStatus.SYNCED:
            changes["last_synced_at"] = ctx.clock.now()
        store.update_link(link.id, **changes)


def _outcome(
    key: Key, link: Link, decision: Decision, calls: ApiCalls, *, dry_run: bool = False
) -> Outcome:
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


async def park(
    ctx: SyncContext,
    key: Key,
    link: Link,
    opportunity: Mapping[str, Any] | None,
    message: str,
    calls: ApiCalls,
) -> Outcome:
    """Park a terminal problem on the link and the opportunity; it is retried on the next change.

    Writes only what is not already so: meeting the same error again writes nothing.

    Args:
        ctx: the context.
        key: the key reconciled.
        link: the link.
        opportunity: the opportunity row as read, when it could be read.
        message: what is wrong and what to do, for the seller.
        calls: counts API calls.

    Returns:
        An `error` outcome.
    """
    log.warning("sync.reconcile.parked", key=key, link=link.id, error=message)
    if ctx.dry_run:
        return Outcome(key, link.id, ERROR, message=f"dry run: {message}", api_calls=calls.total)
    if link.sync_status != SyncStatus.ERROR or link.last_error != message:
        ctx.store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error=message)
        ctx.store.record_audit(link.id, f"error: {message}", details={"api_calls": calls.total})
    if opportunity is not None and opportunity.get("Id"):
        fields: dict[str, Any] = {}
        if differs(opportunity.get(ctx.fields.sync_status), SyncStatus.ERROR.value):
            fields[ctx.fields.sync_status] = SyncStatus.ERROR.value
        if differs(opportunity.get(ctx.fields.sync_error), message[:SYNC_ERROR_LENGTH]):
            fields[ctx.fields.sync_error] = message[:SYNC_ERROR_LENGTH]
        if fields:
            fields[ctx.fields.audit] = render_audit_field(
                [], ctx.store.audit(link.id, limit=AUDIT_ENTRIES)
            )
            calls.salesforce += 1
            try:  # only our own status fields: no seller data can be overwritten, no precondition
                await ctx.salesforce.update(OPPORTUNITY, opportunity["Id"], fields)
            except sf_errors.TerminalError as exc:
                log.warning("sync.reconcile.status_not_written", key=key, error=str(exc))
    return Outcome(key, link.id, ERROR, message=message, api_calls=calls.total)


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
        keys: at most `BATCH_LIMIT` keys; duplicates are reconciled once.

    Returns:
        One outcome per distinct key, in the order given. The shared reads are counted on
        the first outcome, so the sum of `api_calls` is the batch's cost. Referrals in
        `ctx.listed` (a pass's list page) are used as read, not read again.

    Raises:
        ValueError: more than `BATCH_LIMIT` keys.
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
        page = await ctx.partner_center.list_page(orderby="updatedDateTime asc", top=SWEEP_PAGE)
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
    if len(distinct) > BATCH_LIMIT:
        raise ValueError(
            f"a batch takes at most {BATCH_LIMIT} keys, got {len(distinct)}: split it into pages"
        )
    shared = shared or ApiCalls()
    outcomes: dict[Key, Outcome] = {}
    linked: dict[Key, Link] = {}
    singles: list[Key] = []
    same: dict[Key, Key] = {}  # a second key of a link already in the batch -> the first key
    first_key: dict[str, Key] = {}
    for key in distinct:
        link = _complete_link(ctx, key)
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
        for key, link in linked.items():
            referral = referrals.get(link.referral_id or "")
            row = by_id.get(link.record_id or "")
            if referral is None or row is None:
                singles.append(key)  # the single path reads it again and parks it clearly
                continue
            sides = Sides(referral=referral, records=records_of(row))
            try:
                decision = decide(ctx, link, sides)
            except ValueMappingError:
                singles.append(key)  # the single path parks it with the message
                continue
            if decision.children is not None:  # child rows: the single path, with these sides
                outcomes[key] = await reconcile_link(ctx, key, link, ApiCalls(), sides=sides)
                continue
            decision, notes = with_history(ctx, decision, [])
            pending.append(_Pending(key, link, sides, decision, notes=notes))
    if ctx.dry_run:
        for item in pending:
            outcomes[item.key] = _outcome(
                item.key, item.link, item.decision, item.calls, dry_run=True
            )
    else:
        # Notes first, as in `reconcile_link`; a key whose notes failed is retried alone.
        wanted = {str(item.sides.opportunity["Id"]): item.notes for item in pending}
        failed = await microsoft.write_notes_many(ctx, wanted, shared)
        ctx.failpoint("after-notes")
        singles += [p.key for p in pending if str(p.sides.opportunity["Id"]) in failed]
        pending = [p for p in pending if str(p.sides.opportunity["Id"]) not in failed]
        await _batch_writes(ctx, pending, outcomes, singles)
    spent_before = {item.key: item.calls.total for item in pending}
    await _batch_creates(ctx, singles, referrals, outcomes)
    created = {_referral_id(k) or "" for k, o in outcomes.items() if o.result == CREATED}
    microsoft.seed_created(ctx, referrals, created)
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
        parsed = parse_key(key)
    except KeyFormatError:
        return None
    return parsed[1] if parsed[0] == "referral" else None


async def _batch_creates(
    ctx: SyncContext,
    singles: list[Key],
    referrals: Mapping[str, Referral],
    outcomes: dict[Key, Outcome],
) -> None:
    """Create the opportunities of the batch's new incoming referrals together (a few calls)."""
    items: list[tuple[Key, Referral, Link | None]] = []
    for key in singles:
        referral_id = _referral_id(key)
        referral = referrals.get(referral_id or "")
        if key in outcomes or referral_id is None or referral is None:
            continue
        if microsoft.is_microsofts(referral):
            continue  # Microsoft's side of an engagement: resolved by the single path
        link = ctx.store.link_for_referral(referral_id)
        intent = ctx.store.create_intent(link.id) if link is not None else None
        if leads.wants_lead(ctx, referral, link):
            continue  # a Lead: created by the single path (`leads.create_lead`)
        if creates.plain_incoming(referral, link) and (
            intent is None or intent.side == "salesforce"
        ):
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
            parsed = parse_key(key)
        except KeyFormatError:
            continue
        if key in outcomes or parsed[0] != "salesforce" or parsed[1] != OPPORTUNITY:
            continue
        link = ctx.store.link_for_record(OPPORTUNITY, parsed[2])
        if link is None or link.referral_id is None:
            wanted.append((key, parsed[2], link))
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
    parsed = parse_key(key)
    if parsed[0] == "referral" and parsed[1] in known and microsoft.is_microsofts(known[parsed[1]]):
        return await _microsoft_listed(ctx, key, known[parsed[1]])
    if parsed[0] == "referral" and parsed[1] in known:
        link = ctx.store.link_for_referral(parsed[1])
        if link is None or link.record_id is None:
            calls = ApiCalls()
            started = await creates.from_referral(
                ctx, key, parsed[1], link, calls, referral=known[parsed[1]]
            )
            if isinstance(started, Outcome):
                return started
            return await reconcile_link(ctx, key, started, calls)
    return await reconcile_key(ctx, key)


async def _microsoft_listed(ctx: SyncContext, key: Key, referral: Referral) -> Outcome:
    """A listed referral of Microsoft's: reconcile our link with it only when it changed."""
    link = microsoft.stored_link(ctx, referral)
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


def _complete_link(ctx: SyncContext, key: Key) -> Link | None:
    """The link of `key` when it can be reconciled in a batch (both ids known, no create under way)."""
    try:
        parsed = parse_key(key)
    except KeyFormatError:
        return None
    if parsed[0] == "referral":
        link = ctx.store.link_for_referral(parsed[1])
    elif parsed[1] == OPPORTUNITY:
        link = ctx.store.link_for_record(parsed[1], parsed[2])
    else:
        return None
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
                    item.sides.opportunity,
                    f"Partner Center refused the update: {exc}",
                    item.calls,
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
    chunk: list[tuple[_Pending, list[CompositeSubrequest]]] = []
    size = 0
    for entry in writing:
        if size + len(entry[1]) > COMPOSITE_CHUNK and chunk:
            await _send_chunk(ctx, chunk, outcomes, singles)
            chunk, size = [], 0
        chunk.append(entry)
        size += len(entry[1])
    if chunk:
        await _send_chunk(ctx, chunk, outcomes, singles)


async def _send_chunk(
    ctx: SyncContext,
    chunk: list[tuple[_Pending, list[CompositeSubrequest]]],
    outcomes: dict[Key, Outcome],
    singles: list[Key],
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
                item.sides.opportunity,
                f"Salesforce refused the update: {failed[0].error}",
                item.calls,
            )
        else:
            finish(ctx, item.link, item.decision, item.calls)
            outcomes[item.key] = _outcome(item.key, item.link, item.decision, item.calls)


# -- explain (`cosell plan`) ----------------------------------------------------------------


@dataclass(frozen=True)
class FieldRow:
    """One mapped field in the three-way comparison.

    Attributes:
        field: the canonical field name.
        partner_center: Partner Center's value.
        salesforce: Salesforce's value.
        base: the value both sides last agreed on (None also when there is no base).
        action: what the reconcile does with the field, for a human.
    """

    field: str
    partner_center: Value
    salesforce: Value
    base: Value
    action: str


@dataclass(frozen=True)
class PlanReport:
    """What a reconcile of one key would do, and why (`cosell plan KEY`).

    Attributes:
        key: the key explained.
        link: its link, if it has one.
        has_base: whether the link has a base snapshot (False: first reconcile, owner decides).
        rows: the three-way comparison, one row per mapped field (empty for a create).
        partner_center_operations: the JSON Patch operations that would be sent.
        salesforce_updates: role → fields that would be written to Salesforce.
        outcome: the dry-run outcome (result and message).
    """

    key: str
    link: Link | None
    has_base: bool
    rows: tuple[FieldRow, ...]
    partner_center_operations: tuple[Mapping[str, Any], ...]
    salesforce_updates: Mapping[str, Mapping[str, Any]]
    outcome: Outcome


def _action(name: str, decision: Decision) -> str:
    plan = decision.plan
    for conflict in plan.conflicts:
        if conflict.field == name:
            side = "Partner Center" if conflict.winner == "partner_center" else "Salesforce"
            return f"conflict: {side} wins (owner)"
    for refusal in plan.refusals:
        if refusal.field == name:
            return f"refused: {refusal.reason}"
    for held in plan.held:
        if held.field == name:
            return f"held: {held.reason}"
    if name in plan.to_salesforce:
        return "write to Salesforce"
    if name in plan.to_partner_center:
        return "write to Partner Center"
    pc, sf = decision.partner_center.get(name), decision.salesforce.get(name)
    if pc == sf:
        known = decision.base is not None and name in decision.base
        if known and decision.base is not None and decision.base[name] == pc:
            return "in sync"
        return "in sync (new base)"
    return "differs: not synced this way (direction)"


async def explain(ctx: SyncContext, key: Key) -> PlanReport:
    """The three-way comparison and the plan for one key, without writing anything.

    Args:
        ctx: the context (its `dry_run` is forced on).
        key: `referral:<id>` or `salesforce:Opportunity:<id>`.

    Returns:
        The report.
    """
    dry = replace(ctx, dry_run=True)
    calls = ApiCalls()
    link = _complete_link(dry, key)
    if link is None:
        outcome = await reconcile_key(dry, key)
        return PlanReport(
            key=key,
            link=_any_link(dry, key),
            has_base=False,
            rows=tuple(
                FieldRow(name, value, None, None, "create in Salesforce")
                for name, value in sorted(outcome.to_salesforce.items())
            )
            + tuple(
                FieldRow(name, None, value, None, "create in Partner Center")
                for name, value in sorted(outcome.to_partner_center.items())
            ),
            partner_center_operations=(),
            salesforce_updates={},
            outcome=outcome,
        )
    loaded = await load(dry, key, link, calls)
    if isinstance(loaded, Outcome):
        return PlanReport(key, link, False, (), (), {}, loaded)
    decision = decide(dry, link, loaded)
    rows = tuple(
        FieldRow(
            rule.name,
            decision.partner_center.get(rule.name),
            decision.salesforce.get(rule.name),
            None if decision.base is None else decision.base.get(rule.name),
            _action(rule.name, decision),
        )
        for rule in ctx.mapping.rules()
    )
    return PlanReport(
        key=key,
        link=link,
        has_base=decision.base is not None,
        rows=rows,
        partner_center_operations=tuple(decision.operations),
        salesforce_updates={
            role: dict(fields) for role, fields in decision.salesforce_writes.items()
        },
        outcome=_outcome(key, link, decision, calls, dry_run=True),
    )


def _any_link(ctx: SyncContext, key: Key) -> Link | None:
    try:
        parsed = parse_key(key)
    except KeyFormatError:
        return None
    if parsed[0] == "referral":
        return ctx.store.link_for_referral(parsed[1])
    return ctx.store.link_for_record(parsed[1], parsed[2])
