"""Preflight: both connections and the mapping checked before anything is synced.

`cosell serve` and `cosell sync` run `preflight` before they touch a link, and the engine's
probe of a side whose circuit is open runs `check_side` for that side (so a side paused for
its mapping resumes only once the mapping fits):

- **Partner Center**: a token, and one referral listed (`$top=1`): the credentials, the
  sign-in and the user's Referrals role are all used.
- **Salesforce**: a session, a describe of every object the mapping names (Opportunity,
  Account, the child objects of its collections, Lead with lead sync), and
  `cosell.mapping.check_mapping` against them: a field the mapping names that the org does not
  have fails here, not on every deal.

A failure is raised as the side's error, or as `SideFailureError` for a mapping that does not
fit; `plan.scope.scope_of` says what it means (GLOBAL for every failure here but a bug).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cosell.mapping import check_mapping
from cosell.mapping.model import ACCOUNT, LEAD, OPPORTUNITY
from cosell.salesforce.errors import NotFoundError
from cosell.sync.io.context import ApiCalls
from cosell.sync.plan.errors import SideFailureError
from cosell.sync.plan.scope import GLOBAL, PARTNER_CENTER, SALESFORCE, SIDES, Scope, scope_of

if TYPE_CHECKING:
    from cosell.salesforce.schema import ObjectDescription
    from cosell.sync.io.context import SyncContext

MAX_PROBLEMS_SHOWN: Final = 3  # a health error names a few; `cosell mapping check` lists all


async def check_side(
    ctx: SyncContext, side: str, calls: ApiCalls | None = None, *, fresh: bool = False
) -> str:
    """Check one side as the sync needs it.

    Args:
        ctx: the sync context (its clients and mapping).
        side: `partner_center` or `salesforce`.
        calls: counts the API calls made (descriptions still cached cost none).
        fresh: describe again rather than trust the cache (a probe: the admin may just have
            deployed the missing field).

    Returns:
        A short description of what passed.

    Raises:
        SideFailureError: the mapping does not fit the org.
        PartnerCenterError, SalesforceError: the side refused or did not answer.
    """
    calls = calls if calls is not None else ApiCalls()
    if side == PARTNER_CENTER:
        calls.partner_center += 1
        await ctx.partner_center.list_page(top=1)
        return "Partner Center: signed in, referrals readable"
    names = [OPPORTUNITY, ACCOUNT]
    names += [c.object for c in ctx.mapping.collections.objects().values()]
    if ctx.lead_sync:
        names.append(LEAD)
    descriptions: dict[str, ObjectDescription] = {}
    cache = ctx.salesforce.describe_cache
    if fresh:
        cache.invalidate()
    for name in dict.fromkeys(names):
        loads = cache.loads
        try:
            descriptions[name] = await ctx.salesforce.describe(name)
        except NotFoundError:
            continue  # the check reports the missing object with its place in the mapping
        finally:
            calls.salesforce += cache.loads - loads
    problems = check_mapping(ctx.mapping, lambda name: descriptions[name], lead_sync=ctx.lead_sync)
    if problems:
        shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        raise SideFailureError(
            Scope(
                GLOBAL,
                side=SALESFORCE,
                cause=f"the mapping does not fit the Salesforce org: {shown}"
                + (f" (and {more} more)" if more > 0 else ""),
                fix="deploy the missing fields or correct the mapping file; "
                "cosell mapping check lists every problem",
            )
        )
    return f"Salesforce: signed in, the mapping fits ({len(ctx.mapping.fields)} fields)"


async def preflight(
    ctx: SyncContext, calls: ApiCalls | None = None, *, fresh: bool = False
) -> list[Scope]:
    """Check both sides; the scope of each failure (empty when both pass).

    Every failure is returned as GLOBAL for its side (a side that does not answer now, or a
    bug in a check, included): nothing is synced on a failed preflight.

    Args:
        ctx: the sync context.
        calls: counts the API calls made.
        fresh: describe again rather than trust the describe cache.
    """
    failures: list[Scope] = []
    for side in SIDES:
        try:
            await check_side(ctx, side, calls, fresh=fresh)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, by its scope
            scope = scope_of(exc)
            if scope.side is None:
                scope = Scope(scope.kind, side=side, cause=scope.cause, fix=scope.fix)
            if scope.kind != GLOBAL:  # unreachable now, or a bug: still the side's problem
                scope = Scope(
                    GLOBAL,
                    side=side,
                    cause=scope.cause,
                    fix=scope.fix or "sync starts by itself when the side answers",
                    throttled=scope.throttled,
                    retry_after=scope.retry_after,
                )
            failures.append(scope)
    return failures
