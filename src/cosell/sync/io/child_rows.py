"""Collections: the I/O of the three-way set merge (`plan/collections.py`): resolving people to Salesforce ids, sending the child rows in composite calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cosell.mapping.types import Value
from cosell.partnercenter.models import Referral
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.client import CompositeSubrequest
from cosell.salesforce.values import soql_in, soql_quote
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.plan.limits import COMPOSITE_LIMIT
from cosell.sync.plan.sets import (
    SOLUTIONS,
    TEAM,
    TEAM_ACCESS,
    UNMATCHED,
    ChildWrites,
    Resolved,
    base_key,
    partner_center_items,
    person_key,
    show_item,
    solution_fields,
    stored_set,
    subrequests,
)
from cosell.sync.plan.sides import Sides


async def resolve(ctx: SyncContext, sides: Sides, writes: ChildWrites, calls: ApiCalls) -> Resolved:
    """Look up the Contacts and active Users of the people to add (one query each, if any).

    Args:
        ctx: the context.
        sides: both sides as read (the opportunity's account).
        writes: the child writes planned.
        calls: counts the queries.

    Returns:
        The writes with ids, and the team members that match no active user.
    """
    if writes.resolved:
        return Resolved(writes, frozenset(), ())
    contact_ids: dict[str, str] = {}
    emails = sorted({k for c in writes.contacts if (k := person_key(c)) and "@" in k})
    account_id = sides.opportunity.get("AccountId")
    if emails and account_id:
        calls.salesforce += 1
        soql = (
            "SELECT Id, Email FROM Contact WHERE AccountId = "  # noqa: S608 - soql_in
            f"{soql_quote(str(account_id))} AND Email IN {soql_in(emails)} ORDER BY CreatedDate"
        )
        async for row in ctx.salesforce.query(soql):
            contact_ids.setdefault(str(row["Email"]).lower(), str(row["Id"]))
    user_ids: dict[str, str] = {}
    wanted = sorted({k for m in writes.team if (k := person_key(m)) and "@" in k})
    if wanted:
        calls.salesforce += 1
        soql = (
            "SELECT Id, Email FROM User WHERE IsActive = true AND "  # noqa: S608 - soql_in
            f"Email IN {soql_in(wanted)} ORDER BY CreatedDate"
        )
        async for row in ctx.salesforce.query(soql):
            user_ids.setdefault(str(row["Email"]).lower(), str(row["Id"]))
    team = tuple(m for m in writes.team if person_key(m) in user_ids)
    missing = [m for m in writes.team if person_key(m) not in user_ids]
    messages = tuple(
        f"team member {show_item(m)} from Partner Center is not an active Salesforce user: not added "
        "to the opportunity team (add the user in Salesforce, then add them to the team)"
        for m in missing
    )
    resolved = replace(writes, team=team, contact_ids=contact_ids, user_ids=user_ids, resolved=True)
    return Resolved(resolved, frozenset(k for m in missing if (k := person_key(m))), messages)


async def write(
    ctx: SyncContext,
    sides: Sides,
    opportunity_fields: Mapping[str, Any],
    writes: ChildWrites,
    calls: ApiCalls,
) -> None:
    """Write the opportunity's fields and its child rows: one composite call (all or none).

    More than `COMPOSITE_LIMIT` subrequests (dozens of items changed at once) go in several
    calls, the opportunity's update in the first; a new contact and its role share a call.

    Raises:
        ConflictError: the opportunity changed since it was read (nothing was written).
        TerminalError: Salesforce refused a subrequest (nothing of that call was written).
    """
    chunk: list[CompositeSubrequest] = []
    for group in subrequests(ctx.mapping.collections, sides, opportunity_fields, writes):
        if chunk and len(chunk) + len(group) > COMPOSITE_LIMIT:
            await _send(ctx, chunk, calls)
            chunk = []
        chunk.extend(group)
    if chunk:
        await _send(ctx, chunk, calls)


async def _send(ctx: SyncContext, chunk: list[CompositeSubrequest], calls: ApiCalls) -> None:
    calls.salesforce += 1
    results = await ctx.salesforce.composite(chunk, all_or_none=True)
    errors = [r.error for r in results if r.error is not None and not _knock_on(r.body)]
    if errors:
        conflict = [e for e in errors if isinstance(e, sf_errors.ConflictError)]
        raise (conflict or errors)[0]


def _knock_on(body: Any) -> bool:
    """Whether a failed subrequest only reports another one's failure (all or none)."""
    codes = (
        {e.get("errorCode") for e in body if isinstance(e, dict)}
        if isinstance(body, list)
        else set()
    )
    return bool(codes) and codes <= {"PROCESSING_HALTED", "ALL_OR_NONE_OPERATION_ROLLED_BACK"}


async def create_children(
    ctx: SyncContext,
    created: Sequence[tuple[str, Referral]],
    calls: ApiCalls,
) -> dict[str, dict[str, Value]]:
    """The solutions and team members of opportunities just created from referrals.

    One query finds the active users of every team member (when there are any), one
    collections call creates the `Microsoft_Solution__c` rows and one the
    `OpportunityTeamMember` rows (each only when there are some). The customer contacts are
    made by the create itself (`creates.create_opportunities`).

    Args:
        ctx: the context.
        created: (opportunity id, referral) of opportunities created by this call (an
            opportunity that existed already is left to its first reconcile, which adds what
            it lacks without duplicating what it has).
        calls: counts API calls.

    Returns:
        Per opportunity id, the base entries of what both sides now hold (`@solutions`,
        `@team`, `@team_unmatched`), for the link's first base.
    """
    if not created:
        return {}
    spec = ctx.mapping.collections
    items = {
        opp_id: partner_center_items(referral.model_dump(by_alias=True, mode="json"))
        for opp_id, referral in created
    }
    emails = sorted({k for found in items.values() for k in found[TEAM] if "@" in k})
    users: dict[str, str] = {}
    if emails:
        calls.salesforce += 1
        soql = (
            "SELECT Id, Email FROM User WHERE IsActive = true AND "  # noqa: S608 - soql_in
            f"Email IN {soql_in(emails)} ORDER BY CreatedDate"
        )
        async for row in ctx.salesforce.query(soql):
            users.setdefault(str(row["Email"]).lower(), str(row["Id"]))
    solutions = [
        (opp_id, key, {**solution_fields(spec, item), spec.solutions.parent: opp_id})
        for opp_id, found in items.items()
        for key, item in found[SOLUTIONS].items()
    ]
    members = [
        (
            opp_id,
            key,
            {"OpportunityId": opp_id, "UserId": users[key], "OpportunityAccessLevel": TEAM_ACCESS},
        )
        for opp_id, found in items.items()
        for key in found[TEAM]
        if key in users
    ]
    saved: dict[str, dict[str, set[str]]] = {
        opp_id: {SOLUTIONS: set(), TEAM: set()} for opp_id in items
    }
    for collection, sobject, rows in (
        (SOLUTIONS, spec.solutions.object, solutions),
        (TEAM, spec.team_members.object, members),
    ):
        if not rows:
            continue
        calls.salesforce += 1
        results = await ctx.salesforce.create_many(sobject, [body for _, _, body in rows])
        for (opp_id, key, _), result in zip(rows, results, strict=True):
            if result.success:
                saved[opp_id][collection].add(key)
    bases: dict[str, dict[str, Value]] = {}
    for opp_id, found in items.items():
        unmatched = frozenset(k for k in found[TEAM] if k not in users)
        base: dict[str, Value] = {
            base_key(SOLUTIONS): stored_set(saved[opp_id][SOLUTIONS]),
            base_key(TEAM): stored_set(saved[opp_id][TEAM] | unmatched),
        }
        if unmatched:
            base[base_key(UNMATCHED)] = stored_set(unmatched)
        bases[opp_id] = base
    return bases
