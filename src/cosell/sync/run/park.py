"""Park: the one way a key's problem is put on its link (and on its Salesforce record).

Only a deal's own problem is parked: `park` first asks `plan.scope` whose problem the error
is, and raises `SideFailureError` for the connection's (credentials, permissions, a mapping that
does not fit the org), which the engine turns into that side's open circuit instead.

A parked link shows sync status Error with the message on the dashboard, in `cosell status`
and on the record (`Partner_Center_Sync_Status__c`, `Partner_Center_Sync_Error__c`,
`Audit__c`). A reason that can go away gets the link's own retry schedule (`plan.retry`:
backoff up to an hour, the time shown after the message on the record); a lasting one
(`lasting=True`) waits for the next change of either side, or the sweep. Only what is not
already so is written: meeting the same error again before the retry is due writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from cosell.mapping.model import OPPORTUNITY
from cosell.salesforce import errors as sf_errors
from cosell.store import Store
from cosell.store.types import Key, Link
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.links import link_of
from cosell.sync.plan.audit import AUDIT_ENTRIES, render_audit_field
from cosell.sync.plan.decide import error_fields, paused_fields
from cosell.sync.plan.errors import SideFailureError
from cosell.sync.plan.keys import KeyRef
from cosell.sync.plan.outcome import ERROR, Outcome
from cosell.sync.plan.record import parked_record
from cosell.sync.plan.retry import shown_message
from cosell.sync.plan.scope import scope_of
from cosell.sync.plan.sides import SYNC_ERROR_LENGTH

log = structlog.get_logger(__name__)


def raise_if_global(error: BaseException | None) -> None:
    """Raise `SideFailureError` when `error` is the connection's problem, not the deal's.

    Raises:
        SideFailureError: `error` is GLOBAL (`plan.scope`): the engine pauses its side.
    """
    if error is None:
        return
    scope = scope_of(error)
    if scope.is_global:
        raise SideFailureError(scope) from error


def park_link(
    store: Store,
    link: Link,
    message: str,
    *,
    now: datetime,
    lasting: bool = False,
    api_calls: int | None = None,
) -> Link:
    """The store's part of parking: the link in Error with the message, its retry schedule, audit.

    One store transaction, and none when the link is parked so already.

    Args:
        store: the store.
        link: the link.
        message: what is wrong and what to do.
        now: the time of the park.
        lasting: the reason cannot go away without a change (no scheduled retry).
        api_calls: the calls the reconcile made, kept with the audit entry (None: not known).

    Returns:
        The link as parked.
    """
    parked = parked_record(link, message, now=now, lasting=lasting, api_calls=api_calls)
    if parked is None:
        return link
    return store.record([parked])[0]


async def park(
    ctx: SyncContext,
    key: Key,
    link: Link,
    message: str,
    calls: ApiCalls,
    *,
    record: Mapping[str, Any] | None = None,
    sobject: str = OPPORTUNITY,
    error: BaseException | None = None,
    lasting: bool = False,
) -> Outcome:
    """Park a problem of this deal on the link and its record; it is retried by itself or on change.

    Args:
        ctx: the context.
        key: the key reconciled.
        link: the link.
        message: what is wrong and what to do, for the seller.
        calls: counts API calls.
        record: the Salesforce record as read (an opportunity or a Lead), when it could be
            read; a converted Lead is not written.
        sobject: the record's SObject.
        error: the error behind the message, when there is one: a GLOBAL one is raised
            instead of parking (`raise_if_global`).
        lasting: the reason cannot go away without a change of the record or the mapping: no
            scheduled retry (`plan.retry`).

    Returns:
        An `error` outcome.

    Raises:
        SideFailureError: `error` is the connection's problem; nothing was parked.
    """
    raise_if_global(error)
    log.warning("sync.parked", key=key, link=link.id, error=message)
    if ctx.dry_run:
        return Outcome(key, link.id, ERROR, message=f"dry run: {message}", api_calls=calls.total)
    parked = park_link(
        ctx.store, link, message, now=ctx.clock.now(), lasting=lasting, api_calls=calls.total
    )
    if record is not None and record.get("Id") and not record.get("IsConverted"):
        shown = shown_message(message, parked.retry_at, limit=SYNC_ERROR_LENGTH)
        fields = error_fields(ctx.fields, record, shown)
        if fields:
            fields[ctx.fields.audit] = render_audit_field(
                [], ctx.store.audit(link.id, limit=AUDIT_ENTRIES)
            )
            calls.salesforce += 1
            try:  # only our own status fields: no seller data can be overwritten, no precondition
                await ctx.salesforce.update(sobject, str(record["Id"]), fields)
            except sf_errors.TerminalError as exc:
                log.warning("sync.park.status_not_written", key=key, error=str(exc))
    return Outcome(key, link.id, ERROR, message=message, api_calls=calls.total)


_REFUSAL_TEXT = 120  # the start of a refusal's message: what every deal parked with it contains


def retry_after_sign_in(store: Store, refusal: Exception) -> list[Link]:
    """Make the retry of the deals parked because of `refusal` due now (its side signs in again).

    A refused sign-in parks every deal it stops with the refusal's own message (the gate
    repeats one error), so those deals are found by it; their backoff starts over.

    Args:
        store: the store.
        refusal: the refusal that ended (`cosell.refusal.RefusalGate`).

    Returns:
        The links whose retry is now due.
    """
    text = str(refusal).strip()[:_REFUSAL_TEXT]
    if not text:
        return []
    links = store.retry_parked(containing=text)
    if links:
        log.info("sync.sign_in_restored", parked=len(links), error=text)
    return links


async def show_paused(ctx: SyncContext, key: Key) -> bool:
    """Show a deal paused by hand on its Salesforce record: sync status Paused, who and when.

    Called for a key held because its deal is paused (`cosell pause KEY`, the console). Only
    cosell's own status fields are written, and only when they do not say so already (one read,
    at most one write; a second call writes nothing, so the write's own change event ends
    here). Nothing is written while all sync is paused (nothing may be), in a dry run, or for a
    deal with no record. The next reconcile after `cosell resume` writes the status it computes.

    Returns:
        True when the record was written.
    """
    if ctx.dry_run:
        return False
    pauses = await asyncio.to_thread(ctx.store.pauses)  # off the loop, as the engine's reads
    if any(p.target is None for p in pauses):
        return False
    link = await asyncio.to_thread(link_of, ctx.store, KeyRef.parse(key))
    pause = next((p for p in pauses if link is not None and p.target == link.id), None)
    if link is None or pause is None or not link.record_id:
        return False
    names = [ctx.fields.sync_status, ctx.fields.sync_error]
    try:
        record = await ctx.salesforce.get(link.sobject, link.record_id, names)
        fields = paused_fields(
            ctx.fields, record, by=pause.by, since=pause.since, reason=pause.reason
        )
        if fields:
            await ctx.salesforce.update(link.sobject, link.record_id, fields)
    except sf_errors.SalesforceError as exc:  # the deal stays paused; the record says so later
        log.warning("sync.pause.status_not_written", key=key, error=str(exc))
        return False
    if fields:
        log.info("sync.pause.shown_on_record", key=key, link=link.id, by=pause.by)
    return bool(fields)
