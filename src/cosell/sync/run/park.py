"""Park: the one way a key's problem is put on its link (and on its Salesforce record).

Only a deal's own problem is parked: `park` first asks `plan.scope` whose problem the error
is, and raises `SideFailureError` for the connection's (credentials, permissions, a mapping that
does not fit the org), which the engine turns into that side's open circuit instead.

A parked link shows sync status Error with the message on the dashboard, in `cosell status`
and on the record (`Partner_Center_Sync_Status__c`, `Partner_Center_Sync_Error__c`,
`Audit__c`); the next change of either side, or the sweep, tries it again. Only what is not
already so is written: meeting the same error again writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from cosell.mapping.model import OPPORTUNITY
from cosell.salesforce import errors as sf_errors
from cosell.store import Store
from cosell.store.types import Key, Link
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.plan.audit import AUDIT_ENTRIES, render_audit_field
from cosell.sync.plan.decide import error_fields
from cosell.sync.plan.errors import SideFailureError
from cosell.sync.plan.outcome import ERROR, Outcome
from cosell.sync.plan.record import parked_record
from cosell.sync.plan.scope import scope_of

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


def park_link(store: Store, link: Link, message: str, *, api_calls: int | None = None) -> None:
    """The store's part of parking: the link in Error with the message, and an audit entry.

    One store transaction, and none when the link is parked with this message already.

    Args:
        store: the store.
        link: the link.
        message: what is wrong and what to do.
        api_calls: the calls the reconcile made, kept with the audit entry (None: not known).
    """
    parked = parked_record(link, message, api_calls=api_calls)
    if parked is not None:
        store.record([parked])


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
) -> Outcome:
    """Park a terminal problem on the link and its record; it is retried on the next change.

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

    Returns:
        An `error` outcome.

    Raises:
        SideFailureError: `error` is the connection's problem; nothing was parked.
    """
    raise_if_global(error)
    log.warning("sync.parked", key=key, link=link.id, error=message)
    if ctx.dry_run:
        return Outcome(key, link.id, ERROR, message=f"dry run: {message}", api_calls=calls.total)
    park_link(ctx.store, link, message, api_calls=calls.total)
    if record is not None and record.get("Id") and not record.get("IsConverted"):
        fields = error_fields(ctx.fields, record, message)
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
