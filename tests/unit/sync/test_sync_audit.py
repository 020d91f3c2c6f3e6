"""Audit messages and the bounded, newest-first `Audit__c`."""

from datetime import UTC, datetime

from cosell.mapping.types import Owner
from cosell.store.types import AuditEntry, LinkId
from cosell.sync.plan.audit import AUDIT_LENGTH, describe_plan, line, render_audit_field
from cosell.sync.plan.merge import Conflict, Plan, Refusal

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def entry(n: int, message: str) -> AuditEntry:
    return AuditEntry(n, "default", LinkId("l"), AT, message, {})


def test_audit_field_is_newest_first_and_bounded_at_a_line() -> None:
    entries = [entry(n, f"change {n:05d} " + "x" * 990) for n in range(300, 0, -1)]
    text = render_audit_field([line(AT, "newest")], entries)
    lines = text.split("\n")
    assert len(text) <= AUDIT_LENGTH
    assert lines[0].endswith("newest")
    assert "change 00300" in lines[1]
    assert all(len(x) > 900 for x in lines[1:])  # whole lines only
    assert len(text) > AUDIT_LENGTH - 1100  # filled up to the last line that fits


def test_a_single_huge_line_is_cut_not_dropped() -> None:
    text = render_audit_field(["y" * (AUDIT_LENGTH * 2)], [])
    assert len(text) == AUDIT_LENGTH
    assert text.endswith("…")


def test_newlines_in_messages_stay_inside_their_line() -> None:
    assert render_audit_field([], [entry(1, "two\nlines")]).count("\n") == 0


def test_describe_plan_names_both_directions_conflicts_and_refusals() -> None:
    plan = Plan(
        to_salesforce={"notes": "new"},
        to_partner_center={"deal_value": "45000.00"},
        new_base={},
        conflicts=(Conflict("deal_value", "40000.00", "45000.00", "25000.00", Owner.SALESFORCE),),
        refusals=(Refusal("name", "x", "closed"),),
    )
    text = describe_plan(plan, {"notes": "old", "deal_value": "25000.00"})
    assert text is not None
    assert "Partner Center → Salesforce: notes 'old' → 'new'" in text
    assert "Salesforce → Partner Center: deal_value '25000.00' → '45000.00'" in text
    assert "Salesforce's '45000.00' kept, Partner Center's '40000.00' lost" in text
    assert "refused name = 'x': closed" in text
    assert describe_plan(Plan({}, {}, {}), None) is None
