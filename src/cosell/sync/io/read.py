"""Reading both sides of a link: the referral, and the opportunity with its account.

One reconcile reads one referral (`GET /referrals/{id}`, which carries the eTag the write
will send in `If-Match`) and one opportunity by a single SOQL query whose SELECT list is the
mapping's `salesforce_query_fields` plus cosell's own identity and status fields, and whose
child subqueries bring its solutions, contact roles and team members (`collections.py`). The
opportunity's account comes in the same row through the `Account.<field>` relationship paths,
so the account costs no call of its own. A batch reads up to 200 opportunities with one
`IN` query, and its referrals with `id eq ... or ...` list filters (`REFERRAL_FILTER_CHUNK`
ids per list call).

Every call made here is counted in the caller's `ApiCalls`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cosell.mapping.model import OPPORTUNITY
from cosell.partnercenter.client import odata_string
from cosell.partnercenter.models import Referral, ReferralId
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.values import soql_in
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.org_access import raise_if_org_wide
from cosell.sync.plan.limits import BATCH_SIZE
from cosell.sync.plan.org_refusals import INVALID_FIELD, refused_object
from cosell.sync.plan.sides import opportunity_fields, subqueries

# Ids per Partner Center list call when a batch reads referrals by id: 50 GUID comparisons
# keep the URL near 3 KB, inside every proxy's limit.
REFERRAL_FILTER_CHUNK = 50
SOQL_IN_CHUNK = BATCH_SIZE  # ids per SOQL IN list: a batch is one query


"""What a contact role's Contact and a team member's User give of the person (names are API
names of the mapping's objects; the relationship names are the section's)."""

"""What the reconcile reads on the opportunity besides what the mapping asks for (which
includes cosell's own identity and status fields)."""


async def read_opportunities(
    ctx: SyncContext,
    calls: ApiCalls,
    *,
    ids: Iterable[str] = (),
    referral_ids: Iterable[str] = (),
    with_children: bool = False,
) -> list[dict[str, Any]]:
    """Opportunities by id or by `Referral_Identifier__c`, with one SOQL query per 200 values.

    Args:
        ctx: the context.
        calls: counts the queries.
        ids: opportunity ids.
        referral_ids: referral ids, matched on `Referral_Identifier__c`.
        with_children: also read the Microsoft solutions, contact roles and team members
            (subqueries, same call): the collections a reconcile merges, which a referral
            created from the opportunity carries.

    Returns:
        The rows found (deleted ones are not), in no particular order.

    Raises:
        OrgFieldAccessError: field-level security hides a field of the query from the
            integration user (every read would fail the same way).
    """
    id_list = sorted(set(ids))
    ref_list = sorted(set(referral_ids))
    select = ", ".join(opportunity_fields(ctx.mapping))
    if with_children:
        select += ", " + ", ".join(subqueries(ctx.mapping.collections))
    rows: list[dict[str, Any]] = []
    for start in range(0, max(len(id_list), len(ref_list)), SOQL_IN_CHUNK):
        clauses = []
        if id_list[start : start + SOQL_IN_CHUNK]:
            clauses.append(f"Id IN {soql_in(id_list[start : start + SOQL_IN_CHUNK])}")
        if ref_list[start : start + SOQL_IN_CHUNK]:
            chunk = ref_list[start : start + SOQL_IN_CHUNK]
            clauses.append(f"{ctx.fields.referral_id} IN {soql_in(chunk)}")
        soql = f"SELECT {select} FROM {OPPORTUNITY} WHERE {' OR '.join(clauses)}"  # noqa: S608 - soql_in
        calls.salesforce += 1
        try:
            rows.extend([row async for row in ctx.salesforce.query(soql)])
        except sf_errors.TerminalError as exc:
            if (exc.error_code or "").upper() == INVALID_FIELD:  # FLS hides a mapped field
                await raise_if_org_wide(ctx, exc, refused_object(exc, OPPORTUNITY))
            raise
    return rows


async def read_referral(ctx: SyncContext, calls: ApiCalls, referral_id: str) -> Referral:
    """One referral by id, with its eTag.

    Raises:
        NotFoundError: no such referral, or not visible to this user.
    """
    calls.partner_center += 1
    return await ctx.partner_center.get(ReferralId(referral_id))


async def read_referrals(
    ctx: SyncContext, calls: ApiCalls, referral_ids: Sequence[str]
) -> dict[str, Referral]:
    """Referrals by id with `$filter=id eq ... or ...`, `REFERRAL_FILTER_CHUNK` ids a call.

    Returns:
        The referrals found, by id; one that is missing was not found or is not visible.
    """
    found: dict[str, Referral] = {}
    unique = sorted(set(referral_ids))
    for start in range(0, len(unique), REFERRAL_FILTER_CHUNK):
        chunk = unique[start : start + REFERRAL_FILTER_CHUNK]
        query = " or ".join(f"id eq {odata_string(rid)}" for rid in chunk)
        calls.partner_center += 1
        page = await ctx.partner_center.list_page(filter=query, top=len(chunk))
        for referral in page.referrals:
            if referral.id is not None:
                found[referral.id] = referral
        if page.next_link is not None:
            # A server that pages below $top: follow it, still within this chunk's ids.
            async for referral in _rest(ctx, calls, page.next_link):
                if referral.id is not None:
                    found[referral.id] = referral
    return found


async def _rest(ctx: SyncContext, calls: ApiCalls, next_link: str | None) -> Any:
    seen: set[str] = set()
    while next_link is not None and next_link not in seen:
        seen.add(next_link)
        calls.partner_center += 1
        page = await ctx.partner_center.list_page(next_link=next_link)
        for referral in page.referrals:
            yield referral
        next_link = page.next_link
