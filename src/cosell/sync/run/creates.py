"""Creates: the missing side of a link, made exactly once (DESIGN.md, "Identity").

**Salesforce → Partner Center** (an opportunity with Sync with Partner Center ticked and no
referral): the link row and a create intent (`external_reference` = the opportunity id) are
recorded *before* the POST; the referral carries the opportunity id in `externalReferenceId`
and is shared with Microsoft when How can Microsoft help is set. After the POST the link gets
the referral and engagement ids, the intent is resolved, and `Referral_Identifier__c`,
`Referral_Link__c` and the status fields are written back in one update. A reconcile that
finds an unresolved intent (the process died after the POST, or the POST's answer was lost)
first looks the referral up by `externalReferenceId` and only POSTs when none exists: a crash
anywhere ends with exactly one referral. While the POST waits for the engine's retry (Partner
Center throttling or unavailable), the opportunity shows sync status Pending and why (`WAITING`). `create_referrals` does this for many opportunities
with one read and one write-back for all (Partner Center creates one referral per POST).

**Partner Center → Salesforce** (an incoming referral without a link): the link row (referral
id only) comes first; the account is matched on Name + BillingPostalCode + BillingCountry (one
SOQL query) or created; the opportunity is *upserted* on `Referral_Identifier__c` (idempotent
by construction: a rerun updates the same record), in the mapping's on-hold stage while the
referral is New; the customer contact (`customerProfile.team[0]`) is matched on email under
the account or created, and added as the primary OpportunityContactRole.

`create_opportunities` does this for up to 200 referrals at once with sObject collections (one
query and one create for the accounts, one upsert, one query and one create for the contacts,
one create for the contact roles); a single referral is a batch of one.

Both record the values the two sides agree on right after the create as the link's base, so
the next reconcile only sees real changes.

With lead sync, a lead referral gets a Lead instead (`leads.create_lead`).

Both return either a finished `Outcome` or the `Link` the caller should go on reconciling (a
record that was linked before, found again by its identity field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic
import structlog

from cosell.mapping import (
    ValueMappingError,
    new_referral_body,
    new_salesforce_records,
    partner_center_values,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping.check import creates_record_type
from cosell.mapping.model import ACCOUNT, OPPORTUNITY
from cosell.mapping.types import Value
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import Member, NewReferral, Referral, ReferralDirection
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.client import SaveResult
from cosell.salesforce.values import soql_in
from cosell.store.types import Key, KeyFormatError, Link, Record, SyncStatus, canonical_record_id
from cosell.sync.io import child_rows
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.read import read_opportunities, read_referral
from cosell.sync.plan import deadlines
from cosell.sync.plan.audit import AUDIT_ENTRIES, line, render_audit_field
from cosell.sync.plan.creates import (
    account_match,
    create_problems,
    failed_item,
    invalid_new_referral,
    opportunity_share_refusal,
    person_name,
    with_collections,
)
from cosell.sync.plan.decide import stamped
from cosell.sync.plan.errors import GlobalSyncError
from cosell.sync.plan.outcome import CREATED, ERROR, SKIPPED, Outcome
from cosell.sync.plan.record import parked_record, synced_record
from cosell.sync.plan.sets import CONTACT_ROLE, HELP
from cosell.sync.plan.sides import (
    agreed_values,
    records_of,
    referral_json,
    status_text,
)
from cosell.sync.run import leads
from cosell.sync.run.park import park, raise_if_global
from cosell.sync.run.record import record
from cosell.sync.run.refused import salesforce_refusal

log = structlog.get_logger(__name__)

PARTNER_CENTER = "partner_center"
SALESFORCE = "salesforce"


# -- Salesforce → Partner Center ------------------------------------------------------------


async def from_opportunity(
    ctx: SyncContext, key: Key, record_id: str, link: Link | None, calls: ApiCalls
) -> Outcome | Link:
    """Create (or recover, or adopt) the referral of an opportunity that has none linked.

    Args:
        ctx: the context.
        key: the key being reconciled.
        record_id: the opportunity id.
        link: the opportunity's link when one exists without a referral id (a create under
            way or failed), else None.
        calls: counts API calls.

    Returns:
        The outcome, or the link to reconcile when the opportunity already names its referral.
    """
    rows = await read_opportunities(ctx, calls, ids=[record_id], with_children=True)
    if not rows:
        return Outcome(
            key,
            link.id if link else None,
            SKIPPED,
            message=f"opportunity {record_id} does not exist or is not visible to the integration user",
            api_calls=calls.total,
        )
    return (await create_referrals(ctx, [(key, rows[0], link)], calls))[key]


@dataclass(frozen=True)
class _Posted:
    key: Key
    link: Link
    opportunity: dict[str, Any]
    referral: Referral


async def create_referrals(
    ctx: SyncContext,
    items: Sequence[tuple[Key, dict[str, Any], Link | None]],
    calls: ApiCalls,
) -> dict[Key, Outcome | Link]:
    """Create the referrals of opportunities read with `read_opportunities(with_children=True)`.

    Partner Center creates one referral per POST; what follows each is shared: the
    opportunities' write-backs (identity, status, values Partner Center set) go out in one
    sObject-collections update.

    Args:
        ctx: the context.
        items: (key, opportunity row, its link or None) per opportunity.
        calls: counts API calls (shared by the items).

    Returns:
        Per key, the outcome, or the link to reconcile when the opportunity already names its
        referral.
    """
    results: dict[Key, Outcome | Link] = {}
    posted: list[_Posted] = []
    for key, opportunity, link in items:
        started = await _start_referral(ctx, key, opportunity, link, calls)
        if isinstance(started, _Posted):
            posted.append(started)
        else:
            results[key] = started
    if posted:
        results.update(await _write_back(ctx, posted, calls))
    return results


async def _start_referral(
    ctx: SyncContext,
    key: Key,
    opportunity: dict[str, Any],
    link: Link | None,
    calls: ApiCalls,
) -> Outcome | Link | _Posted:
    record_id = str(opportunity["Id"])
    known = opportunity.get(ctx.fields.referral_id)
    if link is None and known:
        return await _adopt_referral(ctx, key, record_id, str(known), calls)
    if link is not None and ctx.store.create_intent(link.id) is not None:
        calls.partner_center += 1
        found = await ctx.partner_center.find_by_external_reference(record_id)
        if found:
            log.info("sync.create.recovered", key=key, referral=found[0].id)
            if ctx.dry_run:
                return Outcome(
                    key,
                    link.id,
                    CREATED,
                    message=f"dry run: would link referral {found[0].id}, created before an interruption",
                    api_calls=calls.total,
                    dry_run=True,
                )
            return _Posted(key, link, opportunity, found[0])
    if not opportunity.get(ctx.fields.sync):
        return Outcome(
            key,
            link.id if link else None,
            SKIPPED,
            message="the opportunity is not marked Sync with Partner Center",
            api_calls=calls.total,
        )
    values = salesforce_values(ctx.mapping, records_of(opportunity))
    problems = create_problems(ctx.mapping, values)
    if problems is not None:  # Partner Center would refuse it: no call, say what to fix
        return await _park_new(ctx, key, link, opportunity, problems, calls)
    # Asking Microsoft for help shares the referral with Microsoft (co-sell); the default
    # mapping's `help` field is How_can_Microsoft_help__c, None when nothing is asked.
    share = values.get(HELP) is not None
    refusal = opportunity_share_refusal(ctx.mapping.collections, opportunity) if share else None
    if refusal is not None:  # Partner Center would refuse the POST: say what to add instead
        return await _park_new(ctx, key, link, opportunity, refusal, calls)
    try:
        body = new_referral_body(
            ctx.mapping, values, external_reference_id=record_id, share_with_microsoft=share
        )
        new = NewReferral.model_validate(
            with_collections(ctx.mapping.collections, body, opportunity)
        )
    except (pydantic.ValidationError, ValueError) as exc:
        return await _park_new(ctx, key, link, opportunity, invalid_new_referral(exc), calls)
    if ctx.dry_run:
        return Outcome(
            key,
            link.id if link else None,
            CREATED,
            to_partner_center=values,
            message=f"dry run: would create a referral for opportunity {record_id}"
            + (" shared with Microsoft" if share else ""),
            api_calls=calls.total,
            dry_run=True,
        )
    if link is None:
        link = ctx.store.create_link(sobject=OPPORTUNITY, record_id=record_id)
    ctx.store.record_create_intent(link.id, side=PARTNER_CENTER, external_reference=record_id)
    calls.partner_center += 1
    try:
        referral = await ctx.partner_center.create(new)
    except pc_errors.InvalidRequestError as exc:
        ctx.store.resolve_create_intent(link.id)  # refused: nothing was created
        return await _park_new(
            ctx, key, link, opportunity, f"Partner Center refused the new referral: {exc}", calls
        )
    except pc_errors.RetriableError:
        await _show_waiting(ctx, key, opportunity, calls)
        raise
    ctx.failpoint("after-referral-create")
    return _Posted(key, link, opportunity, referral)


async def _adopt_referral(
    ctx: SyncContext, key: Key, record_id: str, referral_id: str, calls: ApiCalls
) -> Outcome | Link:
    other = ctx.store.link_for_referral(referral_id)
    if other is not None:
        return Outcome(
            key,
            other.id,
            ERROR,
            message=f"the opportunity names referral {referral_id}, which is linked to "
            f"{other.sobject} {other.record_id}: clear Referral Identifier on one of them",
            api_calls=calls.total,
        )
    if ctx.dry_run:
        return Outcome(
            key,
            None,
            CREATED,
            message=f"dry run: would link opportunity {record_id} to referral {referral_id}",
            api_calls=calls.total,
            dry_run=True,
        )
    return ctx.store.create_link(sobject=OPPORTUNITY, record_id=record_id, referral_id=referral_id)


async def _write_back(
    ctx: SyncContext, posted: list[_Posted], calls: ApiCalls
) -> dict[Key, Outcome | Link]:
    """Record the created referrals on their links and write them back, one update for all."""
    store = ctx.store
    opportunities: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    done: list[tuple[_Posted, Link, str, dict[str, Value]]] = []
    values = {
        item.link.id: partner_center_values(ctx.mapping, referral_json(item.referral))
        for item in posted
    }
    # The referrals' ids on their links first (one transaction): the creates are done.
    links = store.record(
        [
            Record(
                item.link.id,
                link={
                    "referral_id": item.referral.id,
                    "engagement_id": item.referral.engagement_id,
                },
                snapshot=stamped(values[item.link.id], item.referral),
                resolve_intent=True,
            )
            for item in posted
        ]
    )
    for item, link in zip(posted, links, strict=True):
        referral = item.referral
        assert referral.id is not None
        pc_values = values[item.link.id]
        records = records_of(item.opportunity)
        sf_values = salesforce_values(ctx.mapping, records)
        # What Partner Center made of the create (consent given when shared, the stage it
        # stores a partner's own referral in) is written back, so both sides start out equal.
        differing = {k: v for k, v in pc_values.items() if sf_values.get(k) != v}
        updates = salesforce_updates(ctx.mapping, differing, records) if differing else {}
        shared = " (shared with Microsoft)" if referral.is_shared_with_microsoft else ""
        message = f"created referral {referral.id} in Partner Center{shared}"
        opportunities.append(
            {
                **updates.get(OPPORTUNITY, {}),
                "Id": item.opportunity["Id"],
                ctx.fields.referral_id: referral.id,
                ctx.fields.referral_link: ctx.referral_link(referral.id),
                ctx.fields.partner_center_status: status_text(referral),
                ctx.fields.sync_status: SyncStatus.SYNCED.value,
                ctx.fields.sync_error: None,
                ctx.fields.audit: render_audit_field(
                    [line(ctx.clock.now(), message)], store.audit(link.id, limit=AUDIT_ENTRIES)
                ),
            }
        )
        account = records.get(ACCOUNT)
        if updates.get(ACCOUNT) and account is not None:
            accounts.append({"Id": account["Id"], **updates[ACCOUNT]})
        done.append((item, link, message, sf_values))
    # cosell's own fields, and values Partner Center set itself on create: no precondition.
    calls.salesforce += 1
    saved = await ctx.salesforce.update_many(OPPORTUNITY, opportunities)
    if accounts:
        calls.salesforce += 1
        await ctx.salesforce.update_many(ACCOUNT, accounts)
    results: dict[Key, Outcome | Link] = {}
    recorded: list[Record | None] = []
    for (item, link, message, sf_values), result in zip(done, saved, strict=True):
        if result.success:
            now = ctx.clock.now()
            recorded.append(synced_record(link, message, api_calls=calls.total, now=now))
        else:  # the referral exists and the link knows it: the next reconcile writes it back
            problem = (
                f"{message}, but writing it back to the opportunity failed: "
                f"{result.errors[0] if result.errors else 'not saved'}"
            )
            recorded.append(
                Record(
                    link.id,
                    link={"sync_status": SyncStatus.ERROR, "last_error": problem},
                    audit=((problem, None),),
                )
            )
            message = problem
        results[item.key] = Outcome(
            item.key,
            link.id,
            CREATED,
            to_partner_center=sf_values,
            message=message,
            api_calls=calls.total,
        )
    record(ctx, recorded)
    return results


WAITING = (
    "waiting for Partner Center, which is busy or unavailable: the referral is created as soon "
    "as it answers (nothing to do)"
)
"""The sync error field of an opportunity whose referral create waits for a retry."""


async def _show_waiting(
    ctx: SyncContext, key: Key, opportunity: dict[str, Any], calls: ApiCalls
) -> None:
    """Show a create that waits for the engine's retry: sync status Pending and why.

    Written once (not again while the opportunity already shows it); the create's write-back
    sets Synced and clears the message. A failure to write it is logged, never raised: the
    retry is what matters.
    """
    wanted = {ctx.fields.sync_status: SyncStatus.PENDING.value, ctx.fields.sync_error: WAITING}
    fields = {name: value for name, value in wanted.items() if opportunity.get(name) != value}
    if not fields:
        return
    calls.salesforce += 1
    try:
        await ctx.salesforce.update(OPPORTUNITY, opportunity["Id"], fields)
    except sf_errors.SalesforceError as exc:
        log.warning("sync.create.waiting_not_written", key=key, error=str(exc))


async def _park_new(
    ctx: SyncContext,
    key: Key,
    link: Link | None,
    opportunity: dict[str, Any],
    message: str,
    calls: ApiCalls,
) -> Outcome:
    """Park a create that cannot be made; the link is made first so the dashboard shows it."""
    if link is None and ctx.dry_run:
        return Outcome(key, None, ERROR, message=f"dry run: {message}", api_calls=calls.total)
    if link is None:
        link = ctx.store.create_link(sobject=OPPORTUNITY, record_id=str(opportunity["Id"]))
    return await park(ctx, key, link, message, calls, record=opportunity)


# -- Partner Center → Salesforce ------------------------------------------------------------


async def from_referral(
    ctx: SyncContext,
    key: Key,
    referral_id: str,
    link: Link | None,
    calls: ApiCalls,
    *,
    referral: Referral | None = None,
) -> Outcome | Link:
    """Create (or finish creating, or adopt) the opportunity of a referral without one.

    Args:
        ctx: the context.
        key: the key being reconciled.
        referral_id: the referral id.
        link: the referral's link when one exists without a record id, else None.
        calls: counts API calls.
        referral: the referral when already read (a sweep page).

    Returns:
        The outcome, or the link to reconcile when the referral turned out to be linked.
    """
    if referral is None:
        try:
            referral = await read_referral(ctx, calls, referral_id)
        except (pc_errors.NotFoundError, pc_errors.AccessDeniedError) as exc:
            return Outcome(
                key,
                link.id if link else None,
                SKIPPED,
                message=f"referral {referral_id} is not visible: {exc}",
                api_calls=calls.total,
            )
    if link is None and referral.external_reference_id:
        mine = await _outgoing_link(ctx, key, referral, calls)
        if mine is not None:
            return mine
    if link is None and referral.direction != ReferralDirection.INCOMING:
        return Outcome(
            key,
            None,
            SKIPPED,
            message="an outgoing referral that names no opportunity in externalReferenceId "
            "(Microsoft's own side of a co-sell engagement, or one made by hand in Partner "
            "Center): cosell creates opportunities only for incoming referrals",
            api_calls=calls.total,
        )
    if link is None and referral.is_terminal:
        return Outcome(
            key,
            None,
            SKIPPED,
            message=f"the referral was {status_text(referral)} before cosell saw it",
            api_calls=calls.total,
        )
    if leads.wants_lead(ctx, referral, link):
        return await leads.create_lead(ctx, key, referral, link, calls)
    try:
        pc_values = partner_center_values(ctx.mapping, referral_json(referral))
    except ValueMappingError as exc:
        return await _unreadable(ctx, key, referral, link, exc, calls)
    if ctx.dry_run:
        return Outcome(
            key,
            link.id if link else None,
            CREATED,
            to_salesforce=pc_values,
            message=f"dry run: would create an opportunity for referral {referral_id}",
            api_calls=calls.total,
            dry_run=True,
        )
    created = await create_opportunities(ctx, [(key, referral, link)], calls)
    return created[key]


async def _unreadable(
    ctx: SyncContext,
    key: Key,
    referral: Referral,
    link: Link | None,
    exc: ValueMappingError,
    calls: ApiCalls,
) -> Outcome:
    """Park a referral whose values cannot be read (e.g. a deal value Salesforce cannot hold).

    The link is created without a record so that the deal shows in Error, with the field and
    the reason, in `cosell status`; the next change of the referral tries again.
    """
    assert referral.id is not None
    message = f"cannot read referral {referral.id} through the mapping: {exc}"
    if ctx.dry_run:
        return Outcome(key, link.id if link else None, ERROR, message=f"dry run: {message}")
    if link is None:
        link = ctx.store.create_link(
            sobject=OPPORTUNITY, referral_id=referral.id, engagement_id=referral.engagement_id
        )
    return await park(ctx, key, link, message, calls)


async def _outgoing_link(
    ctx: SyncContext, key: Key, referral: Referral, calls: ApiCalls
) -> Outcome | Link | None:
    """A referral that carries an opportunity id: finish its create, or adopt the pair."""
    try:
        record_id = canonical_record_id(str(referral.external_reference_id))
    except KeyFormatError:
        return None
    link = ctx.store.link_for_record(OPPORTUNITY, record_id)
    if link is not None and link.referral_id is None:
        return await from_opportunity(ctx, key, record_id, link, calls)
    if link is not None or referral.direction == ReferralDirection.INCOMING:
        return None
    rows = await read_opportunities(ctx, calls, ids=[record_id])
    if not rows or referral.id is None:
        return None
    return await _adopt_referral(ctx, key, record_id, referral.id, calls)


@dataclass
class _NewOpportunity:
    """One referral's opportunity on its way through `create_opportunities`."""

    key: Key
    referral: Referral
    link: Link
    values: dict[str, Value]
    opportunity: dict[str, Any]
    account: dict[str, Any]
    account_id: str | None = None
    record_id: str | None = None
    created: bool = False
    contact: str | None = None
    failure: str | None = None
    linked: list[str] = field(default_factory=list)  # existing records a duplicate rule matched
    children_base: dict[str, Value] = field(default_factory=dict)
    fresh: bool = False  # its link was made by this batch (no audit trail yet)


async def create_opportunities(
    ctx: SyncContext,
    items: Sequence[tuple[Key, Referral, Link | None]],
    calls: ApiCalls,
) -> dict[Key, Outcome]:
    """Create the opportunities of up to 200 incoming referrals, a few calls for all of them.

    One SOQL query finds the existing accounts (Name + BillingPostalCode + BillingCountry),
    one collections call creates the missing ones, one upserts the opportunities on
    `Referral_Identifier__c`, one query and one create find or make the customer contacts,
    and one create adds the contact roles (plus one query of existing roles when an
    opportunity already existed); the new opportunities' solutions and team members follow
    (`child_rows.create_children`: a user query and a create each, only when there are
    some). Each link and create intent is recorded before the upsert.
    An item that Salesforce refuses is parked on its link; the others go on.

    Args:
        ctx: the context (a dry run creates nothing and says what it would).
        items: (key, referral, its link or None) for referrals that `plain_incoming` accepts.
        calls: counts API calls (shared by the items).

    Returns:
        An outcome per key; `api_calls` is `calls.total` on each (the calls are shared).
    """
    outcomes: dict[Key, Outcome] = {}
    work: list[_NewOpportunity] = []
    ready: list[
        tuple[Key, Referral, Link | None, dict[str, Value], dict[str, Any], dict[str, Any]]
    ] = []
    store = ctx.store
    record_type_id = await creates_record_type_id(ctx)  # before any link: it may not fit
    for key, referral, link in items:
        assert referral.id is not None
        try:
            values = partner_center_values(ctx.mapping, referral_json(referral))
            records = new_salesforce_records(
                ctx.mapping,
                values,
                referral_id=referral.id,
                referral_link=ctx.referral_link(referral.id),
                today=ctx.clock.now().date(),
            )
        except ValueMappingError as exc:
            outcomes[key] = await _unreadable(ctx, key, referral, link, exc, calls)
            continue
        if ctx.dry_run:
            outcomes[key] = Outcome(
                key,
                link.id if link else None,
                CREATED,
                to_salesforce=values,
                message=f"dry run: would create an opportunity for referral {referral.id}",
                dry_run=True,
            )
            continue
        opportunity = {
            k: v
            for k, v in (records.get(OPPORTUNITY) or {}).items()
            if k not in ("Id", ctx.fields.referral_id)
        }
        ready.append((key, referral, link, values, opportunity, dict(records.get(ACCOUNT) or {})))
    # The new links first, all in one store transaction (before any create is called).
    made_links = iter(
        store.create_links(
            [(OPPORTUNITY, str(r.id), r.engagement_id) for _, r, link, *_ in ready if link is None]
        )
    )
    for key, referral, link, values, opportunity, account in ready:
        work.append(
            _NewOpportunity(
                key,
                referral,
                next(made_links) if link is None else link,
                values,
                opportunity,
                account,
                fresh=link is None,  # a new link: no audit trail to read for its Audit__c
            )
        )
    if work:
        await _accounts(ctx, work, calls)
        await _upsert(ctx, work, calls, record_type_id)
        await _contacts(ctx, [w for w in work if w.failure is None], calls)
        made = [(str(w.record_id), w.referral) for w in work if w.failure is None and w.created]
        bases = await child_rows.create_children(ctx, made, calls)
        for item in work:
            item.children_base = bases.get(str(item.record_id), {})
    recorded: list[Record | None] = []
    for item in work:
        outcomes[item.key], done = _finish_new(ctx, item)
        recorded.append(done)
    record(ctx, recorded)  # every opportunity created: one store transaction
    return {key: replace(o, api_calls=calls.total) for key, o in outcomes.items()}


async def _accounts(ctx: SyncContext, work: list[_NewOpportunity], calls: ApiCalls) -> None:
    for item in work:
        if not item.account.get("Name"):
            item.failure = (
                "the referral has no customer name, so no account can be matched or created"
            )
    names = sorted({str(w.account["Name"]) for w in work if w.failure is None})
    if not names:
        return
    found: dict[tuple[str, str, str], str] = {}
    soql = (
        f"SELECT Id, Name, BillingPostalCode, BillingCountry FROM {ACCOUNT} "  # noqa: S608 - soql_in
        f"WHERE Name IN {soql_in(names)} ORDER BY CreatedDate"
    )
    calls.salesforce += 1
    async for row in ctx.salesforce.query(soql):
        found.setdefault(account_match(row), str(row["Id"]))
    missing: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item in work:
        if item.failure is None and account_match(item.account) not in found:
            missing.setdefault(account_match(item.account), item.account)
    refused: dict[tuple[str, str, str], str] = {}
    linked: dict[tuple[str, str, str], str] = {}
    if missing:
        calls.salesforce += 1
        results = await ctx.salesforce.create_many(ACCOUNT, list(missing.values()))
        for customer, result in zip(missing, results, strict=True):
            if result.success and result.id:
                found[customer] = str(result.id)
                continue
            matched = duplicate_match(result)
            if matched is not None:  # the org has this customer: link it, as an admin would
                found[customer], linked[customer] = matched
            elif result.errors:
                refused[customer] = await salesforce_refusal(
                    ctx, result.errors[0], ACCOUNT, calls, creating=True
                )
            else:
                raise_if_global(result.errors[0] if result.errors else None)
                refused[customer] = failed_item(result)
    for item in work:
        if item.failure is None:
            customer = account_match(item.account)
            item.account_id = found.get(customer)
            if item.account_id is None:
                item.failure = f"the account could not be created: {refused.get(customer)}"
            elif customer in linked:
                item.linked.append(f"account {item.account_id} ({linked[customer]})")


def duplicate_match(result: SaveResult) -> tuple[str, str] | None:
    """The record a duplicate rule matched when it refused a create, and how to say so.

    A blocking rule and an alerting one (`allowSave`, sent without the duplicate rule header)
    refuse alike; either way the org already holds the customer, so cosell links the first
    record the rule matched (`duplicateResult`'s order) instead of failing. None: the result
    is no duplicate refusal, or it names no record.
    """
    error = result.errors[0] if result.errors else None
    if not isinstance(error, sf_errors.DuplicatesDetectedError) or not error.matched_ids:
        return None
    rule = error.duplicate_rule or "a duplicate rule"
    others = len(error.matched_ids) - 1
    more = f", {others} more matched" if others else ""
    return str(error.matched_ids[0]), f"matched by the org's {rule}{more}"


async def creates_record_type_id(ctx: SyncContext) -> str | None:
    """The id of the mapping's `record_type` for new opportunities (None: the user's default).

    Resolved from describe's `recordTypeInfos` (cached by the client for `describe_ttl`, so
    one describe serves every create).

    Raises:
        GlobalSyncError: the org has no such record type available to the integration user
            (the mapping does not fit the org: every create would fail).
    """
    if ctx.mapping.record_type is None:
        return None
    description = await ctx.salesforce.describe(OPPORTUNITY)
    chosen = creates_record_type(ctx.mapping, description)
    if chosen is None:
        known = ", ".join(i.developer_name for i in description.record_type_infos if not i.master)
        raise GlobalSyncError(
            f"the mapping's record_type {ctx.mapping.record_type!r} is not an Opportunity "
            "record type available to cosell's integration user "
            f"(available: {known or 'none'}): correct `record_type` in the mapping or assign "
            "the record type to the integration user's profile (`cosell mapping check`)",
            side="salesforce",
        )
    return chosen.record_type_id


async def _upsert(
    ctx: SyncContext, work: list[_NewOpportunity], calls: ApiCalls, record_type_id: str | None
) -> None:
    ready = [w for w in work if w.failure is None]
    if not ready:
        return
    fields = ctx.fields
    bodies = []
    for item in ready:
        assert item.referral.id is not None
        message = (
            f"created the opportunity from referral {item.referral.id} "
            f"({status_text(item.referral)})"
        )
        if item.linked:  # the account a duplicate rule matched (the contacts come later)
            message += f"; linked the existing {', '.join(item.linked)} instead of a duplicate"
        item.opportunity.update(
            {
                fields.referral_id: item.referral.id,
                "AccountId": item.account_id,
                fields.sync: True,
                fields.referral_link: ctx.referral_link(item.referral.id),
                fields.partner_center_status: status_text(item.referral),
                fields.sync_status: SyncStatus.SYNCED.value,
                **({"RecordTypeId": record_type_id} if record_type_id else {}),
                fields.audit: render_audit_field(
                    [line(ctx.clock.now(), message)],
                    [] if item.fresh else ctx.store.audit(item.link.id, limit=AUDIT_ENTRIES),
                ),
            }
        )
        bodies.append(item.opportunity)
    # Every create intent before the upsert, in one store transaction.
    ctx.store.record_create_intents(
        [(item.link.id, SALESFORCE, str(item.referral.id)) for item in ready]
    )
    calls.salesforce += 1
    results = await ctx.salesforce.upsert_many(OPPORTUNITY, fields.referral_id, bodies)
    ctx.failpoint("after-opportunity-upsert")
    made: list[_NewOpportunity] = []
    for item, result in zip(ready, results, strict=True):
        if result.success and result.id:
            item.record_id = str(result.id)
            item.created = bool(result.created)
            made.append(item)
        elif result.errors:
            why = await salesforce_refusal(
                ctx,
                result.errors[0],
                OPPORTUNITY,
                calls,
                record_type_id=record_type_id,
                creating=True,
            )
            item.failure = f"Salesforce refused the opportunity: {why}"
        else:
            raise_if_global(result.errors[0] if result.errors else None)
            item.failure = f"Salesforce refused the opportunity: {failed_item(result)}"
    # The opportunities' ids on their links, all in one store transaction.
    linked = ctx.store.record([Record(w.link.id, link={"record_id": w.record_id}) for w in made])
    for item, link in zip(made, linked, strict=True):
        item.link = link


async def _contacts(ctx: SyncContext, work: list[_NewOpportunity], calls: ApiCalls) -> None:
    """The customer contact (`customerProfile.team[0]`) as each opportunity's primary role."""
    members: list[tuple[_NewOpportunity, Member, str]] = []
    for item in work:
        team = item.referral.customer_profile.team if item.referral.customer_profile else []
        if team:
            last_name = team[0].last_name or team[0].first_name or team[0].email
            if last_name:
                members.append((item, team[0], last_name))
    if not members:
        return
    found: dict[tuple[str, str], str] = {}
    emails = sorted({m.email for _, m, _ in members if m.email})
    if emails:
        accounts = sorted({str(item.account_id) for item, _, _ in members})
        soql = (
            "SELECT Id, Email, AccountId FROM Contact "  # noqa: S608 - soql_in
            f"WHERE Email IN {soql_in(emails)} AND AccountId IN {soql_in(accounts)} "
            "ORDER BY CreatedDate"
        )
        calls.salesforce += 1
        async for row in ctx.salesforce.query(soql):
            found.setdefault((str(row["Email"]).casefold(), str(row["AccountId"])), str(row["Id"]))
    new: dict[tuple[str, str], dict[str, Any]] = {}
    for item, member, last_name in members:
        who = ((member.email or f"#{id(member)}").casefold(), str(item.account_id))
        if who not in found:
            contact = {
                "AccountId": item.account_id,
                "FirstName": member.first_name,
                "LastName": last_name,
                "Email": member.email,
                "Phone": member.phone_number,
                "Title": member.title,
            }
            new.setdefault(who, {k: v for k, v in contact.items() if v is not None})
    linked: dict[tuple[str, str], str] = {}
    if new:
        calls.salesforce += 1
        results = await ctx.salesforce.create_many("Contact", list(new.values()))
        for who, result in zip(new, results, strict=True):
            matched = None if result.success else duplicate_match(result)
            if result.success and result.id:
                found[who] = str(result.id)
            elif matched is not None:  # the org has this person: link the contact it matched
                found[who], linked[who] = matched
            else:
                log.warning("sync.create.contact_refused", error=failed_item(result))
    roles = []
    existing: set[tuple[str, str]] = set()
    again = [item.record_id for item, _, _ in members if not item.created and item.record_id]
    if again:
        soql = (
            "SELECT OpportunityId, ContactId FROM OpportunityContactRole "  # noqa: S608 - soql_in
            f"WHERE OpportunityId IN {soql_in(sorted(set(again)))}"
        )
        calls.salesforce += 1
        async for row in ctx.salesforce.query(soql):
            existing.add((str(row["OpportunityId"]), str(row["ContactId"])))
    for item, member, last_name in members:
        who = ((member.email or f"#{id(member)}").casefold(), str(item.account_id))
        contact_id = found.get(who)
        if contact_id is None or item.record_id is None:
            continue
        item.contact = person_name(member.first_name, last_name)
        if who in linked:
            item.linked.append(f"contact {contact_id} ({linked[who]})")
        if (item.record_id, contact_id) not in existing:
            roles.append(
                {
                    "OpportunityId": item.record_id,
                    "ContactId": contact_id,
                    "IsPrimary": True,
                    "Role": CONTACT_ROLE,
                }
            )
    if roles:
        calls.salesforce += 1
        for result in await ctx.salesforce.create_many("OpportunityContactRole", roles):
            if not result.success:
                log.warning("sync.create.contact_role_refused", error=failed_item(result))


def _finish_new(ctx: SyncContext, item: _NewOpportunity) -> tuple[Outcome, Record | None]:
    """The outcome of one opportunity create, and what to record of it."""
    link = item.link
    assert item.referral.id is not None
    if item.failure is not None:
        message = (
            f"cannot create the opportunity for referral {item.referral.id}: {item.failure}. "
            "Fix the mapping's defaults or the org's validation rules; it is retried by itself "
            "and on the next change"
        )
        log.warning("sync.create.parked", key=item.key, error=message)
        return Outcome(item.key, link.id, ERROR, message=message), parked_record(
            link, message, now=ctx.clock.now()
        )
    written = {
        OPPORTUNITY: {**item.opportunity, "Id": item.record_id},
        ACCOUNT: {**item.account, "Id": item.account_id},
    }
    agreed = agreed_values(item.values, salesforce_values(ctx.mapping, written))
    now = ctx.clock.now()
    wake = deadlines.first_wake(item.referral, now)
    message = (
        f"created the opportunity from referral {item.referral.id} ({status_text(item.referral)})"
    )
    if item.contact:
        message += f"; contact {item.contact}"
    if item.linked:
        message += "; linked the existing " + ", ".join(item.linked) + " instead of a duplicate"
    done = Record(
        link.id,
        link={"sync_status": SyncStatus.SYNCED, "last_error": None, "last_synced_at": now},
        snapshot=stamped({**agreed, **item.children_base}, item.referral),
        audit=((message, None),),
        # the expiry warning comes without any change: come back for it
        wakeup=(item.key, wake) if wake is not None else None,
        resolve_intent=True,
    )
    outcome = Outcome(item.key, link.id, CREATED, to_salesforce=item.values, message=message)
    return outcome, done
