"""What a reconcile leaves in the store, as one `Record` (stored by `run.record`, atomically)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cosell.store.types import Link, NewConflict, Record, SyncStatus, referral_key
from cosell.sync.plan.audit import plan_details
from cosell.sync.plan.decide import Decision, sync_status
from cosell.sync.plan.retry import schedule_after_park


def record_of(link: Link, decision: Decision, *, api_calls: int, now: datetime) -> Record | None:
    """The record of a reconcile whose writes succeeded: base, conflicts, audit, wake-up, link.

    Args:
        link: the link as it was read.
        decision: the decision carried out.
        api_calls: the calls the reconcile made (kept with its audit entry).
        now: the time of `last_synced_at`.

    Returns:
        The record, or None when there is nothing to record (nothing changed, nothing new).
    """
    plan = decision.plan
    changed_base = decision.base is None or dict(decision.base) != dict(plan.new_base)
    conflicts = tuple(
        NewConflict(
            field=c.field,
            partner_center=c.partner_center,
            salesforce=c.salesforce,
            base=c.base,
            winner=str(c.winner),
        )
        for c in plan.conflicts
    )
    audit: tuple[tuple[str, dict[str, Any] | None], ...] = ()
    if decision.message:
        audit = ((decision.message, {**plan_details(plan), "api_calls": api_calls}),)
    wakeup = None
    if decision.wake_at is not None and link.referral_id is not None:
        wakeup = (referral_key(link.referral_id), decision.wake_at)
    status = sync_status(decision.refusal, decision.waiting)
    shown = decision.refusal or decision.waiting
    wrote = bool(decision.operations) or decision.writes_salesforce
    changes: dict[str, Any] = {}
    # A refusal waits for the seller's change (child records and the account included): no
    # scheduled retry is left from an earlier park.
    stale_retry = status == SyncStatus.ERROR and link.retry_at is not None
    if wrote or link.sync_status != status or link.last_error != shown or stale_retry:
        changes = {"sync_status": status, "last_error": shown}
        if status == SyncStatus.SYNCED:
            changes["last_synced_at"] = now
        if stale_retry:
            changes.update(retries=0, retry_at=None)
    if not (changes or changed_base or conflicts or audit or wakeup):
        return None
    return Record(
        link.id,
        link=changes,
        snapshot=dict(plan.new_base) if changed_base else None,
        conflicts=conflicts,
        audit=audit,
        wakeup=wakeup,
    )


def parked_record(
    link: Link,
    message: str,
    *,
    now: datetime,
    lasting: bool = False,
    api_calls: int | None = None,
) -> Record | None:
    """The record of parking a link: Error with the message, its retry schedule, an audit entry.

    Args:
        link: the link as it was read.
        message: what is wrong and what to do.
        now: the time of the park (the schedule counts from it).
        lasting: the reason cannot go away without a change: no scheduled retry (`retry.py`).
        api_calls: the calls the reconcile made, kept with the audit entry.

    Returns:
        The record, or None when the link is parked so already (same message, same schedule).
    """
    schedule = schedule_after_park(link, now=now, lasting=lasting)
    same_message = link.sync_status == SyncStatus.ERROR and link.last_error == message
    same_schedule = (link.retries, link.retry_at) == (schedule.retries, schedule.retry_at)
    if same_message and same_schedule:
        return None
    details: dict[str, Any] = {} if api_calls is None else {"api_calls": api_calls}
    if schedule.retry_at is not None:
        details["retry_at"] = schedule.retry_at.isoformat()
        details["retries"] = schedule.retries
    audit: tuple[tuple[str, dict[str, Any] | None], ...] = ()
    if not same_message:
        audit = ((f"error: {message}", details or None),)
    return Record(
        link.id,
        link={
            "sync_status": SyncStatus.ERROR,
            "last_error": message,
            "retries": schedule.retries,
            "retry_at": schedule.retry_at,
        },
        audit=audit,
    )


def synced_record(link: Link, message: str, *, api_calls: int, now: datetime) -> Record:
    """The record of a create or a Lead reconcile that wrote: Synced, with its audit entry."""
    return Record(
        link.id,
        link={"sync_status": SyncStatus.SYNCED, "last_error": None, "last_synced_at": now},
        audit=((message, {"api_calls": api_calls}),),
    )


def retry_requested_record(
    link: Link, message: str, *, now: datetime, details: dict[str, Any]
) -> Record:
    """The record of an admin's retry: the park's backoff starts over and is due now, audited.

    The link keeps its status until the reconcile says otherwise (the status is the truth of
    the last reconcile); a link that is not parked only gets the audit entry.

    Args:
        link: the link.
        message: the audit entry (who asked, how).
        now: the time of the request (the retry is due then).
        details: the audit entry's details (`by`, `action`).
    """
    parked = link.sync_status == SyncStatus.ERROR
    return Record(
        link.id,
        link={"retries": 0, "retry_at": now} if parked else {},
        audit=((message, details),),
    )
