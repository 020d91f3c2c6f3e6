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

Errors: a refused change (refusal) or a terminal API error of the deal is *parked*: the link
and the opportunity get sync status `Error` and a message that says what to fix; the key is
tried again on its next change (child rows and the account included) or sweep, and a parked
terminal error on its own retry schedule as well (`plan.retry`); a reconcile that meets the
same error again before its retry is due writes nothing. A terminal error that is the
connection's (credentials, a permission, a mapping that does not fit the org: `plan.scope`) is
never parked: `run.park` raises `SideFailureError` and the engine pauses that side. Retriable
errors (throttling, outages) are raised for the engine to retry with backoff.

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
from collections.abc import Mapping
from dataclasses import replace
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
from cosell.store.types import Key, KeyFormatError, Link
from cosell.sync.io import child_rows
from cosell.sync.io import microsoft as microsoft_io
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.links import link_of
from cosell.sync.io.read import read_opportunities, read_referral
from cosell.sync.plan import microsoft, sets
from cosell.sync.plan.audit import (
    AUDIT_ENTRIES,
    line,
    render_audit_field,
)
from cosell.sync.plan.decide import Decision, decide
from cosell.sync.plan.errors import ConcurrentEditsError
from cosell.sync.plan.keys import KeyRef
from cosell.sync.plan.leads import LEAD
from cosell.sync.plan.limits import MAX_ATTEMPTS
from cosell.sync.plan.outcome import (
    SKIPPED,
    Outcome,
)
from cosell.sync.plan.record import record_of
from cosell.sync.plan.sides import Sides, differs, records_of, status_text
from cosell.sync.run import creates, leads
from cosell.sync.run.park import park, raise_if_global
from cosell.sync.run.record import record
from cosell.sync.run.refused import salesforce_refusal

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
            return await park(
                ctx, key, link, unmappable(exc), calls, record=sides.opportunity, lasting=True
            )
        decision = await with_children(ctx, sides, decision, calls)
        if ctx.dry_run:
            return outcome_of(key, link, decision, calls, dry_run=True)
        try:
            # Notes first: a crash after the writes must find them (`notes_history`).
            await microsoft_io.write_notes(ctx, sides, list(decision.notes), calls)
            ctx.failpoint("after-notes")
            written = await apply(ctx, link, sides, decision, calls)
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
                error=exc,
            )
        except sf_errors.TerminalError as exc:
            why = await salesforce_refusal(
                ctx, exc, OPPORTUNITY, calls, record_id=str(sides.opportunity["Id"])
            )
            return await park(
                ctx,
                key,
                link,
                f"Salesforce refused the update: {why}",
                calls,
                record=sides.opportunity,
                error=exc,
            )
        decision = decision.written(written.updated_date_time)
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
        hold_wins=ctx.hold_wins,
        modified_by_us=modified_by_us(ctx, sides.opportunity),
    )


def modified_by_us(ctx: SyncContext, opportunity: Mapping[str, Any]) -> bool:
    """Whether the record's last modification was cosell's own (its integration user's).

    Automation the write triggered runs in the same transaction, as the same user.
    """
    token = ctx.salesforce.session.current
    ours = token.user_id if token is not None else None
    theirs = opportunity.get("LastModifiedById")
    return bool(ours and isinstance(theirs, str) and theirs[:15] == ours[:15])


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
        if isinstance(failure, BaseException):
            raise_if_global(failure)  # the connection's problem is never a deal's
    if isinstance(referral, pc_errors.TerminalError):
        return await park(
            ctx,
            key,
            link,
            _unreadable_referral(link.referral_id, referral),
            calls,
            record=opportunity,
            lasting=isinstance(referral, pc_errors.NotFoundError),  # gone until restored
        )
    if isinstance(rows, sf_errors.TerminalError):
        why = (
            str(rows)  # the connection's problem, said the same way on every record
            if isinstance(rows, sf_errors.SignInRefusedError)
            else f"cannot read opportunity {link.record_id}: {rows}"
        )
        return await park(ctx, key, link, why, calls)
    if opportunity is None:
        return await park(
            ctx,
            key,
            link,
            f"opportunity {link.record_id} no longer exists (deleted, or not visible to the "
            "integration user): restore it from the recycle bin or share it with the "
            "integration user",
            calls,
            lasting=True,  # a restore or a share is a change of the record
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
    if isinstance(error, pc_errors.SignInRefusedError):
        return str(error)  # the connection's problem, said the same way on every record
    if isinstance(error, pc_errors.NotFoundError):
        return (
            f"referral {referral_id} no longer exists in Partner Center or is not visible to the "
            "signed-in user: check the user's Referrals role, or untick Sync with Partner Center"
        )
    return f"cannot read referral {referral_id} from Partner Center: {error}"


async def apply(
    ctx: SyncContext, link: Link, sides: Sides, decision: Decision, calls: ApiCalls
) -> Referral:
    """Write the decision: Partner Center (If-Match), then the opportunity (If-Unmodified-Since).

    Returns:
        The referral as Partner Center holds it after the write (as read when not written,
        or when the PATCH returned no representation).

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
    return referral


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
        adopted=len(decision.adopted),
    )


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


# -- explain (`cosell plan`) ----------------------------------------------------------------
