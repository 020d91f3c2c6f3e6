"""What a reconcile leaves in the store, as one `Record` (stored by `run.record`, atomically)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cosell.store.types import Link, NewConflict, Record, SyncStatus, referral_key
from cosell.sync.plan.audit import plan_details
from cosell.sync.plan.decide import Decision, sync_status


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
    if wrote or link.sync_status != status or link.last_error != shown:
        changes = {"sync_status": status, "last_error": shown}
        if status == SyncStatus.SYNCED:
            changes["last_synced_at"] = now
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


def parked_record(link: Link, message: str, *, api_calls: int | None = None) -> Record | None:
    """The record of parking a link: Error with the message, and an audit entry (None: already so)."""
    if link.sync_status == SyncStatus.ERROR and link.last_error == message:
        return None
    details = None if api_calls is None else {"api_calls": api_calls}
    return Record(
        link.id,
        link={"sync_status": SyncStatus.ERROR, "last_error": message},
        audit=((f"error: {message}", details),),
    )


def synced_record(link: Link, message: str, *, api_calls: int, now: datetime) -> Record:
    """The record of a create or a Lead reconcile that wrote: Synced, with its audit entry."""
    return Record(
        link.id,
        link={"sync_status": SyncStatus.SYNCED, "last_error": None, "last_synced_at": now},
        audit=((message, {"api_calls": api_calls}),),
    )
