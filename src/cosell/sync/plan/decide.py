"""Decide: the one decision of a reconcile, made without I/O from both sides and the base.

Every feature adds to the one `Decision` here, before anything is written: the three-way merge
of the mapped fields (`merge.py`, holding `rules.py`), the base's markers (`microsoft.py`), the
collections (`sets.py`), the deadlines (`deadlines.py`), Microsoft's side of the engagement
when the key named it (`microsoft.extend`), and the Partner Center notes history
(`notes_history.py`). The only stage between this and the writes is `io.child_rows.resolve`,
which looks up the Salesforce ids of the people the decision adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from cosell.mapping import Mapping as SyncMapping
from cosell.mapping import (
    partner_center_operations,
    partner_center_values,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping.model import OPPORTUNITY, OpportunityFields
from cosell.mapping.types import STAGE_FIELD, Value
from cosell.partnercenter.models import Referral
from cosell.store.types import Link, SyncStatus
from cosell.sync.plan import automation, deadlines, deal_type, notes_history
from cosell.sync.plan.audit import (
    describe_plan,
)
from cosell.sync.plan.merge import Plan, merge
from cosell.sync.plan.microsoft import (
    MARKER_PREFIX,
    MicrosoftSide,
    Note,
    apply_extension,
    extend,
    keep_markers,
)
from cosell.sync.plan.outcome import (
    CONFLICT,
    REFUSED,
    SYNCED,
    UNCHANGED,
)
from cosell.sync.plan.rules import ReferralState
from cosell.sync.plan.sets import ChildWrites
from cosell.sync.plan.sets import plan as plan_collections
from cosell.sync.plan.sides import SYNC_ERROR_LENGTH, Sides, differs, status_text

SEEN_MARKER = f"{MARKER_PREFIX}partner_center.updated"
"""Reserved base key: the referral's `updatedDateTime` as the reconcile that saved the base
read it. The Partner Center poller does not hand a referral out again at that same stamp (the
change is already in the base); a later change has a later stamp and is handed out."""


def seen_stamp(base: Mapping[str, Value] | None) -> datetime | None:
    """The referral's `updatedDateTime` the base was saved at (None: not known)."""
    text = (base or {}).get(SEEN_MARKER)
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


def stamped(values: Mapping[str, Value], referral: Referral) -> dict[str, Value]:
    """`values` as a base that remembers the referral's stamp as returned or read.

    The stamp is the `updatedDateTime`, else the `createdDateTime`, as the poller lists it: the
    poller does not hand out again a referral a create or a Lead's reconcile has just carried.
    """
    stamp = referral.updated_date_time or referral.created_date_time
    if stamp is None:
        return dict(values)
    return {**values, SEEN_MARKER: stamp.astimezone(UTC).isoformat()}


def with_seen_stamp(plan: Plan, stamp: datetime | None) -> Plan:
    """The plan whose new base remembers the referral's stamp as read (None: kept as it was)."""
    if stamp is None:
        return plan
    return replace(plan, new_base={**plan.new_base, SEEN_MARKER: stamp.astimezone(UTC).isoformat()})


@dataclass(frozen=True)
class Decision:
    """What one reconcile plans for one link, before anything is written.

    Attributes:
        plan: the merge's plan.
        base: the base it was made against (None: first reconcile of the link).
        partner_center: Partner Center's canonical values as read.
        salesforce: Salesforce's canonical values as read.
        operations: the JSON Patch operations for Partner Center.
        salesforce_writes: role → fields for Salesforce (the opportunity's include cosell's
            own status and identity fields; `Audit__c` is added at write time).
        message: the audit message (None: nothing worth an audit entry).
        refusal: the message parked on the link for refused changes, or None.
        children: the opportunity's child rows to write (`collections.py`), or None.
        notice: the message tells the seller something the writes do not show (a team member
            who is no Salesforce user), so `Audit__c` carries it even without other writes.
        waiting: what waits (held changes, the expiry warning: `deadlines.py`), shown with
            sync status Pending when nothing is refused; None when nothing waits.
        wake_at: when to reconcile the key again although nothing changes, or None.
        notes: the ContentNotes to create first (Microsoft's notes, the notes history).
        adopted: the fields the org's automation rewrote after cosell's last write, adopted
            (`automation.adopt`).
    """

    plan: Plan
    base: Mapping[str, Value] | None
    partner_center: Mapping[str, Value]
    salesforce: Mapping[str, Value]
    operations: list[dict[str, Any]]
    salesforce_writes: dict[str, dict[str, Any]]
    message: str | None
    refusal: str | None
    children: ChildWrites | None = None
    notice: bool = False
    waiting: str | None = None
    wake_at: datetime | None = None
    notes: tuple[Note, ...] = ()
    adopted: tuple[str, ...] = ()

    def written(self, stamp: datetime | None) -> Decision:
        """The decision whose base holds the referral's stamp as our Partner Center write left it.

        `stamp`: the `updatedDateTime` the PATCH returned (None: the stamp as read is kept).
        Our write moves the stamp; a base saved with the stamp as read would make the poller
        hand the referral out again for our own write. The PATCH carried `If-Match`, so the
        returned stamp holds no one else's edit; a later edit has a later stamp.
        """
        if not self.operations or stamp is None:
            return self
        return replace(self, plan=with_seen_stamp(self.plan, stamp))

    @property
    def writes_salesforce(self) -> bool:
        """Whether Salesforce gets any write: the records' fields or the child rows."""
        return bool(self.salesforce_writes) or self.children is not None

    @property
    def result(self) -> str:
        """The outcome's result if the writes succeed."""
        if self.plan.refusals:
            return REFUSED
        if self.plan.conflicts:
            return CONFLICT
        if self.operations or self.writes_salesforce:
            return SYNCED
        return UNCHANGED

    @property
    def logs_now(self) -> bool:
        """Whether `Audit__c` must show this reconcile now, not with the next write."""
        return bool(self.message) and bool(
            self.writes_salesforce
            or self.plan.conflicts
            or self.plan.refusals
            or self.notice
            or self.waiting
        )


def own_fields(
    fields: OpportunityFields,
    link: Link,
    opportunity: Mapping[str, Any],
    *,
    referral_link: str | None,
    partner_center_status: str | None,
    error: str | None,
    notice: str | None = None,
) -> dict[str, Any]:
    """Cosell's own opportunity fields that differ from what was read.

    Args:
        fields: cosell's own opportunity fields, as the mapping names them.
        link: the link (its referral id is the identity written back).
        referral_link: the referral's dashboard URL (`Referral_Link__c`), or None.
        opportunity: the opportunity row as read.
        partner_center_status: "Status/Substatus" after this reconcile.
        error: the message to show, or None when the link is in sync.
        notice: what waits (shown with status Pending when there is no error), or None.

    Returns:
        The fields to write (empty when all are as they should be).
    """
    shown = error or notice
    wanted: dict[str, Any] = {
        fields.sync_status: sync_status(error, notice).value,
        fields.sync_error: shown[:SYNC_ERROR_LENGTH] if shown else None,
    }
    if partner_center_status is not None:
        wanted[fields.partner_center_status] = partner_center_status
    if link.referral_id is not None:
        wanted[fields.referral_id] = link.referral_id
        if referral_link is not None:
            wanted[fields.referral_link] = referral_link
    return {name: value for name, value in wanted.items() if differs(opportunity.get(name), value)}


def error_fields(
    fields: OpportunityFields, record: Mapping[str, Any], message: str
) -> dict[str, Any]:
    """Cosell's status fields of a parked record (opportunity or Lead) that differ from it."""
    wanted = {
        fields.sync_status: SyncStatus.ERROR.value,
        fields.sync_error: message[:SYNC_ERROR_LENGTH],
    }
    return {name: value for name, value in wanted.items() if differs(record.get(name), value)}


PAUSED_STATUS: Final = "Paused"
"""`Partner_Center_Sync_Status__c` of a deal paused by hand (not a link status: the link keeps
its own; the next reconcile after `cosell resume` writes the status it computes)."""


def paused_fields(
    fields: OpportunityFields,
    record: Mapping[str, Any],
    *,
    by: str,
    since: datetime,
    reason: str | None,
) -> dict[str, Any]:
    """Cosell's status fields of a record whose deal is paused by hand, where they differ."""
    why = f": {reason}" if reason else ""
    message = (
        f"Sync paused by {by} since {since:%Y-%m-%d %H:%M} UTC{why}. Changes wait; "
        "`cosell resume` (or the console) resumes it."
    )
    wanted = {fields.sync_status: PAUSED_STATUS, fields.sync_error: message[:SYNC_ERROR_LENGTH]}
    return {name: value for name, value in wanted.items() if differs(record.get(name), value)}


def sync_status(error: str | None, notice: str | None) -> SyncStatus:
    """The sync status shown: Error with an error, Pending with a notice, else Synced."""
    if error:
        return SyncStatus.ERROR
    return SyncStatus.PENDING if notice else SyncStatus.SYNCED


def decide(
    mapping: SyncMapping,
    link: Link,
    sides: Sides,
    *,
    base: Mapping[str, Value] | None,
    now: datetime,
    referral_link: str | None,
    microsoft_side: MicrosoftSide | None = None,
    keep_notes: bool = True,
    hold_wins: bool = True,
    modified_by_us: bool = False,
) -> Decision:
    """Merge both sides against the link's base and turn everything that changed into writes.

    Args:
        mapping: the field mapping.
        link: the link.
        sides: both sides as read.
        base: the link's base snapshot (None: its first reconcile).
        now: the time rules and deadlines are judged at.
        referral_link: the referral's dashboard URL (`Referral_Link__c`), or None.
        microsoft_side: Microsoft's referral of the engagement, when the key named it: its
            status, MSX id and notes reach the opportunity too.
        keep_notes: add the Partner Center notes history (`cosell plan` shows fields only).
        hold_wins: hold a win until 72 hours after creation (`[sync]
            hold_wins_for_registration`).
        modified_by_us: the opportunity was last modified by cosell's integration user, so a
            field differing from the base was rewritten by the org's automation
            (`automation.adopt`).

    Returns:
        The decision: what to write each way, the new base, the audit message, the notes.
    """
    referral = sides.referral_json
    pc_values = partner_center_values(mapping, referral)
    sf_values = salesforce_values(mapping, sides.records)
    state = ReferralState.of(sides.referral, now=now, hold_wins=hold_wins)
    adoption = automation.adopt(
        mapping.rules(), pc_values, sf_values, base, state, modified_by_us=modified_by_us
    )
    plan = merge(pc_values, adoption.salesforce, base, mapping.rules(), state)
    plan = with_seen_stamp(keep_markers(plan, base), sides.referral.updated_date_time)
    plan = replace(plan, new_base=adoption.new_base(plan.new_base))
    extended = plan_collections(
        mapping.collections, sides.referral, referral, sides.opportunity, base, plan
    )
    plan = deal_type.consistent(extended.plan, mapping.rules(), pc_values, sf_values, base)
    operations = (
        partner_center_operations(mapping, plan.to_partner_center, referral)
        if plan.to_partner_center
        else []
    ) + extended.operations
    writes: dict[str, dict[str, Any]] = {}
    if plan.to_salesforce:
        for role, fields in salesforce_updates(mapping, plan.to_salesforce, sides.records).items():
            if fields:
                writes[role] = dict(fields)
    refusal = "; ".join(r.reason for r in plan.refusals) or None
    stage = plan.to_partner_center.get(STAGE_FIELD)
    predicted = stage if isinstance(stage, str) else status_text(sides.referral)
    warning = deadlines.expiry_warning(sides.referral, now)
    notice = deadlines.notice(plan, warning)
    own = own_fields(
        mapping.opportunity,
        link,
        sides.opportunity,
        referral_link=referral_link,
        partner_center_status=predicted,
        error=refusal,
        notice=notice,
    )
    if own:
        writes[OPPORTUNITY] = {**writes.get(OPPORTUNITY, {}), **own}
    if writes or extended.children is not None:  # the next reconcile knows what we wrote
        settled = automation.with_settled(
            plan.new_base, adoption.salesforce, plan.to_salesforce, mapping.rules()
        )
        plan = replace(plan, new_base=settled)
    # A refusal or a notice already shown on the link is not news: no audit entry for it.
    news = (refusal or notice) != link.last_error
    message = describe_plan(plan if news else replace(plan, refusals=(), held=()), base)
    if warning and news:
        message = "; ".join(m for m in (message, f"warning: {warning}") if m)
    if adoption.message:
        message = "; ".join(m for m in (message, adoption.message) if m)
    decision = Decision(
        plan=plan,
        base=base,
        partner_center=pc_values,
        salesforce=sf_values,
        operations=operations,
        salesforce_writes=writes,
        message="; ".join(m for m in (message, *extended.messages) if m) or None,
        refusal=refusal,
        children=extended.children,
        waiting=None if refusal else notice,
        wake_at=deadlines.wake_at(plan, sides.referral, now),
        adopted=adoption.adopted,
    )
    if microsoft_side is not None:
        decision = _with_microsoft(decision, microsoft_side, sides)
    return _with_history(mapping, decision) if keep_notes else decision


def _with_microsoft(decision: Decision, side: MicrosoftSide, sides: Sides) -> Decision:
    """The decision with Microsoft's changes since the base added, and the notes to create."""
    extension = extend(side, sides.referral, sides.opportunity, decision.base or {})
    plan = replace(decision.plan, new_base={**decision.plan.new_base, **extension.markers})
    writes = {role: dict(fields) for role, fields in decision.salesforce_writes.items()}
    apply_extension(writes, extension)
    message = "; ".join(m for m in (decision.message, *extension.messages) if m) or None
    notes = (*decision.notes, *extension.notes)
    return replace(decision, plan=plan, salesforce_writes=writes, message=message, notes=notes)


def _with_history(mapping: SyncMapping, decision: Decision) -> Decision:
    """The decision and notes with a change of the Partner Center notes kept (`notes_history`)."""
    kept = notes_history.due(mapping, decision.partner_center, decision.salesforce, decision.base)
    if kept is None:
        return decision
    plan = replace(decision.plan, new_base={**decision.plan.new_base, **notes_history.marker(kept)})
    writes = {role: dict(fields) for role, fields in decision.salesforce_writes.items()}
    writes.setdefault(OPPORTUNITY, {})  # so that Audit__c shows it now
    message = "; ".join(m for m in (decision.message, "Partner Center notes kept as a Note") if m)
    notes = (kept, *decision.notes)
    return replace(decision, plan=plan, salesforce_writes=writes, message=message, notes=notes)
