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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic
import structlog

from cosell.mapping import (
    Collections,
    ValueMappingError,
    new_referral_body,
    new_salesforce_records,
    partner_center_values,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping import Mapping as Mapping_
from cosell.mapping.types import FieldRule, Value
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import Member, NewReferral, Referral, ReferralDirection
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.client import SaveResult
from cosell.salesforce.values import soql_in
from cosell.store.types import Key, KeyFormatError, Link, SyncStatus, canonical_record_id
from cosell.sync import collections, deadlines, leads
from cosell.sync.audit import AUDIT_ENTRIES, line, render_audit_field, show
from cosell.sync.context import (
    ACCOUNT,
    OPPORTUNITY,
    SYNC_ERROR_LENGTH,
    ApiCalls,
    SyncContext,
)
from cosell.sync.outcome import CREATED, ERROR, SKIPPED, Outcome
from cosell.sync.rules import deal_problems, value_problem
from cosell.sync.sides import (
    agreed_values,
    read_opportunities,
    read_referral,
    records_of,
    referral_json,
    status_text,
)

log = structlog.get_logger(__name__)

PARTNER_CENTER = "partner_center"
SALESFORCE = "salesforce"
HELP = "help"  # the canonical field of "How can Microsoft help?" (DESIGN.md's data model)
CONTACT_ROLE = "Decision Maker"  # a standard OpportunityContactRole role of every org


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
    refusal = _share_refusal(ctx.mapping.collections, opportunity) if share else None
    if refusal is not None:  # Partner Center would refuse the POST: say what to add instead
        return await _park_new(ctx, key, link, opportunity, refusal, calls)
    try:
        body = new_referral_body(
            ctx.mapping, values, external_reference_id=record_id, share_with_microsoft=share
        )
        new = NewReferral.model_validate(_with_children(ctx.mapping.collections, body, opportunity))
    except (pydantic.ValidationError, ValueError) as exc:
        return await _park_new(ctx, key, link, opportunity, _invalid_new_referral(exc), calls)
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


def _share_refusal(spec: Collections, opportunity: dict[str, Any]) -> str | None:
    """Why the opportunity cannot be shared with Microsoft yet (no solution, no contact)."""
    items = collections.salesforce_items(spec, opportunity)
    return collections.share_refusal(
        has_solution=bool(items[collections.SOLUTIONS]),
        has_contact=bool(items[collections.CONTACTS]),
    )


def create_problems(mapping: Mapping_, values: Mapping[str, Value]) -> str | None:
    """What Partner Center would refuse in a new referral's values, checked before any call.

    Each mapped field's value (or its default, as the create body would carry it) is checked
    by `rules.value_problem`: a deal value that is set and not zero, a currency, an ISO-2
    country, FY26 values; then what spans fields, by `rules.deal_problems` (the deal type and
    the help requested, a services co-sell deal's partner role, solution area and play).

    Args:
        mapping: the mapping (fields, defaults, transforms).
        values: the opportunity's canonical values.

    Returns:
        None when nothing would be refused, else the message to park on the opportunity.
    """
    problems: list[str] = []
    sent: list[tuple[FieldRule, Value]] = []
    for mapped in mapping.fields:
        value = values.get(mapped.name)
        if value is None:
            value = mapped.default_value
        sent.append((mapped.rule(), value))
        problem = value_problem(mapped.rule(), value)
        if problem is not None:
            problems.append(problem)
    problems.extend(deal_problems(sent))
    if not problems:
        return None
    return (
        "cannot create the Partner Center referral: "
        + "; ".join(problems)
        + "; then save the opportunity again"
    )


def _with_children(
    spec: Collections, body: dict[str, Any], opportunity: dict[str, Any]
) -> dict[str, Any]:
    """The create body plus the opportunity's Microsoft solutions, contacts and team.

    Partner Center needs solutions and a customer contact for a referral that asks Microsoft
    for help; they come from the `Microsoft_Solution__c` rows, the contact roles (primary
    first) and the team members' users, read in the same query (`collections.py`).
    """
    items = collections.salesforce_items(spec, opportunity)
    solutions = [dict(row.item) for row in items[collections.SOLUTIONS].values()]
    if solutions:
        details = body.setdefault("details", {})
        details.setdefault("requirements", {})["solutions"] = solutions
    contacts = [dict(row.item) for row in items[collections.CONTACTS].values()]
    if contacts and not body.get("customerProfile", {}).get("team"):
        body.setdefault("customerProfile", {})["team"] = contacts
    team = [dict(row.item) for row in items[collections.TEAM].values()]
    if team and not body.get("team"):
        body["team"] = team
    return body


def _invalid_new_referral(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return (
            f"cannot create the Partner Center referral: {detail}. Fill in the opportunity "
            "(amount, currency, close date) and its account (name, billing country) and save it"
        )
    return f"cannot create the Partner Center referral: {exc}"


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
    for item in posted:
        referral = item.referral
        assert referral.id is not None
        link = store.update_link(
            item.link.id, referral_id=referral.id, engagement_id=referral.engagement_id
        )
        store.resolve_create_intent(link.id)
        pc_values = partner_center_values(ctx.mapping, referral_json(referral))
        records = records_of(item.opportunity)
        sf_values = salesforce_values(ctx.mapping, records)
        # What Partner Center made of the create (consent given when shared, the stage it
        # stores a partner's own referral in) is written back, so both sides start out equal.
        differing = {k: v for k, v in pc_values.items() if sf_values.get(k) != v}
        updates = salesforce_updates(ctx.mapping, differing, records) if differing else {}
        store.save_snapshot(link.id, pc_values)
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
    for (item, link, message, sf_values), result in zip(done, saved, strict=True):
        if result.success:
            store.record_audit(link.id, message, details={"api_calls": calls.total})
            store.update_link(
                link.id,
                sync_status=SyncStatus.SYNCED,
                last_error=None,
                last_synced_at=ctx.clock.now(),
            )
        else:  # the referral exists and the link knows it: the next reconcile writes it back
            problem = (
                f"{message}, but writing it back to the opportunity failed: "
                f"{result.errors[0] if result.errors else 'not saved'}"
            )
            store.record_audit(link.id, problem)
            store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error=problem)
            message = problem
        results[item.key] = Outcome(
            item.key,
            link.id,
            CREATED,
            to_partner_center=sf_values,
            message=message,
            api_calls=calls.total,
        )
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
    """Park a create that cannot be made; the link exists so the dashboard shows the error."""
    log.warning("sync.create.parked", key=key, error=message)
    if ctx.dry_run:
        return Outcome(
            key,
            link.id if link else None,
            ERROR,
            message=f"dry run: {message}",
            api_calls=calls.total,
        )
    store = ctx.store
    if link is None:
        link = store.create_link(sobject=OPPORTUNITY, record_id=str(opportunity["Id"]))
    if link.sync_status != SyncStatus.ERROR or link.last_error != message:
        store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error=message)
        store.record_audit(link.id, f"error: {message}")
    fields: dict[str, Any] = {}
    if opportunity.get(ctx.fields.sync_status) != SyncStatus.ERROR.value:
        fields[ctx.fields.sync_status] = SyncStatus.ERROR.value
    if opportunity.get(ctx.fields.sync_error) != message[:SYNC_ERROR_LENGTH]:
        fields[ctx.fields.sync_error] = message[:SYNC_ERROR_LENGTH]
    if fields:
        fields[ctx.fields.audit] = render_audit_field([], store.audit(link.id, limit=AUDIT_ENTRIES))
        calls.salesforce += 1
        try:
            await ctx.salesforce.update(OPPORTUNITY, opportunity["Id"], fields)
        except sf_errors.TerminalError as exc:
            log.warning("sync.create.status_not_written", key=key, error=str(exc))
    return Outcome(key, link.id, ERROR, message=message, api_calls=calls.total)


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
        return _unreadable(ctx, key, referral, link, exc, calls)
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


def _unreadable(
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
        return Outcome(key, link.id if link else None, ERROR, message=message)
    log.warning("sync.create.parked", key=key, error=message)
    store = ctx.store
    if link is None:
        link = store.create_link(
            sobject=OPPORTUNITY, referral_id=referral.id, engagement_id=referral.engagement_id
        )
    if link.sync_status != SyncStatus.ERROR or link.last_error != message:
        store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error=message)
        store.record_audit(link.id, f"error: {message}")
    return Outcome(key, link.id, ERROR, message=message, api_calls=calls.total)


def plain_incoming(referral: Referral, link: Link | None) -> bool:
    """Whether this referral only needs its opportunity created (a batch can create it).

    True for an incoming referral without an opportunity yet that names none itself and is
    not closed (a referral whose link lost its record id goes on being created too).
    """
    if link is not None:
        return link.record_id is None and link.referral_id is not None
    return (
        referral.direction == ReferralDirection.INCOMING
        and not referral.external_reference_id
        and not referral.is_terminal
    )


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
    children_base: dict[str, Value] = field(default_factory=dict)


def _customer(fields: Mapping[str, Any]) -> tuple[str, str, str]:
    """How an account is matched: Name + BillingPostalCode + BillingCountry, case-insensitive."""

    def part(name: str) -> str:
        return str(fields.get(name) or "").casefold()  # SOQL's `=` ignores case too

    return part("Name"), part("BillingPostalCode"), part("BillingCountry")


def _failed_item(result: SaveResult) -> str:
    return str(result.errors[0]) if result.errors else "Salesforce did not save it"


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
    (`collections.create_children`: a user query and a create each, only when there are
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
    store = ctx.store
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
            outcomes[key] = _unreadable(ctx, key, referral, link, exc, calls)
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
        if link is None:
            link = store.create_link(
                sobject=OPPORTUNITY, referral_id=referral.id, engagement_id=referral.engagement_id
            )
        opportunity = {
            k: v
            for k, v in (records.get(OPPORTUNITY) or {}).items()
            if k not in ("Id", ctx.fields.referral_id)
        }
        work.append(
            _NewOpportunity(
                key, referral, link, values, opportunity, dict(records.get(ACCOUNT) or {})
            )
        )
    if work:
        await _accounts(ctx, work, calls)
        await _upsert(ctx, work, calls)
        await _contacts(ctx, [w for w in work if w.failure is None], calls)
        made = [(str(w.record_id), w.referral) for w in work if w.failure is None and w.created]
        bases = await collections.create_children(ctx, made, calls)
        for item in work:
            item.children_base = bases.get(str(item.record_id), {})
    for item in work:
        outcomes[item.key] = _finish_new(ctx, item)
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
        found.setdefault(_customer(row), str(row["Id"]))
    missing: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item in work:
        if item.failure is None and _customer(item.account) not in found:
            missing.setdefault(_customer(item.account), item.account)
    refused: dict[tuple[str, str, str], str] = {}
    if missing:
        calls.salesforce += 1
        results = await ctx.salesforce.create_many(ACCOUNT, list(missing.values()))
        for customer, result in zip(missing, results, strict=True):
            if result.success and result.id:
                found[customer] = str(result.id)
            else:
                refused[customer] = _failed_item(result)
    for item in work:
        if item.failure is None:
            customer = _customer(item.account)
            item.account_id = found.get(customer)
            if item.account_id is None:
                item.failure = f"the account could not be created: {refused.get(customer)}"


async def _upsert(ctx: SyncContext, work: list[_NewOpportunity], calls: ApiCalls) -> None:
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
        item.opportunity.update(
            {
                fields.referral_id: item.referral.id,
                "AccountId": item.account_id,
                fields.sync: True,
                fields.referral_link: ctx.referral_link(item.referral.id),
                fields.partner_center_status: status_text(item.referral),
                fields.sync_status: SyncStatus.SYNCED.value,
                fields.audit: render_audit_field(
                    [line(ctx.clock.now(), message)],
                    ctx.store.audit(item.link.id, limit=AUDIT_ENTRIES),
                ),
            }
        )
        ctx.store.record_create_intent(
            item.link.id, side=SALESFORCE, external_reference=item.referral.id
        )
        bodies.append(item.opportunity)
    calls.salesforce += 1
    results = await ctx.salesforce.upsert_many(OPPORTUNITY, fields.referral_id, bodies)
    ctx.failpoint("after-opportunity-upsert")
    for item, result in zip(ready, results, strict=True):
        if result.success and result.id:
            item.record_id = str(result.id)
            item.created = bool(result.created)
            item.link = ctx.store.update_link(item.link.id, record_id=item.record_id)
        else:
            item.failure = f"Salesforce refused the opportunity: {_failed_item(result)}"


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
    if new:
        calls.salesforce += 1
        results = await ctx.salesforce.create_many("Contact", list(new.values()))
        for who, result in zip(new, results, strict=True):
            if result.success and result.id:
                found[who] = str(result.id)
            else:
                log.warning("sync.create.contact_refused", error=_failed_item(result))
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
        item.contact = _name(member.first_name, last_name)
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
                log.warning("sync.create.contact_role_refused", error=_failed_item(result))


def _finish_new(ctx: SyncContext, item: _NewOpportunity) -> Outcome:
    store = ctx.store
    link = item.link
    assert item.referral.id is not None
    if item.failure is not None:
        message = (
            f"cannot create the opportunity for referral {item.referral.id}: {item.failure}. "
            "Fix the mapping's defaults or the org's validation rules; it is retried on the "
            "next change"
        )
        log.warning("sync.create.parked", key=item.key, error=message)
        if link.sync_status != SyncStatus.ERROR or link.last_error != message:
            store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error=message)
            store.record_audit(link.id, f"error: {message}")
        return Outcome(item.key, link.id, ERROR, message=message)
    store.resolve_create_intent(link.id)
    written = {
        OPPORTUNITY: {**item.opportunity, "Id": item.record_id},
        ACCOUNT: {**item.account, "Id": item.account_id},
    }
    agreed = agreed_values(item.values, salesforce_values(ctx.mapping, written))
    store.save_snapshot(link.id, {**agreed, **item.children_base})
    wake = deadlines.first_wake(item.referral, ctx.clock.now())
    if wake is not None:  # the expiry warning comes without any change: come back for it
        store.set_wakeup(item.key, wake)
    message = (
        f"created the opportunity from referral {item.referral.id} ({status_text(item.referral)})"
    )
    if item.contact:
        message += f"; contact {item.contact}"
    store.record_audit(link.id, message)
    store.update_link(
        link.id, sync_status=SyncStatus.SYNCED, last_error=None, last_synced_at=ctx.clock.now()
    )
    return Outcome(item.key, link.id, CREATED, to_salesforce=item.values, message=message)


def _name(first: str | None, last: str) -> str:
    return show(f"{first} {last}" if first else last)
