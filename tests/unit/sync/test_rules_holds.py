"""Partner Center's newer rules: read-only once set, refused values, holds, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cosell.mapping.types import STAGE_FIELD, Direction, FieldRule, Owner, Value
from cosell.partnercenter.models import Referral
from cosell.sync.plan import deadlines
from cosell.sync.plan.merge import Held, merge
from cosell.sync.plan.rules import (
    WIN_WAIT,
    ReferralState,
    hold_reason,
    refusal_reason,
    value_problem,
)

SF = Owner.SALESFORCE
HELP = FieldRule("help", Direction.TO_PARTNER_CENTER, SF, read_only_once_set=True, kind="picklist")
VISIBLE = FieldRule(
    "visibility", Direction.TO_PARTNER_CENTER, SF, read_only_once_set=True, kind="boolean"
)
AMOUNT = FieldRule("deal_value", Direction.BOTH, SF, kind="amount")
CURRENCY = FieldRule("currency", Direction.BOTH, SF, kind="currency")
COUNTRY = FieldRule("country", Direction.BOTH, SF, kind="country")
NOTES = FieldRule("notes", Direction.BOTH, SF)
STAGE = FieldRule(STAGE_FIELD, Direction.BOTH, Owner.PARTNER_CENTER)
CREATED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ACTIVE = ReferralState("Active", "Accepted", "Outgoing", created=CREATED, now=CREATED)
ON_HOLD = ReferralState("New", "Pending", "Incoming", created=CREATED, now=CREATED)


def test_unticking_the_visibility_is_refused_with_a_message() -> None:
    reason = refusal_reason(VISIBLE, False, True, ACTIVE)

    assert reason == (
        "Partner Center does not allow changing the referral's visibility to Microsoft sellers "
        "once it is set (it is True in Partner Center); the visibility change to False was not "
        "sent. Set it back to True to clear this error."
    )


def test_ticking_the_visibility_and_asking_for_help_the_first_time_are_allowed() -> None:
    assert refusal_reason(VISIBLE, True, False, ACTIVE) is None
    assert refusal_reason(VISIBLE, True, None, ACTIVE) is None
    assert refusal_reason(HELP, "QuotesOrLicensing", None, ACTIVE) is None


@pytest.mark.parametrize("value", ["GeneralOrOther", None])
def test_help_once_set_can_be_neither_changed_nor_cleared(value: Value) -> None:
    reason = refusal_reason(HELP, value, "QuotesOrLicensing", ACTIVE)

    assert reason is not None
    assert reason.startswith(
        "Partner Center does not allow changing How can Microsoft help once it is set (it is "
        "'QuotesOrLicensing' in Partner Center)"
    )
    assert "Set it back to 'QuotesOrLicensing' to clear this error." in reason


def test_read_only_once_set_does_not_apply_before_the_referral_exists() -> None:
    new = ReferralState(None, None, None, is_new=True)

    assert refusal_reason(VISIBLE, False, True, new) is None


def test_unticking_the_visibility_through_the_merge_writes_nothing() -> None:
    base = {"visibility": True}
    plan = merge({"visibility": True}, {"visibility": False}, base, [VISIBLE], ACTIVE)

    assert plan.to_partner_center == {}
    assert plan.to_salesforce == {}  # no silent revert of the seller's value either
    assert plan.new_base == base
    (refusal,) = plan.refusals
    assert refusal.field == "visibility"


@pytest.mark.parametrize("value", ["0.00", None])
def test_a_zero_or_empty_deal_value_is_refused(value: Value) -> None:
    reason = refusal_reason(AMOUNT, value, "25000.00", ACTIVE)

    assert reason == (
        f"Partner Center needs a deal value that is not zero (it is "
        f"{'empty' if value is None else repr(value)}): enter the opportunity's amount; the "
        f"deal value change to {'empty' if value is None else repr(value)} was not sent."
    )


def test_a_missing_currency_is_refused() -> None:
    reason = refusal_reason(CURRENCY, None, "USD", ACTIVE)

    assert reason == (
        "Partner Center needs the deal's currency: set the opportunity's currency; the currency "
        "change to empty was not sent."
    )


@pytest.mark.parametrize("value", ["Narnia", "USA", "XX", None])
def test_a_country_that_is_not_iso_2_is_refused(value: Value) -> None:
    problem = value_problem(COUNTRY, value)

    assert problem is not None
    assert "2-letter ISO 3166 code such as 'US' or 'DE'" in problem
    assert "correct the account's billing country" in problem


def test_good_values_pass() -> None:
    assert value_problem(COUNTRY, "DE") is None
    assert value_problem(AMOUNT, "0.01") is None
    assert value_problem(CURRENCY, "EUR") is None
    assert value_problem(NOTES, None) is None  # text: anything goes


def test_edits_on_hold_are_held_until_acceptance_not_refused() -> None:
    base = {"notes": "a", STAGE_FIELD: "New/Pending"}
    pc = {"notes": "a", STAGE_FIELD: "New/Pending"}
    sf = {"notes": "b", STAGE_FIELD: "New/Pending"}

    plan = merge(pc, sf, base, [NOTES, STAGE], ON_HOLD)

    assert plan.is_empty
    assert plan.refusals == ()
    assert plan.new_base == base  # still changed on the Salesforce side: it flows later
    (held,) = plan.held
    assert (held.field, held.value, held.until) == ("notes", "b", None)
    assert "sent when the opportunity moves to the active stage" in held.reason
    assert not plan.merge_again


def test_accepting_sends_the_stage_and_asks_to_merge_again_for_the_held_edits() -> None:
    base = {"notes": "a", STAGE_FIELD: "New/Pending"}
    pc = {"notes": "a", STAGE_FIELD: "New/Pending"}
    sf = {"notes": "b", STAGE_FIELD: "Active/Accepted"}

    plan = merge(pc, sf, base, [NOTES, STAGE], ON_HOLD)

    assert plan.to_partner_center == {STAGE_FIELD: "Active/Accepted"}
    assert [h.field for h in plan.held] == ["notes"]
    assert plan.merge_again
    accepted = ReferralState("Active", "Accepted", "Incoming", created=CREATED, now=CREATED)
    again = merge({**pc, **plan.to_partner_center}, sf, plan.new_base, [NOTES, STAGE], accepted)
    assert again.to_partner_center == {"notes": "b"}
    assert again.held == ()


def test_a_win_before_72_hours_is_held_until_then() -> None:
    state = ReferralState(
        "Active", "Accepted", "Outgoing", created=CREATED, now=CREATED + timedelta(hours=71)
    )

    hold = hold_reason(STAGE, "Closed/Won", state)

    assert hold is not None
    assert hold.until == CREATED + WIN_WAIT
    assert hold.reason == (
        "the win is held back until 72 hours after the referral was created, so the deal stays "
        "eligible for deal registration; it is sent on 2026-01-08 09:00 UTC by itself ([sync] "
        "hold_wins_for_registration = false sends wins at once)"
    )
    base = {STAGE_FIELD: "Active/Accepted"}
    plan = merge(base, {STAGE_FIELD: "Closed/Won"}, base, [STAGE], state)
    assert plan.held == (Held(STAGE_FIELD, "Closed/Won", hold.reason, hold.until),)
    assert plan.held_until == CREATED + WIN_WAIT


def test_a_win_after_72_hours_and_a_loss_at_any_time_are_sent() -> None:
    later = ReferralState("Active", "Accepted", "Outgoing", created=CREATED, now=CREATED + WIN_WAIT)

    assert hold_reason(STAGE, "Closed/Won", later) is None
    assert hold_reason(STAGE, "Closed/Lost", ACTIVE) is None
    assert hold_reason(STAGE, "Closed/Won", ReferralState("Active", "Accepted", None)) is None


def test_with_the_hold_off_a_win_before_72_hours_is_sent() -> None:
    state = ReferralState(
        "Active",
        "Accepted",
        "Outgoing",
        created=CREATED,
        now=CREATED + timedelta(minutes=1),
        hold_wins=False,
    )

    assert hold_reason(STAGE, "Closed/Won", state) is None
    assert state.win_allowed_at is None
    base = {STAGE_FIELD: "Active/Accepted"}
    plan = merge(base, {STAGE_FIELD: "Closed/Won"}, base, [STAGE], state)
    assert plan.to_partner_center == {STAGE_FIELD: "Closed/Won"}
    assert plan.held == ()


def _incoming(**fields: object) -> Referral:
    return Referral.model_validate(
        {
            "id": "f1b0d5f2-0000-4000-8000-000000000001",
            "status": "New",
            "substatus": "Pending",
            "direction": "Incoming",
            "createdDateTime": "2026-01-05T09:00:00Z",
            "expirationDateTime": "2026-01-19T09:00:00Z",
            **fields,
        }
    )


def test_the_expiry_warning_starts_48_hours_before_expiry() -> None:
    referral = _incoming()
    expires = datetime(2026, 1, 19, 9, 0, tzinfo=UTC)

    assert deadlines.expiry_warning(referral, expires - timedelta(hours=48, seconds=1)) is None
    warning = deadlines.expiry_warning(referral, expires - timedelta(hours=48))
    assert warning == (
        "the referral expires on 2026-01-19 09:00 UTC: accept or decline before then (move the "
        "opportunity to the active stage to accept it, or close it lost to decline)"
    )
    assert deadlines.expiry_warning(referral, expires) is None  # expired: nothing to warn of
    assert (
        deadlines.expiry_warning(_incoming(status="Active", substatus="Accepted"), expires) is None
    )


def test_wake_ups_come_at_the_warning_the_expiry_and_the_end_of_a_hold() -> None:
    referral = _incoming()
    expires = datetime(2026, 1, 19, 9, 0, tzinfo=UTC)
    empty = merge({}, {}, {}, [], ON_HOLD)

    assert deadlines.first_wake(referral, CREATED) == expires - timedelta(hours=48)
    assert deadlines.wake_at(empty, referral, expires - timedelta(hours=1)) == expires
    assert deadlines.wake_at(empty, referral, expires) is None
    held = merge(
        {STAGE_FIELD: "Active/Accepted"},
        {STAGE_FIELD: "Closed/Won"},
        {STAGE_FIELD: "Active/Accepted"},
        [STAGE],
        ACTIVE,
    )
    accepted = _incoming(status="Active", substatus="Accepted")
    assert deadlines.wake_at(held, accepted, CREATED) == CREATED + WIN_WAIT
