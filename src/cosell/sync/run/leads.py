"""Lead sync: lead referrals as Salesforce Leads, converted into opportunities on acceptance.

With `[sync] lead_sync` on (`SyncContext.lead_sync`) and a `lead:` section in the mapping, an
incoming referral that is a *lead* - not accepted yet (New), qualified by Microsoft's marketing
(`MarketingQualified`) or sent by the customer (`Direct`), spec §3.6 and §5.6 - becomes a
Salesforce **Lead**, not an opportunity (`create_lead`). Co-sell opportunities (SalesQualified)
still become opportunities; with lead sync off every incoming referral does, as before.

**Create.** As for opportunities (`creates.py`): the link (sobject `Lead`, the referral id) and a
create intent come first, then the Lead is *upserted* on `Referral_Identifier__c` (a rerun after
a crash updates the same Lead), with the lead section's fields, the `new` status and cosell's own
fields (the opportunity's names: `Referral_Identifier__c`, `Referral_Link__c`, ...). The values
both sides agree on become the base.

**While it is a Lead** (`reconcile_lead`, for `referral:<id>` and `salesforce:Lead:<id>` keys):
both sides are read (the referral, the Lead by one SOQL query) and

- a referral that is **Active** (accepted in Partner Center by the partner's user, or by cosell
  below) gets its Lead **converted** (`convert`);
- a referral **closed** in Partner Center (declined, expired) closes the Lead: status `declined`;
- a Lead whose status a seller set to the **`accepted`** status accepts the referral (Active/
  Accepted, `If-Match`), then converts the Lead: that is how a seller accepts a lead referral
  from Salesforce;
- a Lead set to the **`declined`** status declines the referral (Closed/Declined, with the stage
  table's `declined_reason`);
- otherwise the lead section's fields are merged against the base like an opportunity's
  (`merge.merge`): a seller's edits of fields that flow to Partner Center (the default: the
  Description <-> notes) reach the referral (`If-Match`), Partner Center's changes reach the
  Lead (`If-Unmodified-Since`), and the status fields on the Lead stay current.

**Conversion** (`convert`): the customer's account is matched as for opportunities (Name +
billing postal code + country) and its contact on the Lead's email, so conversion reuses them;
then one SOAP `convertLead()` call (`SalesforceClient.convert_lead`) converts the Lead with the
mapping's `converted` status, creating what was not matched and the opportunity (named after the
referral). The opportunity then gets the referral's values through the main mapping and cosell's
own fields (one update), and the link moves from the Lead to it (`sobject` Opportunity, the new
record id): from then on the deal syncs as an opportunity. The converted Lead keeps its
`Referral_Identifier__c` and Salesforce's `ConvertedOpportunityId`, so it still points at the
deal; Salesforce makes it read-only.

A Lead a seller converts by hand (Salesforce's Convert button) counts as an acceptance too: the
referral is accepted and the Lead's opportunity linked the same way.

Conversion is exactly-once without an intent of its own: Salesforce converts atomically and the
Lead records the result, so a reconcile that finds the Lead already converted (the process died
after `convertLead()`, or its answer was lost) adopts `ConvertedOpportunityId` instead of
converting again; running it twice ends with one opportunity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from cosell.mapping import (
    Mapping as SyncMapping,
)
from cosell.mapping import (
    ValueMappingError,
    new_salesforce_records,
    partner_center_operations,
    partner_center_values,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping.model import OPPORTUNITY
from cosell.mapping.types import Value
from cosell.partnercenter import errors as pc_errors
from cosell.partnercenter.models import (
    Referral,
    ReferralId,
    ReferralStatus,
)
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.soap import LeadConvert
from cosell.salesforce.values import parse_datetime, soql_quote
from cosell.store.types import Key, Link, Record, SyncStatus
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.read import read_opportunities, read_referral
from cosell.sync.plan.audit import AUDIT_ENTRIES, describe_plan, line, render_audit_field
from cosell.sync.plan.decide import stamped
from cosell.sync.plan.errors import ConcurrentEditsError
from cosell.sync.plan.leads import LEAD, is_lead_referral, lead_account_match
from cosell.sync.plan.limits import MAX_ATTEMPTS
from cosell.sync.plan.merge import merge
from cosell.sync.plan.outcome import CREATED, ERROR, SKIPPED, SYNCED, UNCHANGED, Outcome
from cosell.sync.plan.record import parked_record, synced_record
from cosell.sync.plan.rules import ReferralState
from cosell.sync.plan.sides import (
    SYNC_ERROR_LENGTH,
    agreed_values,
    differs,
    records_of,
    referral_json,
    status_text,
)
from cosell.sync.run.park import park, raise_if_global
from cosell.sync.run.record import record
from cosell.sync.run.refused import salesforce_refusal

log = structlog.get_logger(__name__)

_LEAD_OWN = (
    "Id",
    "Company",
    "Status",
    "IsConverted",
    "ConvertedAccountId",
    "ConvertedContactId",
    "ConvertedOpportunityId",
    "PostalCode",
    "Country",
    "Email",
    "LastModifiedDate",
    "SystemModstamp",
)


def wants_lead(ctx: SyncContext, referral: Referral, link: Link | None) -> bool:
    """Whether the referral's missing Salesforce side is a Lead (not an opportunity).

    Args:
        ctx: the context (`lead_sync`, the mapping's lead section).
        referral: the referral, as read.
        link: its link when one exists without a record id (a create under way), else None.

    Returns:
        True for a link already made for a Lead, or a lead referral with lead sync on.
    """
    if link is not None:
        return link.sobject == LEAD
    return ctx.lead_sync and ctx.mapping.lead is not None and is_lead_referral(referral)


def _lead_mapping(ctx: SyncContext) -> SyncMapping:
    lead = ctx.mapping.lead_mapping()
    if lead is None:
        raise ValueMappingError(
            "the mapping has no lead section, so a Lead cannot be synced: add one (copy it "
            "from the default mapping) or turn [sync] lead_sync off"
        )
    return lead


def _audit(ctx: SyncContext, link: Link, message: str | None) -> str:
    new = [line(ctx.clock.now(), message)] if message else []
    return render_audit_field(new, ctx.store.audit(link.id, limit=AUDIT_ENTRIES))


# -- reading --------------------------------------------------------------------------------


def lead_fields(ctx: SyncContext) -> list[str]:
    """The SELECT list of a Lead: the lead section's fields, cosell's own, conversion fields."""
    wanted = [*_LEAD_OWN, *ctx.fields.names().values()]
    lead = ctx.mapping.lead
    if lead is not None:
        wanted += [f.sf_field for f in lead.fields if not f.is_constant]
    unique: dict[str, str] = {}
    for name in wanted:
        unique.setdefault(name.lower(), name)
    return list(unique.values())


async def read_lead(ctx: SyncContext, calls: ApiCalls, lead_id: str) -> dict[str, Any] | None:
    """One Lead by id (one SOQL query), or None when it is gone or not visible."""
    soql = (
        f"SELECT {', '.join(lead_fields(ctx))} FROM {LEAD} "  # noqa: S608 - soql_quote
        f"WHERE Id = {soql_quote(lead_id)}"
    )
    calls.salesforce += 1
    rows = [row async for row in ctx.salesforce.query(soql)]
    return rows[0] if rows else None


# -- create ---------------------------------------------------------------------------------


def lead_body(ctx: SyncContext, values: Mapping[str, Value]) -> dict[str, Any]:
    """The mapped fields of a new Lead (defaults for missing values; None left out).

    Raises:
        ValueMappingError: a value cannot be converted (the message names the field).
    """
    body: dict[str, Any] = {}
    for mapped in _lead_mapping(ctx).fields:
        value = values.get(mapped.name)
        if value is None:
            value = mapped.default_on(ctx.clock.now().date())
        if value is None or mapped.is_constant:
            continue
        try:
            wire = mapped.simple_transform.to_salesforce(value)
        except ValueMappingError as exc:
            raise ValueMappingError(f"field {mapped.name!r} ({mapped.salesforce}): {exc}") from None
        if wire is not None:
            body[mapped.sf_field] = wire
    return body


async def create_lead(
    ctx: SyncContext, key: Key, referral: Referral, link: Link | None, calls: ApiCalls
) -> Outcome:
    """Create (or finish creating) the Lead of a lead referral, upserted on its referral id.

    Args:
        ctx: the context.
        key: the key being reconciled.
        referral: the referral, as read.
        link: its Lead link when a create was under way, else None.
        calls: counts API calls.

    Returns:
        The outcome (`created`, or `error` when the referral cannot be read or Salesforce
        refuses the Lead).
    """
    assert referral.id is not None
    try:
        values = partner_center_values(_lead_mapping(ctx), referral_json(referral))
        body = lead_body(ctx, values)
    except ValueMappingError as exc:
        message = f"cannot read referral {referral.id} through the mapping's lead section: {exc}"
        return Outcome(
            key, link.id if link else None, ERROR, message=message, api_calls=calls.total
        )
    if ctx.dry_run:
        return Outcome(
            key,
            link.id if link else None,
            CREATED,
            to_salesforce=values,
            message=f"dry run: would create a Lead for lead referral {referral.id}",
            api_calls=calls.total,
            dry_run=True,
        )
    store = ctx.store
    if link is None:
        link = store.create_link(
            sobject=LEAD, referral_id=referral.id, engagement_id=referral.engagement_id
        )
    message = f"created the Lead from lead referral {referral.id} ({status_text(referral)})"
    fields = ctx.fields
    body |= {
        "Status": ctx.mapping.lead.statuses.new if ctx.mapping.lead else None,
        fields.sync: True,
        fields.referral_link: ctx.referral_link(referral.id),
        fields.partner_center_status: status_text(referral),
        fields.sync_status: SyncStatus.SYNCED.value,
        fields.sync_error: None,
        fields.audit: _audit(ctx, link, message),
    }
    store.record_create_intent(link.id, side="salesforce", external_reference=referral.id)
    calls.salesforce += 1
    matched: str | None = None
    try:
        upserted_id = str(
            (await ctx.salesforce.upsert(LEAD, fields.referral_id, referral.id, body)).id
        )
    except sf_errors.TerminalError as exc:
        raise_if_global(exc)
        linked = await _link_duplicate(ctx, exc, referral.id, body, calls)
        if isinstance(linked, str):
            problem = (
                f"cannot create the Lead for referral {referral.id}: Salesforce refused it: "
                f"{linked}"
            )
            record(ctx, [parked_record(link, problem, now=ctx.clock.now())])
            return Outcome(key, link.id, ERROR, message=problem, api_calls=calls.total)
        upserted_id, matched = linked
        message += f"; linked the existing Lead {upserted_id} ({matched}) instead of a duplicate"
    ctx.failpoint("after-lead-upsert")
    written = salesforce_values(_lead_mapping(ctx), {LEAD: body})
    done = Record(
        link.id,
        link={
            "record_id": upserted_id,
            "sync_status": SyncStatus.SYNCED,
            "last_error": None,
            "last_synced_at": ctx.clock.now(),
        },
        # A linked Lead kept its own values: nothing agreed yet, the next reconcile merges them.
        snapshot=stamped({} if matched else agreed_values(values, written), referral),
        audit=((message, {"api_calls": calls.total}),),
        resolve_intent=True,
    )
    link = store.record([done])[0]
    return Outcome(
        key, link.id, CREATED, to_salesforce=values, message=message, api_calls=calls.total
    )


async def _link_duplicate(
    ctx: SyncContext,
    error: sf_errors.TerminalError,
    referral_id: str,
    body: dict[str, Any],
    calls: ApiCalls,
) -> tuple[str, str] | str:
    """Link the Lead a duplicate rule matched instead of creating one, as an admin would.

    The matched Lead (the first of `duplicateResult`) gets the referral id and cosell's own
    fields only; its seller-entered values stay, and the next reconcile merges them with the
    referral. A Lead already linked to another referral is not taken.

    Returns:
        (the Lead's id, how it was matched), or the message to park the referral with.
    """
    if not isinstance(error, sf_errors.DuplicatesDetectedError) or not error.matched_ids:
        return await salesforce_refusal(ctx, error, LEAD, calls, creating=True)
    lead_id = str(error.matched_ids[0])
    fields = ctx.fields
    calls.salesforce += 1
    try:
        existing = await ctx.salesforce.get(LEAD, lead_id, [fields.referral_id])
        if existing.get(fields.referral_id) not in (None, "", referral_id):
            return (
                f"the org's duplicate rule matched Lead {lead_id}, which is already synced with "
                f"referral {existing[fields.referral_id]}: merge the two Leads in Salesforce, "
                "or ask the admin about the duplicate rule"
            )
        own = {k: v for k, v in body.items() if k in _own_lead_fields(ctx)}
        calls.salesforce += 1
        await ctx.salesforce.update(LEAD, lead_id, {**own, fields.referral_id: referral_id})
    except sf_errors.TerminalError as exc:
        return await salesforce_refusal(ctx, exc, LEAD, calls, record_id=lead_id)
    rule = error.duplicate_rule or "a duplicate rule"
    return lead_id, f"matched by the org's {rule}"


def _own_lead_fields(ctx: SyncContext) -> set[str]:
    fields = ctx.fields
    return {
        fields.sync,
        fields.referral_link,
        fields.partner_center_status,
        fields.sync_status,
        fields.sync_error,
        fields.audit,
    }


# -- reconcile ------------------------------------------------------------------------------


async def reconcile_record_key(ctx: SyncContext, key: Key, record_id: str) -> Outcome:
    """Reconcile a `salesforce:Lead:<id>` key: the Lead's link, or say why there is none.

    Args:
        ctx: the context.
        key: the key.
        record_id: the Lead's id.

    Returns:
        The outcome.
    """
    calls = ApiCalls()
    link = ctx.store.link_for_record(LEAD, record_id)
    if link is not None:
        return await reconcile_lead(ctx, key, link, calls)
    if not ctx.lead_sync:
        return Outcome(
            key,
            None,
            SKIPPED,
            message="lead sync is off ([sync] lead_sync = false): Leads are not synced",
        )
    lead = await read_lead(ctx, calls, record_id)
    referral_id = lead.get(ctx.fields.referral_id) if lead else None
    other = ctx.store.link_for_referral(str(referral_id)) if referral_id else None
    if other is not None and other.sobject == OPPORTUNITY:
        message = (
            f"the Lead was converted into opportunity {other.record_id}; the deal syncs "
            "through the opportunity"
        )
    elif lead is None:
        message = f"Lead {record_id} does not exist or is not visible to the integration user"
    else:
        message = (
            "a Lead cosell did not create from a referral: Leads made in Salesforce are not "
            "shared with Partner Center (share an opportunity instead)"
        )
    return Outcome(
        key, other.id if other else None, SKIPPED, message=message, api_calls=calls.total
    )


@dataclass(frozen=True)
class _Sides:
    referral: Referral
    lead: dict[str, Any]


async def _load(ctx: SyncContext, key: Key, link: Link, calls: ApiCalls) -> _Sides | Outcome:
    assert link.referral_id is not None
    assert link.record_id is not None
    referral, lead = await asyncio.gather(
        read_referral(ctx, calls, link.referral_id),
        read_lead(ctx, calls, link.record_id),
        return_exceptions=True,
    )
    for failure in (referral, lead):
        if isinstance(failure, BaseException) and not isinstance(
            failure, pc_errors.TerminalError | sf_errors.TerminalError
        ):
            raise failure
        if isinstance(failure, BaseException):
            raise_if_global(failure)  # the connection's problem is never a deal's
    if isinstance(referral, BaseException):
        return await park(
            ctx,
            key,
            link,
            f"cannot read referral {link.referral_id} from Partner Center: {referral}",
            calls,
            record=lead if isinstance(lead, dict) else None,
            sobject=LEAD,
        )
    if isinstance(lead, BaseException) or lead is None:
        why = lead if isinstance(lead, BaseException) else "it was deleted or is not visible"
        message = (
            f"cannot read Lead {link.record_id}: {why}. Restore it from the recycle bin or "
            "share it with the integration user"
        )
        return await park(ctx, key, link, message, calls, sobject=LEAD)
    return _Sides(referral, lead)


async def reconcile_lead(ctx: SyncContext, key: Key, link: Link, calls: ApiCalls) -> Outcome:
    """Reconcile a link whose Salesforce side is still a Lead (see the module docstring).

    Args:
        ctx: the context; `ctx.dry_run` plans without writing.
        key: the key being reconciled.
        link: the link (sobject `Lead`, both ids known).
        calls: counts API calls.

    Returns:
        The outcome.

    Raises:
        cosell.partnercenter.errors.RetriableError, cosell.salesforce.errors.RetriableError:
            a side is throttling or unavailable; retry later with backoff.
        FailpointError: a test's failpoint fired.
    """
    if not ctx.dry_run and ctx.store.create_intent(link.id) is not None:
        ctx.store.resolve_create_intent(link.id)  # both ids are known: the create is done
    for _attempt in range(MAX_ATTEMPTS):
        loaded = await _load(ctx, key, link, calls)
        if isinstance(loaded, Outcome):
            return loaded
        try:
            return await _step(ctx, key, link, loaded, calls)
        except (pc_errors.ConflictError, sf_errors.ConflictError):
            log.info("sync.lead.concurrent_edit", key=key)
    raise ConcurrentEditsError(
        f"{key}: the Lead or referral changed while cosell wrote it, {MAX_ATTEMPTS} times in a "
        "row; the reconcile is retried later"
    )


async def _step(ctx: SyncContext, key: Key, link: Link, sides: _Sides, calls: ApiCalls) -> Outcome:
    referral, lead = sides.referral, sides.lead
    statuses = ctx.mapping.lead.statuses if ctx.mapping.lead else None
    if lead.get("IsConverted"):
        if referral.status == ReferralStatus.NEW:  # a seller converted it: that accepts it
            accepted = await _set_status(ctx, link, referral, "Active", "Accepted", calls)
            if isinstance(accepted, str):
                return await park(ctx, key, link, accepted, calls, sobject=LEAD)
            referral = accepted
        if ctx.dry_run:
            return _dry(key, link, "link the converted Lead's opportunity", calls)
        return await _adopt(ctx, key, link, referral, lead, calls)
    if referral.status == ReferralStatus.ACTIVE:
        return await convert(ctx, key, link, referral, lead, calls)
    if referral.is_terminal or referral.status == ReferralStatus.CLOSED:
        return await _close(ctx, key, link, referral, lead, calls)
    if statuses is not None and lead.get("Status") == statuses.accepted:
        accepted = await _set_status(ctx, link, referral, "Active", "Accepted", calls)
        if isinstance(accepted, str):
            return await park(ctx, key, link, accepted, calls, record=lead, sobject=LEAD)
        if ctx.dry_run:
            return _dry(key, link, "accept the referral and convert the Lead", calls)
        ctx.store.record_audit(link.id, "accepted the referral from the Lead (status)")
        return await convert(ctx, key, link, accepted, lead, calls)
    if statuses is not None and lead.get("Status") == statuses.declined:
        declined = await _set_status(ctx, link, referral, "Closed", "Declined", calls)
        if isinstance(declined, str):
            return await park(ctx, key, link, declined, calls, record=lead, sobject=LEAD)
        if ctx.dry_run:
            return _dry(key, link, "decline the referral", calls)
        return await _close(ctx, key, link, declined, lead, calls, by_seller=True)
    return await _merge(ctx, key, link, referral, lead, calls)


def _dry(key: Key, link: Link, what: str, calls: ApiCalls) -> Outcome:
    return Outcome(
        key, link.id, SYNCED, message=f"dry run: would {what}", api_calls=calls.total, dry_run=True
    )


async def _set_status(
    ctx: SyncContext,
    link: Link,
    referral: Referral,
    status: str,
    substatus: str,
    calls: ApiCalls,
) -> Referral | str:
    """Accept or decline the referral (If-Match); the updated referral, or a refusal message."""
    current = referral_json(referral)
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/status", "value": status},
        {
            "op": "replace" if current.get("substatus") else "add",
            "path": "/substatus",
            "value": substatus,
        },
    ]
    if substatus == "Declined":
        reason = ctx.mapping.stages.declined_reason
        op = "replace" if current.get("statusReason") else "add"
        ops.append({"op": op, "path": "/statusReason", "value": reason})
    if ctx.dry_run:
        return referral
    calls.partner_center += 1
    try:
        updated = await ctx.partner_center.patch(
            ReferralId(referral.id or link.referral_id or ""), ops, etag=referral.e_tag
        )
    except pc_errors.TerminalError as exc:
        raise_if_global(exc)
        return f"Partner Center refused to set the referral to {status}/{substatus}: {exc}"
    return updated or referral


async def _merge(
    ctx: SyncContext,
    key: Key,
    link: Link,
    referral: Referral,
    lead: dict[str, Any],
    calls: ApiCalls,
) -> Outcome:
    mapping = _lead_mapping(ctx)
    current = referral_json(referral)
    try:
        pc_values = partner_center_values(mapping, current)
        sf_values = salesforce_values(mapping, {LEAD: lead})
        base = ctx.store.snapshot(link.id)
        # A lead is not accepted by nature: its edits go at once, none is held for acceptance.
        state = replace(ReferralState.of(referral), holds_edits=False)
        plan = merge(pc_values, sf_values, base, mapping.rules(), state)
        operations = (
            partner_center_operations(mapping, plan.to_partner_center, current)
            if plan.to_partner_center
            else []
        )
        writes = dict(salesforce_updates(mapping, plan.to_salesforce, {LEAD: lead}).get(LEAD, {}))
    except ValueMappingError as exc:
        return await park(
            ctx, key, link, f"a value cannot be converted: {exc}", calls, record=lead, sobject=LEAD
        )
    refusal = "; ".join(r.reason for r in plan.refusals) or None
    message = describe_plan(plan, base)
    writes |= _own(ctx, lead, status_text(referral), refusal)
    if ctx.dry_run:
        return Outcome(
            key,
            link.id,
            SYNCED if operations or writes else UNCHANGED,
            to_salesforce=dict(plan.to_salesforce),
            to_partner_center=dict(plan.to_partner_center),
            message=f"dry run: {message}" if message else None,
            api_calls=calls.total,
            dry_run=True,
        )
    if operations:
        calls.partner_center += 1
        updated = await ctx.partner_center.patch(
            ReferralId(referral.id or link.referral_id or ""), operations, etag=referral.e_tag
        )
        referral = updated or referral
    if message and writes:
        writes[ctx.fields.audit] = _audit(ctx, link, message)
    if writes:
        calls.salesforce += 1
        modified = lead.get("LastModifiedDate")
        await ctx.salesforce.update(
            LEAD,
            str(lead["Id"]),
            writes,
            if_unmodified_since=parse_datetime(modified) if isinstance(modified, str) else None,
        )
    status = SyncStatus.ERROR if refusal else SyncStatus.SYNCED
    changes: dict[str, Any] = {}
    if operations or writes or link.sync_status != status or link.last_error != refusal:
        changes = {"sync_status": status, "last_error": refusal, "last_synced_at": ctx.clock.now()}
    new_base = stamped(plan.new_base, referral)  # as our write left it, else as read
    changed_base = base is None or dict(base) != new_base
    if changes or changed_base or message:
        done = Record(
            link.id,
            link=changes,
            snapshot=new_base if changed_base else None,
            audit=((message, {"api_calls": calls.total}),) if message else (),
        )
        record(ctx, [done])
    result = ERROR if refusal else (SYNCED if operations or writes else UNCHANGED)
    return Outcome(
        key,
        link.id,
        result,
        to_salesforce=dict(plan.to_salesforce),
        to_partner_center=dict(plan.to_partner_center),
        message=refusal or message,
        api_calls=calls.total,
    )


def _own(
    ctx: SyncContext, record: Mapping[str, Any], status: str | None, error: str | None
) -> dict[str, Any]:
    """Cosell's status fields on a record (Lead or opportunity) that differ from what was read."""
    wanted: dict[str, Any] = {
        ctx.fields.sync_status: SyncStatus.ERROR.value if error else SyncStatus.SYNCED.value,
        ctx.fields.sync_error: error[:SYNC_ERROR_LENGTH] if error else None,
    }
    if status is not None:
        wanted[ctx.fields.partner_center_status] = status
    return {k: v for k, v in wanted.items() if differs(record.get(k), v)}


async def _close(
    ctx: SyncContext,
    key: Key,
    link: Link,
    referral: Referral,
    lead: dict[str, Any],
    calls: ApiCalls,
    *,
    by_seller: bool = False,
) -> Outcome:
    """The referral is closed (declined, expired): the Lead gets the `declined` status."""
    statuses = ctx.mapping.lead.statuses if ctx.mapping.lead else None
    writes = _own(ctx, lead, status_text(referral), None)
    if statuses is not None and lead.get("Status") != statuses.declined:
        writes["Status"] = statuses.declined
    if not writes and link.sync_status == SyncStatus.SYNCED:
        return Outcome(key, link.id, UNCHANGED, api_calls=calls.total)
    message = (
        "declined the referral from the Lead (status)"
        if by_seller
        else f"the referral is {status_text(referral)} in Partner Center: closed the Lead"
    )
    if ctx.dry_run:
        return _dry(key, link, message, calls)
    writes[ctx.fields.audit] = _audit(ctx, link, message)
    calls.salesforce += 1
    await ctx.salesforce.update(LEAD, str(lead["Id"]), writes)
    record(ctx, [synced_record(link, message, api_calls=calls.total, now=ctx.clock.now())])
    return Outcome(key, link.id, SYNCED, message=message, api_calls=calls.total)


# -- conversion -----------------------------------------------------------------------------


async def _match(
    ctx: SyncContext, lead: dict[str, Any], calls: ApiCalls
) -> tuple[str | None, str | None]:
    """The account (Name + billing postal code + country) and contact (email) to convert into."""
    company = lead.get("Company")
    if not company:
        return None, None
    soql = (
        "SELECT Id, Name, BillingPostalCode, BillingCountry FROM Account "  # noqa: S608 - soql_quote
        f"WHERE Name = {soql_quote(str(company))} ORDER BY CreatedDate"
    )
    calls.salesforce += 1
    wanted = lead_account_match(company, lead.get("PostalCode"), lead.get("Country"))
    account = None
    async for row in ctx.salesforce.query(soql):
        if (
            account is None
            and lead_account_match(
                row.get("Name"), row.get("BillingPostalCode"), row.get("BillingCountry")
            )
            == wanted
        ):
            account = str(row["Id"])
    email = lead.get("Email")
    if account is None or not email:
        return account, None
    soql = (
        "SELECT Id FROM Contact "  # noqa: S608 - soql_quote
        f"WHERE AccountId = {soql_quote(account)} AND Email = {soql_quote(str(email))} "
        "ORDER BY CreatedDate LIMIT 1"
    )
    calls.salesforce += 1
    contact = [str(row["Id"]) async for row in ctx.salesforce.query(soql)]
    return account, contact[0] if contact else None


async def convert(
    ctx: SyncContext,
    key: Key,
    link: Link,
    referral: Referral,
    lead: dict[str, Any],
    calls: ApiCalls,
) -> Outcome:
    """Convert the Lead of an accepted referral and move the link to the new opportunity.

    Args:
        ctx: the context.
        key: the key being reconciled.
        link: the Lead's link.
        referral: the referral (Active).
        lead: the Lead as read (not converted).
        calls: counts API calls.

    Returns:
        The outcome (`created`; `error` when Salesforce refuses the conversion).
    """
    if ctx.dry_run:
        return _dry(key, link, f"convert Lead {lead['Id']} into an opportunity", calls)
    statuses = ctx.mapping.lead.statuses if ctx.mapping.lead else None
    converted = statuses.converted if statuses else "Closed - Converted"
    account_id, contact_id = await _match(ctx, lead, calls)
    calls.salesforce += 1
    try:
        result = await ctx.salesforce.convert_lead(
            LeadConvert(
                str(lead["Id"]),
                converted,
                account_id=account_id,
                contact_id=contact_id,
                opportunity_name=referral.name,
            )
        )
    except sf_errors.TerminalError as exc:
        raise_if_global(exc)
        again = await read_lead(ctx, calls, str(lead["Id"]))
        if again is not None and again.get("IsConverted"):  # converted before: adopt it
            return await _adopt(ctx, key, link, referral, again, calls)
        message = (
            f"cannot convert Lead {lead['Id']}: {exc}. Check the lead section's converted "
            "status and the org's conversion settings; it is retried on the next change"
        )
        return await park(ctx, key, link, message, calls, record=lead, sobject=LEAD)
    ctx.failpoint("after-lead-convert")
    done = {
        **lead,
        "ConvertedAccountId": result.account_id,
        "ConvertedContactId": result.contact_id,
        "ConvertedOpportunityId": result.opportunity_id,
    }
    return await _adopt(ctx, key, link, referral, done, calls)


async def _adopt(
    ctx: SyncContext,
    key: Key,
    link: Link,
    referral: Referral,
    lead: dict[str, Any],
    calls: ApiCalls,
) -> Outcome:
    """Link the converted Lead's opportunity, giving it the referral's values and our fields."""
    opportunity_id = lead.get("ConvertedOpportunityId")
    if not opportunity_id:
        message = (
            f"Lead {lead['Id']} was converted without an opportunity, so the referral has no "
            "deal to sync with: create an opportunity for it and set its Referral Identifier "
            f"to {link.referral_id}"
        )
        return await park(ctx, key, link, message, calls, sobject=LEAD)
    assert referral.id is not None
    try:
        pc_values = partner_center_values(ctx.mapping, referral_json(referral))
        records = new_salesforce_records(
            ctx.mapping,
            pc_values,
            referral_id=referral.id,
            referral_link=ctx.referral_link(referral.id),
            today=ctx.clock.now().date(),
        )
    except ValueMappingError as exc:
        return await park(
            ctx, key, link, f"a value cannot be converted: {exc}", calls, sobject=LEAD
        )
    rows = await read_opportunities(ctx, calls, ids=[str(opportunity_id)])
    message = (
        f"converted Lead {lead['Id']} into opportunity {opportunity_id} (account "
        f"{lead.get('ConvertedAccountId')}, contact {lead.get('ConvertedContactId')}): the "
        f"referral is {status_text(referral)}"
    )
    fields = {
        **(records.get(OPPORTUNITY) or {}),
        ctx.fields.partner_center_status: status_text(referral),
        ctx.fields.sync_status: SyncStatus.SYNCED.value,
        ctx.fields.sync_error: None,
        ctx.fields.audit: _audit(ctx, link, message),
    }
    fields.pop("Id", None)
    calls.salesforce += 1
    try:
        await ctx.salesforce.update(OPPORTUNITY, str(opportunity_id), fields)
    except sf_errors.TerminalError as exc:
        raise_if_global(exc)
        problem = f"converted Lead {lead['Id']}, but opportunity {opportunity_id} refused the referral's values: {exc}"
        return await park(ctx, key, link, problem, calls, sobject=LEAD)
    row = {**(rows[0] if rows else {}), **fields}
    sf_values = salesforce_values(ctx.mapping, records_of(row))
    converted = synced_record(link, message, api_calls=calls.total, now=ctx.clock.now())
    converted = replace(
        converted,
        link={**converted.link, "sobject": OPPORTUNITY, "record_id": str(opportunity_id)},
        snapshot=agreed_values(pc_values, sf_values),
    )
    link = ctx.store.record([converted])[0]
    return Outcome(
        key, link.id, CREATED, to_salesforce=pc_values, message=message, api_calls=calls.total
    )


__all__ = [
    "convert",
    "create_lead",
    "is_lead_referral",
    "lead_body",
    "lead_fields",
    "read_lead",
    "reconcile_lead",
    "reconcile_record_key",
    "wants_lead",
]
