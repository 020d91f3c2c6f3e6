"""The merge, field by field: every row of DESIGN.md's table by direction and owner, and the edges."""

from __future__ import annotations

import pytest

from cosell.mapping.types import STAGE_FIELD, Direction, FieldRule, Owner, Value
from cosell.sync.plan.merge import Conflict, Plan, Refusal, merge
from cosell.sync.plan.rules import ReferralState

BOTH, TO_SF, TO_PC = Direction.BOTH, Direction.TO_SALESFORCE, Direction.TO_PARTNER_CENTER
PC, SF = Owner.PARTNER_CENTER, Owner.SALESFORCE
ACTIVE = ReferralState("Active", "Accepted", "Outgoing")

# Values of the field "notes": A is the base, X Partner Center's edit, Y Salesforce's.
A, X, Y = "agreed", "from partner center", "from salesforce"
ROWS = {
    "same/same": (A, A),
    "changed/same": (X, A),
    "same/changed": (A, Y),
    "changed/changed equal": (X, X),
    "changed/changed different": (X, Y),
}
# (row, direction, owner) -> (to Salesforce, to Partner Center, new base, conflict winner).
# Written out in full rather than derived, so that a slip in the merge cannot hide in a helper.
N = None
EXPECTED: dict[tuple[str, Direction, Owner], tuple[Value, Value, Value, Owner | None]] = {
    ("same/same", BOTH, PC): (N, N, A, N),
    ("same/same", BOTH, SF): (N, N, A, N),
    ("same/same", TO_SF, PC): (N, N, A, N),
    ("same/same", TO_SF, SF): (N, N, A, N),
    ("same/same", TO_PC, PC): (N, N, A, N),
    ("same/same", TO_PC, SF): (N, N, A, N),
    ("changed/same", BOTH, PC): (X, N, X, N),
    ("changed/same", BOTH, SF): (X, N, X, N),
    ("changed/same", TO_SF, PC): (X, N, X, N),
    ("changed/same", TO_SF, SF): (X, N, X, N),
    ("changed/same", TO_PC, PC): (N, N, A, N),  # against the direction: written nowhere
    ("changed/same", TO_PC, SF): (N, N, A, N),
    ("same/changed", BOTH, PC): (N, Y, Y, N),
    ("same/changed", BOTH, SF): (N, Y, Y, N),
    ("same/changed", TO_SF, PC): (N, N, A, N),  # against the direction: written nowhere
    ("same/changed", TO_SF, SF): (N, N, A, N),
    ("same/changed", TO_PC, PC): (N, Y, Y, N),
    ("same/changed", TO_PC, SF): (N, Y, Y, N),
    ("changed/changed equal", BOTH, PC): (N, N, X, N),
    ("changed/changed equal", BOTH, SF): (N, N, X, N),
    ("changed/changed equal", TO_SF, PC): (N, N, X, N),
    ("changed/changed equal", TO_SF, SF): (N, N, X, N),
    ("changed/changed equal", TO_PC, PC): (N, N, X, N),
    ("changed/changed equal", TO_PC, SF): (N, N, X, N),
    ("changed/changed different", BOTH, PC): (X, N, X, PC),
    ("changed/changed different", BOTH, SF): (N, Y, Y, SF),
    # A one-way field's source side wins whatever the owner says: the other cannot be written.
    ("changed/changed different", TO_SF, PC): (X, N, X, PC),
    ("changed/changed different", TO_SF, SF): (X, N, X, PC),
    ("changed/changed different", TO_PC, PC): (N, Y, Y, SF),
    ("changed/changed different", TO_PC, SF): (N, Y, Y, SF),
}


def _writes(value: Value) -> dict[str, Value]:
    return {} if value is None else {"notes": value}


@pytest.mark.parametrize(("row", "direction", "owner"), sorted(EXPECTED))
def test_design_table(row: str, direction: Direction, owner: Owner) -> None:
    pc, sf = ROWS[row]
    to_sf, to_pc, new_base, winner = EXPECTED[row, direction, owner]

    plan = merge(
        {"notes": pc}, {"notes": sf}, {"notes": A}, [FieldRule("notes", direction, owner)], ACTIVE
    )

    assert plan.to_salesforce == _writes(to_sf)
    assert plan.to_partner_center == _writes(to_pc)
    assert plan.new_base == {"notes": new_base}
    expected_conflicts = () if winner is None else (Conflict("notes", pc, sf, A, winner),)
    assert plan.conflicts == expected_conflicts
    assert plan.refusals == ()
    assert plan.is_empty == (to_sf is None and to_pc is None)


def test_every_row_direction_and_owner_is_in_the_table() -> None:
    assert len(EXPECTED) == len(ROWS) * len(Direction) * len(Owner)


@pytest.mark.parametrize("base", [None, {}, {"other": "x"}], ids=["no base", "empty", "missing"])
@pytest.mark.parametrize(
    ("direction", "owner", "to_sf", "to_pc", "new_base"),
    [
        (BOTH, PC, X, N, X),
        (BOTH, SF, N, Y, Y),
        (TO_SF, SF, X, N, X),
        (TO_PC, PC, N, Y, Y),
    ],
)
def test_unknown_base_is_decided_by_the_owner_without_a_conflict(
    base: dict[str, Value] | None,
    direction: Direction,
    owner: Owner,
    to_sf: Value,
    to_pc: Value,
    new_base: Value,
) -> None:
    plan = merge({"notes": X}, {"notes": Y}, base, [FieldRule("notes", direction, owner)], ACTIVE)

    assert plan.to_salesforce == _writes(to_sf)
    assert plan.to_partner_center == _writes(to_pc)
    assert plan.new_base == {"notes": new_base}
    assert plan.conflicts == ()


def test_unknown_base_with_equal_values_becomes_the_base() -> None:
    plan = merge({"notes": X}, {"notes": X}, None, [FieldRule("notes", BOTH, SF)], ACTIVE)

    assert plan == Plan({}, {}, {"notes": X})
    assert plan.is_empty


@pytest.mark.parametrize(
    ("pc", "sf", "base", "to_sf", "to_pc", "new_base"),
    [
        (None, Y, None, {}, {"notes": Y}, Y),  # Partner Center unset, Salesforce set it
        (X, None, None, {"notes": X}, {}, X),  # Salesforce unset, Partner Center set it
        (X, None, A, {}, {"notes": None}, None),  # Salesforce cleared it, PC edited: conflict
        (A, None, A, {}, {"notes": None}, None),  # the seller cleared the field
        (None, A, A, {"notes": None}, {}, None),  # Microsoft cleared the field
        (None, None, A, {}, {}, None),  # both cleared: adopted
        (X, Y, None, {}, {"notes": Y}, Y),  # the base was unset, both set it: a conflict
    ],
)
def test_nulls_on_either_side(
    pc: Value,
    sf: Value,
    base: Value,
    to_sf: dict[str, Value],
    to_pc: dict[str, Value],
    new_base: Value,
) -> None:
    plan = merge(
        {"notes": pc}, {"notes": sf}, {"notes": base}, [FieldRule("notes", BOTH, SF)], ACTIVE
    )

    assert plan.to_salesforce == to_sf
    assert plan.to_partner_center == to_pc
    assert plan.new_base == {"notes": new_base}


def test_a_null_base_is_known_unset_so_a_conflict_is_reported() -> None:
    plan = merge(
        {"notes": X}, {"notes": Y}, {"notes": None}, [FieldRule("notes", BOTH, PC)], ACTIVE
    )

    assert plan.conflicts == (Conflict("notes", X, Y, None, PC),)


def test_missing_values_are_unset_and_unmapped_fields_are_ignored() -> None:
    plan = merge(
        {"extra": "ignored"},
        {"notes": Y, "Referral_Identifier__c": "abc"},
        {"notes": None, "gone": "from an older mapping"},
        [FieldRule("notes", BOTH, PC)],
        ACTIVE,
    )

    assert plan == Plan({}, {"notes": Y}, {"notes": Y})


def test_bool_fields_merge_like_any_value() -> None:
    rule = FieldRule("visibility", TO_PC, SF)
    plan = merge({"visibility": False}, {"visibility": True}, {"visibility": False}, [rule], ACTIVE)

    assert plan == Plan({}, {"visibility": True}, {"visibility": True})


def test_several_fields_are_decided_independently_and_sorted() -> None:
    rules = [
        FieldRule("notes", BOTH, SF),
        FieldRule("deal_value", BOTH, SF),
        FieldRule("name", BOTH, PC),
        FieldRule("msx_id", TO_SF, PC),
    ]
    plan = merge(
        {"notes": "a", "deal_value": "10.00", "name": "pc name", "msx_id": "7-ABC"},
        {"notes": "b", "deal_value": "20.00", "name": "sf name", "msx_id": None},
        {"notes": "a", "deal_value": "10.00", "name": "old", "msx_id": None},
        rules,
        ACTIVE,
    )

    assert plan.to_salesforce == {"name": "pc name", "msx_id": "7-ABC"}
    assert plan.to_partner_center == {"notes": "b", "deal_value": "20.00"}
    assert plan.new_base == {
        "notes": "b",
        "deal_value": "20.00",
        "name": "pc name",
        "msx_id": "7-ABC",
    }
    assert plan.conflicts == (Conflict("name", "pc name", "sf name", "old", PC),)
    assert list(plan.new_base) == sorted(plan.new_base)


def test_two_rules_for_one_field_are_refused_with_a_clear_message() -> None:
    rules = [FieldRule("notes", BOTH, SF), FieldRule("notes", TO_SF, PC)]

    with pytest.raises(ValueError, match="two rules for the field 'notes'"):
        merge({}, {}, None, rules, ACTIVE)


# The stage: Partner Center's changes always flow; Salesforce's are checked.

STAGE_BOTH_SF = FieldRule(STAGE_FIELD, BOTH, SF)
NEW_INCOMING = ReferralState("New", "Pending", "Incoming")


def test_a_partner_center_stage_change_wins_even_against_a_salesforce_owner() -> None:
    state = ReferralState("Active", "Accepted", "Incoming")
    plan = merge(
        {STAGE_FIELD: "Active/Accepted"},
        {STAGE_FIELD: "Closed/Lost"},  # legal from Active/Accepted, yet Partner Center's wins
        {STAGE_FIELD: "New/Pending"},
        [STAGE_BOTH_SF],
        state,
    )

    assert plan.to_salesforce == {STAGE_FIELD: "Active/Accepted"}
    assert plan.to_partner_center == {}
    assert plan.conflicts == (
        Conflict(STAGE_FIELD, "Active/Accepted", "Closed/Lost", "New/Pending", PC),
    )
    assert plan.refusals == ()


def test_an_illegal_stage_on_a_one_way_stage_field_is_refused() -> None:
    state = ReferralState("Active", "Accepted", "Incoming")
    plan = merge(
        {STAGE_FIELD: "Active/Accepted"},
        {STAGE_FIELD: "Closed/Declined"},  # only a New referral can be declined
        {STAGE_FIELD: "New/Pending"},
        [FieldRule(STAGE_FIELD, TO_PC, SF)],  # Salesforce's stage alone flows: nothing to win
        state,
    )

    assert plan.is_empty
    assert plan.new_base == {STAGE_FIELD: "New/Pending"}
    assert [r.value for r in plan.refusals] == ["Closed/Declined"]


def test_a_legal_salesforce_stage_change_is_written() -> None:
    plan = merge(
        {STAGE_FIELD: "New/Pending"},
        {STAGE_FIELD: "Active/Accepted"},
        {STAGE_FIELD: "New/Pending"},
        [STAGE_BOTH_SF],
        NEW_INCOMING,
    )

    assert plan == Plan({}, {STAGE_FIELD: "Active/Accepted"}, {STAGE_FIELD: "Active/Accepted"})
    assert not plan.needs_status_reason


def test_a_decline_is_flagged_for_its_status_reason() -> None:
    plan = merge(
        {STAGE_FIELD: "New/Pending"},
        {STAGE_FIELD: "Closed/Declined"},
        {STAGE_FIELD: "New/Pending"},
        [STAGE_BOTH_SF],
        NEW_INCOMING,
    )

    assert plan.to_partner_center == {STAGE_FIELD: "Closed/Declined"}
    assert plan.needs_status_reason


def test_an_illegal_salesforce_stage_change_is_refused_and_the_base_kept() -> None:
    plan = merge(
        {STAGE_FIELD: "New/Pending"},
        {STAGE_FIELD: "Closed/Won"},
        {STAGE_FIELD: "New/Pending"},
        [STAGE_BOTH_SF],
        NEW_INCOMING,
    )

    assert plan.is_empty
    assert plan.new_base == {STAGE_FIELD: "New/Pending"}
    assert plan.conflicts == ()
    (refusal,) = plan.refusals
    assert refusal.field == STAGE_FIELD
    assert refusal.value == "Closed/Won"
    assert "accept the referral first" in refusal.reason


def test_a_refused_value_loses_to_a_real_partner_center_change() -> None:
    state = ReferralState("Closed", "Won", "Outgoing")
    plan = merge(
        {"notes": X, STAGE_FIELD: "Closed/Won"},
        {"notes": Y, STAGE_FIELD: "Active/Accepted"},
        {"notes": A, STAGE_FIELD: "Active/Accepted"},
        [FieldRule("notes", BOTH, SF), STAGE_BOTH_SF],
        state,
    )

    assert plan.to_salesforce == {"notes": X, STAGE_FIELD: "Closed/Won"}
    assert plan.to_partner_center == {}
    assert plan.new_base == {"notes": X, STAGE_FIELD: "Closed/Won"}
    assert plan.conflicts == (Conflict("notes", X, Y, A, PC),)
    assert plan.refusals == ()


def test_a_refused_salesforce_change_is_not_reverted_and_keeps_its_base() -> None:
    state = ReferralState("Closed", "Lost", "Outgoing")
    plan = merge({"notes": A}, {"notes": Y}, {"notes": A}, [FieldRule("notes", BOTH, PC)], state)

    assert plan.is_empty
    assert plan.new_base == {"notes": A}
    assert [r.field for r in plan.refusals] == ["notes"]


def test_a_refused_field_with_no_base_keeps_no_base() -> None:
    state = ReferralState("Closed", "Lost", "Outgoing")
    plan = merge({"help": X}, {"help": Y}, None, [FieldRule("help", TO_PC, SF)], state)

    assert plan.is_empty
    assert plan.new_base == {}
    assert [r.field for r in plan.refusals] == ["help"]


def test_a_refused_field_with_a_partner_center_change_it_cannot_take_stays_refused() -> None:
    state = ReferralState("Closed", "Won", "Outgoing")
    plan = merge({"help": X}, {"help": Y}, {"help": A}, [FieldRule("help", TO_PC, SF)], state)

    assert plan.is_empty
    assert plan.new_base == {"help": A}
    assert plan.conflicts == ()
    assert [r.value for r in plan.refusals] == [Y]


def test_is_new_lets_read_only_fields_through() -> None:
    rule = FieldRule("city", BOTH, SF, read_only_after_create=True)
    new = ReferralState(None, None, None, is_new=True)

    plan = merge({"city": None}, {"city": "Oslo"}, None, [rule], new)

    assert plan.to_partner_center == {"city": "Oslo"}
    assert plan.refusals == ()


def test_plan_defaults_and_refusal_shape() -> None:
    refusal = Refusal("notes", "x", "why")
    plan = Plan({}, {}, {}, refusals=(refusal,))

    assert plan.is_empty
    assert plan.conflicts == ()
    assert not plan.needs_status_reason


def test_lost_while_on_hold_declines_and_then_stays_quiet() -> None:
    # The seller closes an incoming referral's opportunity as lost while it is on hold.
    plan = merge(
        {STAGE_FIELD: "New/Pending"},
        {STAGE_FIELD: "Closed/Lost"},
        {STAGE_FIELD: "New/Pending"},
        [FieldRule(STAGE_FIELD, BOTH, PC)],
        NEW_INCOMING,
    )
    assert plan.to_partner_center == {STAGE_FIELD: "Closed/Lost"}  # the mapping declines
    assert plan.needs_status_reason

    # Partner Center now says Closed/Declined, which Salesforce can only show as lost.
    after = merge(
        {STAGE_FIELD: "Closed/Declined"},
        {STAGE_FIELD: "Closed/Lost"},
        plan.new_base,
        [FieldRule(STAGE_FIELD, BOTH, PC)],
        ReferralState("Closed", "Declined", "Incoming"),
    )
    assert after.is_empty
    assert after.refusals == ()
    assert after.new_base == plan.new_base


@pytest.mark.parametrize("substatus", ["Declined", "Expired", "Error"])
def test_a_closed_state_salesforce_cannot_show_flows_once_then_agrees(substatus: str) -> None:
    rules = [FieldRule(STAGE_FIELD, BOTH, PC)]
    closed = ReferralState("Closed", substatus, "Incoming")
    pc = {STAGE_FIELD: f"Closed/{substatus}"}

    plan = merge(pc, {STAGE_FIELD: "New/Pending"}, {STAGE_FIELD: "New/Pending"}, rules, closed)
    assert plan.to_salesforce == {STAGE_FIELD: f"Closed/{substatus}"}

    # Salesforce reads its lost stage back as Closed/Lost: that is agreement, not a change.
    after = merge(pc, {STAGE_FIELD: "Closed/Lost"}, plan.new_base, rules, closed)
    assert after.is_empty
    assert after.refusals == ()
    assert after.new_base == {STAGE_FIELD: f"Closed/{substatus}"}


def test_new_received_and_new_pending_agree() -> None:
    plan = merge(
        {STAGE_FIELD: "New/Received"},
        {STAGE_FIELD: "New/Pending"},
        {STAGE_FIELD: "New/Pending"},
        [STAGE_BOTH_SF],
        ReferralState("New", "Received", "Incoming"),
    )

    assert plan == Plan({}, {}, {STAGE_FIELD: "New/Pending"})
