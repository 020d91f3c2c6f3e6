"""What a reconcile says about itself: audit messages and the opportunity's `Audit__c`.

Every reconcile that changes something records one audit entry in the store (message plus
structured details: values written each way, conflicts with the losing value, refusals,
changes held back (a warning), API calls). `Audit__c` on the opportunity is a view of the same trail, newest first, rendered from
the store's entries and cut at a line boundary to `AUDIT_LENGTH` characters, so it can never
outgrow the field.

`Audit__c` is rewritten with every write cosell makes to the opportunity anyway. A change that
flows only from Salesforce to Partner Center (the seller's own edit) does not cost an extra
Salesforce call just to log it: it is in the store's audit at once and reaches `Audit__c` with
the next write to the record (conflicts and refusals are written at once, because the seller
must see them). That keeps a propagated change at 3 API calls (read, read, write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cosell.mapping.types import Value
from cosell.store.types import AuditEntry
from cosell.sync.plan.merge import Plan

AUDIT_LENGTH = 100_000  # Audit__c is a Long Text Area(131072); we keep well inside it
AUDIT_ENTRIES = 200  # entries rendered into Audit__c; AUDIT_LENGTH cuts it shorter if needed
_VALUE_CHARS = 80  # a long description is shown by its start in one audit line


def show(value: Value) -> str:
    """A canonical value for a human: empty, or quoted and shortened."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = value if len(value) <= _VALUE_CHARS else value[: _VALUE_CHARS - 1] + "…"
    return repr(text)


def describe_plan(plan: Plan, base: Mapping[str, Value] | None) -> str | None:
    """One sentence per direction of what the plan changes, or None when it changes nothing.

    Args:
        plan: the merge's plan.
        base: the base the plan was made against (for "old → new").

    Returns:
        The audit message, or None.
    """
    parts: list[str] = []
    old = base or {}
    if plan.to_salesforce:
        changes = ", ".join(
            f"{name} {show(old.get(name))} → {show(value)}"
            for name, value in sorted(plan.to_salesforce.items())
        )
        parts.append(f"Partner Center → Salesforce: {changes}")
    if plan.to_partner_center:
        changes = ", ".join(
            f"{name} {show(old.get(name))} → {show(value)}"
            for name, value in sorted(plan.to_partner_center.items())
        )
        parts.append(f"Salesforce → Partner Center: {changes}")
    for conflict in plan.conflicts:
        if conflict.winner == "partner_center":
            kept, lost = conflict.partner_center, conflict.salesforce
            winner, loser = "Partner Center", "Salesforce"
        else:
            kept, lost = conflict.salesforce, conflict.partner_center
            winner, loser = "Salesforce", "Partner Center"
        parts.append(
            f"conflict on {conflict.field}: both sides changed it; {winner}'s {show(kept)} "
            f"kept, {loser}'s {show(lost)} lost (base {show(conflict.base)})"
        )
    for refusal in plan.refusals:
        parts.append(f"refused {refusal.field} = {show(refusal.value)}: {refusal.reason}")
    for held in plan.held:
        parts.append(f"warning: held back {held.field} = {show(held.value)}: {held.reason}")
    return "; ".join(parts) if parts else None


def plan_details(plan: Plan) -> dict[str, Any]:
    """The plan as structured audit details (JSON-ready)."""
    return {
        "to_salesforce": dict(plan.to_salesforce),
        "to_partner_center": dict(plan.to_partner_center),
        "conflicts": [
            {
                "field": c.field,
                "partner_center": c.partner_center,
                "salesforce": c.salesforce,
                "base": c.base,
                "winner": str(c.winner),
            }
            for c in plan.conflicts
        ],
        "refusals": [
            {"field": r.field, "value": r.value, "reason": r.reason} for r in plan.refusals
        ],
        "held": [
            {
                "field": h.field,
                "value": h.value,
                "reason": h.reason,
                "until": None if h.until is None else h.until.isoformat(),
            }
            for h in plan.held
        ],
    }


def line(at: datetime, message: str) -> str:
    """One line of `Audit__c`."""
    return f"{at.strftime('%Y-%m-%d %H:%M:%S')} UTC  {message}"


def render_audit_field(new: Sequence[str], entries: Sequence[AuditEntry]) -> str:
    """The text of `Audit__c`: `new` lines, then the stored entries, newest first, bounded.

    Args:
        new: lines of this reconcile, not yet in the store, newest first.
        entries: the link's stored audit entries, newest first.

    Returns:
        At most `AUDIT_LENGTH` characters, cut at a line boundary.
    """
    lines = [*new, *(line(e.at, e.message) for e in entries)]
    out: list[str] = []
    size = 0
    for text in lines:
        text = text.replace("\n", " ")
        if size + len(text) + 1 > AUDIT_LENGTH:
            if not out:  # a single huge line: keep its start rather than nothing
                out.append(text[: AUDIT_LENGTH - 1] + "…")
            break
        out.append(text)
        size += len(text) + 1
    return "\n".join(out)
