"""Partner Center's rules: terminal states, read-only fields, the transition table, who may act."""

from __future__ import annotations

import pytest

from cosell.mapping.types import STAGE_FIELD, Direction, FieldRule, Owner
from cosell.partnercenter.models import Referral, ReferralStatus, ReferralSubstatus
from cosell.sync.plan.merge import merge
from cosell.sync.plan.rules import (
    ReferralState,
    needs_status_reason,
    parse_stage,
    refusal_reason,
    same_stage,
)

STAGE = FieldRule(STAGE_FIELD, Direction.BOTH, Owner.SALESFORCE)
NOTES = FieldRule("notes", Direction.BOTH, Owner.SALESFORCE)
CITY = FieldRule("city", Direction.BOTH, Owner.SALESFORCE, read_only_after_create=True)
NAME = FieldRule("customer_name", Direction.BOTH, Owner.SALESFORCE, read_only_after_create=True)
CUSTOM = FieldRule(
    "duns_number", Direction.TO_PARTNER_CENTER, Owner.SALESFORCE, read_only_after_create=True
)


@pytest.mark.parametrize("substatus", ["Won", "Lost", "Declined", "Expired", "Error"])
@pytest.mark.parametrize("rule", [NOTES, STAGE, CITY], ids=lambda r: r.name)
def test_a_closed_referral_refuses_every_change(substatus: str, rule: FieldRule) -> None:
    state = ReferralState("Closed", substatus, "Incoming")

    reason = refusal_reason(rule, "Active/Accepted", f"Closed/{substatus}", state)

    assert reason is not None
    assert reason.startswith(f"The referral is Closed/{substatus} in Partner Center")
    assert "a closed referral cannot be changed" in reason
    assert f"the {rule.name} change to 'Active/Accepted' was not sent" in reason
    assert f"back to 'Closed/{substatus}'" in reason


def test_a_closed_referral_refuses_through_the_merge_with_the_seller_message() -> None:
    state = ReferralState("Closed", "Won", "Outgoing")
    plan = merge({"notes": "a"}, {"notes": None}, {"notes": "a"}, [NOTES], state)

    (refusal,) = plan.refusals
    assert refusal.reason == (
        "The referral is Closed/Won in Partner Center, and a closed referral cannot be changed; "
        "the notes change to empty was not sent. Set the opportunity's notes back to 'a' to "
        "clear this error."
    )


def test_long_values_are_shortened_in_messages() -> None:
    state = ReferralState("Closed", "Lost", "Outgoing")

    reason = refusal_reason(NOTES, "x" * 5000, "y" * 31, state)

    assert reason is not None
    assert f"the notes change to '{'x' * 30}'... was not sent" in reason
    assert f"back to '{'y' * 30}'... to clear" in reason
    assert len(reason) < 255  # fits Partner_Center_Sync_Error__c


def test_a_terminal_substatus_alone_is_terminal() -> None:
    assert ReferralState("Active", "Won", None).is_terminal
    assert not ReferralState("Active", "Accepted", None).is_terminal
    assert not ReferralState("Closed", "Won", None, is_new=True).is_terminal


@pytest.mark.parametrize(
    ("rule", "label"),
    [
        (CITY, "the customer's address"),
        (NAME, "the customer's name"),
        (CUSTOM, "the duns number field"),
    ],
)
def test_read_only_after_create_refuses_a_salesforce_change(rule: FieldRule, label: str) -> None:
    state = ReferralState("Active", "Accepted", "Outgoing")

    reason = refusal_reason(rule, "Bergen", "Oslo", state)

    assert reason == (
        f"Partner Center does not allow changing {label} after the referral is created; the "
        f"{rule.name.replace('_', ' ')} change to 'Bergen' was not sent. Set it back to 'Oslo' "
        "to clear this error (a different customer needs a new opportunity)."
    )


def test_read_only_after_create_does_not_apply_before_the_referral_exists() -> None:
    state = ReferralState(None, None, None, is_new=True)

    assert refusal_reason(CITY, "Bergen", None, state) is None
    assert refusal_reason(STAGE, "Closed/Won", None, state) is None


def test_a_field_without_rules_is_accepted_on_an_open_referral() -> None:
    state = ReferralState("New", "Pending", "Incoming")

    assert refusal_reason(NOTES, "anything", None, state) is None


# The transition table (spec §3.3), from every open state to every documented stage, for a
# referral received by the partner (Incoming): None means legal, else a phrase of the reason.
TARGETS = [
    "New/Pending",
    "New/Received",
    "Active/Accepted",
    "Closed/Won",
    "Closed/Lost",
    "Closed/Declined",
    "Closed/Expired",
    "Closed/Error",
    "Active/Won",
    "New/Accepted",
]
ACCEPT_FIRST = "accept the referral first (Active/Accepted), then close it as"
SYSTEM_ONLY = "only Partner Center expires a referral"
NOT_BACK = "cannot change to New; allowed: Active, Closed"
NEW_TABLE: dict[str, str | None] = {
    "New/Pending": None,
    "New/Received": None,
    "Active/Accepted": None,  # accept
    "Closed/Won": ACCEPT_FIRST,
    "Closed/Lost": None,  # lost while on hold: a decline
    "Closed/Declined": None,  # decline
    "Closed/Expired": SYSTEM_ONLY,
    "Closed/Error": None,
    "Active/Won": "substatus Won is not allowed with status Active",
    "New/Accepted": "substatus Accepted is not allowed with status New",
}
ACTIVE_TABLE: dict[str, str | None] = {
    "New/Pending": NOT_BACK,
    "New/Received": NOT_BACK,
    "Active/Accepted": None,
    "Closed/Won": None,  # win
    "Closed/Lost": None,  # lose
    "Closed/Declined": "only a New referral can be declined",
    "Closed/Expired": SYSTEM_ONLY,
    "Closed/Error": None,
    "Active/Won": "substatus Won is not allowed with status Active",
    "New/Accepted": NOT_BACK,
}
CASES = [
    (current, target, table[target])
    for current, table in [
        ("New/Pending", NEW_TABLE),
        ("New/Received", NEW_TABLE),
        ("Active/Accepted", ACTIVE_TABLE),
    ]
    for target in TARGETS
]


@pytest.mark.parametrize(("current", "target", "phrase"), CASES)
def test_the_transition_table(current: str, target: str, phrase: str | None) -> None:
    status, substatus = current.split("/")
    state = ReferralState(status, substatus, "Incoming")

    reason = refusal_reason(STAGE, target, current, state)

    if phrase is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(
            f"Partner Center cannot move the referral from {current} to {target}: "
        )
        assert phrase in reason


def test_won_before_accept_says_how_to_get_there() -> None:
    state = ReferralState("New", "Pending", "Incoming")

    reason = refusal_reason(STAGE, "Closed/Won", "New/Pending", state)

    assert reason == (
        "Partner Center cannot move the referral from New/Pending to Closed/Won: accept the "
        "referral first (Active/Accepted), then close it as Won. Move the opportunity to the "
        "stage for Active/Accepted first (that accepts the referral), let it sync, then close it."
    )


def test_an_illegal_move_says_to_set_the_stage_back() -> None:
    state = ReferralState("Active", "Accepted", "Incoming")

    reason = refusal_reason(STAGE, "Closed/Expired", "Active/Accepted", state)

    assert reason == (
        "Partner Center cannot move the referral from Active/Accepted to Closed/Expired: only "
        "Partner Center expires a referral (after 14 days without an answer). Set the "
        "opportunity's stage back to the one for Active/Accepted to clear this error."
    )


@pytest.mark.parametrize(
    ("target", "move"),
    [
        ("Active/Accepted", "Active/Accepted"),
        ("Closed/Declined", "Closed/Declined"),
        ("Closed/Lost", "Closed/Declined"),  # lost while on hold is a decline
    ],
)
def test_only_the_receiver_accepts_or_declines(target: str, move: str) -> None:
    state = ReferralState("New", "Pending", "Outgoing")

    reason = refusal_reason(STAGE, target, "New/Pending", state)

    assert reason == (
        f"Partner Center cannot move the referral from New/Pending to {move}: only the "
        "receiver of a referral accepts or declines it, and this one was sent by you. Set the "
        "opportunity's stage back to the one for New/Pending to clear this error, and wait "
        "for the receiver's answer."
    )


@pytest.mark.parametrize("direction", [None, "Incoming"])
def test_an_incoming_or_unknown_direction_may_be_accepted(direction: str | None) -> None:
    state = ReferralState("New", "Pending", direction)

    assert refusal_reason(STAGE, "Active/Accepted", "New/Pending", state) is None


@pytest.mark.parametrize("target", ["Closed/Won", "Closed/Lost"])
def test_an_outgoing_active_referral_may_be_won_or_lost(target: str) -> None:
    state = ReferralState("Active", "Accepted", "Outgoing")

    assert refusal_reason(STAGE, target, "Active/Accepted", state) is None


@pytest.mark.parametrize("value", [None, "Negotiation", "Closed/Maybe", "Open/Accepted", "a/b/c"])
def test_a_stage_that_is_not_a_status_substatus_is_refused(value: str | None) -> None:
    state = ReferralState("Active", "Accepted", "Outgoing")

    reason = refusal_reason(STAGE, value, "Active/Accepted", state)

    assert reason is not None
    assert reason.startswith("The opportunity's stage ")
    assert "Partner Center status/substatus" in reason
    assert "`cosell mapping check`" in reason
    assert "set the opportunity's stage back to the one for Active/Accepted" in reason


def test_an_unknown_current_status_is_not_guessed() -> None:
    state = ReferralState(None, None, "Incoming")

    reason = refusal_reason(STAGE, "Active/Accepted", None, state)

    assert reason == (
        "Partner Center did not say the referral's status, so the stage change to "
        "'Active/Accepted' was not sent; it is retried on the next sync."
    )


def test_parse_stage() -> None:
    assert parse_stage("Closed/Won") == (ReferralStatus.CLOSED, ReferralSubstatus.WON)
    assert parse_stage("active/accepted") == (ReferralStatus.ACTIVE, ReferralSubstatus.ACCEPTED)
    assert parse_stage("Closed") is None
    assert parse_stage(True) is None


def test_needs_status_reason_for_a_decline_or_a_loss() -> None:
    assert needs_status_reason("Closed/Declined")
    assert needs_status_reason("Closed/Lost")
    assert not needs_status_reason("Closed/Won")
    assert not needs_status_reason(None)


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("New/Pending", "New/Received", True),
        ("Closed/Declined", "Closed/Lost", True),
        ("Closed/Expired", "Closed/Lost", True),
        ("Closed/Error", "Closed/Declined", True),
        ("Closed/Won", "Closed/Lost", False),
        ("New/Pending", "Active/Accepted", False),
        ("Active/Accepted", "active/accepted", True),
        (None, None, True),
        (None, "New/Pending", False),
        ("Open/Accepted", "Active/Accepted", False),  # not a real stage: compared exactly
        ("Negotiation", "Negotiation", True),
    ],
)
def test_same_stage_is_what_both_sides_can_tell_apart(
    one: str | None, other: str | None, same: bool
) -> None:
    assert same_stage(one, other) is same
    assert same_stage(other, one) is same


def test_state_of_a_referral() -> None:
    referral = Referral.model_validate(
        {"id": "r1", "status": "closed", "substatus": "Won", "direction": "Incoming"}
    )

    state = ReferralState.of(referral)

    assert state == ReferralState("Closed", "Won", "Incoming")
    assert state.stage == "Closed/Won"
    assert state.is_terminal
    assert ReferralState.of(Referral()) == ReferralState(None, None, None)
