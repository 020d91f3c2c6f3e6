"""The three-way merge: Partner Center's values, Salesforce's values and the base → a plan.

`merge` is a pure function (no clock, no I/O, no randomness): everything interesting about
sync is decided here and tested without a server. The reconcile reads both sides, turns them
into canonical values (`cosell.mapping`), calls `merge` with the base snapshot (the values
both sides last agreed on), applies the plan and saves `plan.new_base`.

Per field, exactly DESIGN.md's table ("changed" means "differs from the base"):

    Partner Center   Salesforce           plan
    same             same                 nothing
    changed          same                 write Partner Center's value to Salesforce
    same             changed              write Salesforce's value to Partner Center
    changed          changed, equal       adopt it as the new base
    changed          changed, different   conflict: the owner's value is written to the other
                                          side and becomes the base; a `Conflict` reports both

Decisions the table leaves open:

- **Unknown base.** With no base (the link's first reconcile) or no base value for a field
  (a field added to the mapping), differing values are resolved as a conflict would be, but
  without a `Conflict`: nothing was agreed, so nothing was lost. Equal values become the base.
- **Equal stages.** Salesforce cannot tell every Partner Center state apart: its lost stage
  stands for Closed/Lost, Declined, Expired and Error alike, its on-hold stage for New/Pending
  and New/Received (the mapping's stage table). So stage values are compared by what both
  sides can express (`cosell.sync.plan.rules.same_stage`): Partner Center's "Closed/Declined"
  and Salesforce's "Closed/Lost" agree. Otherwise a declined referral would look changed
  on one side forever. An agreed base that already means the same is kept as stored.
- **Missing values.** A field absent from `partner_center` or `salesforce` is None (unset).
  Fields not in `rules` are ignored, and `new_base` holds rule fields only.
- **Direction.** A change flows only the way the field flows; a change against the direction
  is not written and the base keeps the old value, so the field stays "changed" on that side
  (harmless, it flows nowhere) until the source side changes it. On a one-way field the
  source side is the effective owner (the other side's value cannot be written back to it).
- **The stage.** Partner Center's stage is the referral's real state, so when it changed it
  always flows to Salesforce (the stage's effective owner is Partner Center whenever the
  stage flows to Salesforce). A Salesforce stage change is written only when it is a legal
  move from the referral's current state (`cosell.sync.plan.rules`).
- **Refusals.** Every value to be written to Partner Center is first checked against Partner
  Center's rules (`cosell.sync.plan.rules.refusal_reason`: terminal referral, read-only after
  create, the transition table). A refused value is not written and is reported as a
  `Refusal` whose reason tells the seller what to fix. If Partner Center's value also
  changed (or the base is unknown), that change is real and flows to Salesforce as in a
  conflict Partner Center wins (reported as that `Conflict` only: the seller's value is
  replaced, so there is nothing left to fix). Otherwise nothing is written either way (Partner Center's
  value is not forced onto Salesforce, so cosell never fights the seller) and the base keeps
  its old value, so the refusal is reported again on every reconcile until the seller sets
  the field back or to a value Partner Center accepts.
- **Empty deal type.** An empty Salesforce Deal Type is not a seller's choice (Partner Center
  has no deal without a type; `cosell.sync.plan.rules.unchosen_when_empty`): it is never sent,
  and Partner Center's deal type fills it, in the same Salesforce write as any other field of
  that reconcile (an opportunity linked before the field was mapped, or a cleared picklist).
- **Holds.** A value Partner Center accepts later but not now (`cosell.sync.plan.rules.hold_reason`:
  a field edit while an incoming referral is on hold, a win less than 72 hours after the
  referral was created) is held back: nothing is written either way, the base keeps its old
  value, and a `Held` (not a refusal: nothing is wrong) says why and until when. The change
  stays "changed" on the Salesforce side, so a later merge sends it once the hold is over
  (after acceptance: `Plan.merge_again` asks the reconcile to merge again at once). As for a
  refusal, a real Partner Center change of the same field beats a held one.

Invariants (tested with Hypothesis in tests/unit/sync/test_merge_properties.py):
applying the plan to both sides makes them equal on every two-way field that was not
refused or held, and makes `new_base` equal to them; merging again after applying plans nothing
and keeps the same base; edits of different fields on the two sides are all kept; the plan
does not depend on the order of `rules` or of the value mappings; and, as the sync is
level-triggered, the final state does not depend on when notifications arrived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cosell.mapping.types import STAGE_FIELD, Direction, FieldRule, Owner, Value
from cosell.sync.plan.rules import (
    ReferralState,
    hold_reason,
    needs_status_reason,
    parse_stage,
    refusal_reason,
    same_stage,
    unchosen_when_empty,
)

__all__ = ["Conflict", "Held", "Plan", "ReferralState", "Refusal", "merge"]


@dataclass(frozen=True)
class Conflict:
    """Both sides changed a field to different values since the base.

    Attributes:
        field: the canonical field name.
        partner_center: Partner Center's value.
        salesforce: Salesforce's value.
        base: the value both sides last agreed on.
        winner: the side whose value was kept (the loser's value is only in this record).
    """

    field: str
    partner_center: Value
    salesforce: Value
    base: Value
    winner: Owner


@dataclass(frozen=True)
class Refusal:
    """A Salesforce change that Partner Center's rules refuse; it was not written.

    Attributes:
        field: the canonical field name.
        value: Salesforce's value that was not sent.
        reason: a message for the seller: what was not sent, why, and what to do.
    """

    field: str
    value: Value
    reason: str


@dataclass(frozen=True)
class Held:
    """A Salesforce change Partner Center takes later, not now; it was not written (yet).

    Attributes:
        field: the canonical field name.
        value: Salesforce's value that waits.
        reason: a message for the seller: what waits, why, and when it is sent.
        until: when it may be sent; None when it waits for the referral's acceptance.
    """

    field: str
    value: Value
    reason: str
    until: datetime | None


@dataclass(frozen=True)
class Plan:
    """What one reconcile writes, and the base to save once it is written.

    Attributes:
        to_salesforce: canonical field → value to write to Salesforce.
        to_partner_center: canonical field → value to write to Partner Center.
        new_base: the base snapshot to save after both writes succeed: every field both
            sides agree on after the plan (a refused or one-way field keeps its old base;
            a field with no known base is absent).
        conflicts: fields both sides changed differently, sorted by field.
        refusals: Salesforce changes Partner Center's rules refuse, sorted by field.
        held: Salesforce changes Partner Center takes later, sorted by field.
    """

    to_salesforce: Mapping[str, Value]
    to_partner_center: Mapping[str, Value]
    new_base: Mapping[str, Value]
    conflicts: tuple[Conflict, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    held: tuple[Held, ...] = ()

    @property
    def merge_again(self) -> bool:
        """The plan accepts the referral while edits wait for that: merge again once written."""
        stage = parse_stage(self.to_partner_center.get(STAGE_FIELD))
        return (
            stage is not None
            and stage[0].value == "Active"
            and any(h.until is None for h in self.held)
        )

    @property
    def held_until(self) -> datetime | None:
        """The earliest time a held change may be sent (None: none waits for a time)."""
        times = [h.until for h in self.held if h.until is not None]
        return min(times) if times else None

    @property
    def is_empty(self) -> bool:
        """Nothing to write on either side (conflicts and refusals may still be reported)."""
        return not self.to_salesforce and not self.to_partner_center

    @property
    def needs_status_reason(self) -> bool:
        """The plan declines the referral: the Partner Center write needs a `statusReason`."""
        return STAGE_FIELD in self.to_partner_center and needs_status_reason(
            self.to_partner_center[STAGE_FIELD]
        )


def merge(
    partner_center: Mapping[str, Value],
    salesforce: Mapping[str, Value],
    base: Mapping[str, Value] | None,
    rules: Sequence[FieldRule],
    state: ReferralState,
) -> Plan:
    """Plan the writes that bring Partner Center and Salesforce back in agreement.

    Args:
        partner_center: the referral's canonical values, by field name.
        salesforce: the Salesforce record's canonical values, by field name.
        base: the values both sides last agreed on; None on a link's first reconcile.
        rules: one rule per mapped field (direction, owner, read-only after create).
        state: the referral's status, substatus and direction, for Partner Center's rules.

    Returns:
        The plan; see the module docstring for how each field is decided.

    Raises:
        ValueError: two rules have the same field name (the mapping is inconsistent).
    """
    by_name: dict[str, FieldRule] = {}
    for rule in rules:
        if rule.name in by_name:
            raise ValueError(
                f"the mapping has two rules for the field {rule.name!r}; each field is mapped once"
            )
        by_name[rule.name] = rule
    old_base: Mapping[str, Value] = base if base is not None else {}
    to_salesforce: dict[str, Value] = {}
    to_partner_center: dict[str, Value] = {}
    new_base: dict[str, Value] = {}
    conflicts: list[Conflict] = []
    refusals: list[Refusal] = []
    held: list[Held] = []
    for name in sorted(by_name):
        rule = by_name[name]
        pc, sf = partner_center.get(name), salesforce.get(name)
        known = name in old_base

        same = same_stage if name == STAGE_FIELD else _equal
        if same(pc, sf):
            # Agreed; a base that already means the same is kept as stored (no churn).
            new_base[name] = old_base[name] if known and same(old_base[name], pc) else pc
            continue
        pc_changed = not known or not same(pc, old_base[name])
        sf_changed = not known or not same(sf, old_base[name])
        if sf is None and pc is not None and unchosen_when_empty(rule):
            pc_changed, sf_changed = True, False  # not a seller's choice: filled from PC
        if pc_changed and sf_changed:
            winner = _effective_owner(rule)
        elif pc_changed:
            winner = Owner.PARTNER_CENTER
        else:
            winner = Owner.SALESFORCE
        if winner == Owner.SALESFORCE and rule.to_partner_center:
            reason = refusal_reason(rule, sf, pc, state)
            hold = hold_reason(rule, sf, state) if reason is None else None
            if reason is None and hold is None:
                to_partner_center[name] = sf
                new_base[name] = sf
                if pc_changed and known:
                    conflicts.append(Conflict(name, pc, sf, old_base[name], Owner.SALESFORCE))
                continue
            if not (pc_changed and rule.to_salesforce):
                if hold is not None:
                    held.append(Held(name, sf, hold.reason, hold.until))
                elif reason is not None:
                    refusals.append(Refusal(name, sf, reason))
                if known:
                    new_base[name] = old_base[name]
                continue
            winner = Owner.PARTNER_CENTER  # a real Partner Center change beats a blocked one
        if winner == Owner.PARTNER_CENTER and pc_changed and rule.to_salesforce:
            to_salesforce[name] = pc
            new_base[name] = pc
            if sf_changed and known:
                conflicts.append(Conflict(name, pc, sf, old_base[name], Owner.PARTNER_CENTER))
            continue
        if known:  # a change against the field's direction: written nowhere
            new_base[name] = old_base[name]
    return Plan(
        to_salesforce=to_salesforce,
        to_partner_center=to_partner_center,
        new_base=new_base,
        conflicts=tuple(conflicts),
        refusals=tuple(refusals),
        held=tuple(held),
    )


def _equal(one: Value, other: Value) -> bool:
    return one == other


def _effective_owner(rule: FieldRule) -> Owner:
    """Who wins when both sides changed: the source of a one-way field; PC for the stage."""
    if rule.direction == Direction.TO_SALESFORCE:
        return Owner.PARTNER_CENTER
    if rule.direction == Direction.TO_PARTNER_CENTER:
        return Owner.SALESFORCE
    if rule.name == STAGE_FIELD:
        return Owner.PARTNER_CENTER
    return rule.owner
