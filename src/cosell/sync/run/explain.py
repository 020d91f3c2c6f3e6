"""Explain (`cosell plan`): the three-way comparison and the plan for one key, nothing written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cosell.mapping.types import Value
from cosell.store.types import Key, KeyFormatError, Link
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.links import link_of
from cosell.sync.plan.decide import Decision
from cosell.sync.plan.keys import KeyRef
from cosell.sync.plan.outcome import (
    Outcome,
)
from cosell.sync.run.reconcile import complete_link, decide_link, load, outcome_of, reconcile_key


@dataclass(frozen=True)
class FieldRow:
    """One mapped field in the three-way comparison.

    Attributes:
        field: the canonical field name.
        partner_center: Partner Center's value.
        salesforce: Salesforce's value.
        base: the value both sides last agreed on (None also when there is no base).
        action: what the reconcile does with the field, for a human.
    """

    field: str
    partner_center: Value
    salesforce: Value
    base: Value
    action: str


@dataclass(frozen=True)
class PlanReport:
    """What a reconcile of one key would do, and why (`cosell plan KEY`).

    Attributes:
        key: the key explained.
        link: its link, if it has one.
        has_base: whether the link has a base snapshot (False: first reconcile, owner decides).
        rows: the three-way comparison, one row per mapped field (empty for a create).
        partner_center_operations: the JSON Patch operations that would be sent.
        salesforce_updates: role → fields that would be written to Salesforce.
        outcome: the dry-run outcome (result and message).
    """

    key: str
    link: Link | None
    has_base: bool
    rows: tuple[FieldRow, ...]
    partner_center_operations: tuple[Mapping[str, Any], ...]
    salesforce_updates: Mapping[str, Mapping[str, Any]]
    outcome: Outcome


def _action(name: str, decision: Decision) -> str:
    plan = decision.plan
    for conflict in plan.conflicts:
        if conflict.field == name:
            side = "Partner Center" if conflict.winner == "partner_center" else "Salesforce"
            return f"conflict: {side} wins (owner)"
    for refusal in plan.refusals:
        if refusal.field == name:
            return f"refused: {refusal.reason}"
    for held in plan.held:
        if held.field == name:
            return f"held: {held.reason}"
    if name in plan.to_salesforce:
        return "write to Salesforce"
    if name in plan.to_partner_center:
        return "write to Partner Center"
    pc, sf = decision.partner_center.get(name), decision.salesforce.get(name)
    if pc == sf:
        known = decision.base is not None and name in decision.base
        if known and decision.base is not None and decision.base[name] == pc:
            return "in sync"
        return "in sync (new base)"
    return "differs: not synced this way (direction)"


async def explain(ctx: SyncContext, key: Key) -> PlanReport:
    """The three-way comparison and the plan for one key, without writing anything.

    Args:
        ctx: the context (its `dry_run` is forced on).
        key: `referral:<id>` or `salesforce:Opportunity:<id>`.

    Returns:
        The report.
    """
    dry = replace(ctx, dry_run=True)
    calls = ApiCalls()
    link = complete_link(dry, key)
    if link is None:
        outcome = await reconcile_key(dry, key)
        return PlanReport(
            key=key,
            link=_any_link(dry, key),
            has_base=False,
            rows=tuple(
                FieldRow(name, value, None, None, "create in Salesforce")
                for name, value in sorted(outcome.to_salesforce.items())
            )
            + tuple(
                FieldRow(name, None, value, None, "create in Partner Center")
                for name, value in sorted(outcome.to_partner_center.items())
            ),
            partner_center_operations=(),
            salesforce_updates={},
            outcome=outcome,
        )
    loaded = await load(dry, key, link, calls)
    if isinstance(loaded, Outcome):
        return PlanReport(key, link, False, (), (), {}, loaded)
    decision = decide_link(dry, link, loaded, keep_notes=False)
    rows = tuple(
        FieldRow(
            rule.name,
            decision.partner_center.get(rule.name),
            decision.salesforce.get(rule.name),
            None if decision.base is None else decision.base.get(rule.name),
            _action(rule.name, decision),
        )
        for rule in ctx.mapping.rules()
    )
    return PlanReport(
        key=key,
        link=link,
        has_base=decision.base is not None,
        rows=rows,
        partner_center_operations=tuple(decision.operations),
        salesforce_updates={
            role: dict(fields) for role, fields in decision.salesforce_writes.items()
        },
        outcome=outcome_of(key, link, decision, calls, dry_run=True),
    )


def _any_link(ctx: SyncContext, key: Key) -> Link | None:
    try:
        return link_of(ctx.store, KeyRef.parse(key))
    except KeyFormatError:
        return None
