"""The status/substatus table (spec §3.3) and who may move a referral where, as a full table."""

from __future__ import annotations

import itertools
import re

import pytest

from cosell_sandbox.partnercenter.lifecycle import (
    ReferralState,
    TransitionError,
    check_state,
    check_transition,
)

S = ReferralState
NEW_PENDING, NEW_RECEIVED = S("New", "Pending"), S("New", "Received")
ACCEPTED = S("Active", "Accepted")
WON, LOST, DECLINED = S("Closed", "Won"), S("Closed", "Lost"), S("Closed", "Declined")
EXPIRED, ERROR = S("Closed", "Expired"), S("Closed", "Error")
LEGAL_STATES = [NEW_PENDING, NEW_RECEIVED, ACCEPTED, WON, LOST, DECLINED, EXPIRED, ERROR]
ILLEGAL_PAIRS = [
    S("New", "Accepted"),
    S("New", "Won"),
    S("Active", "Pending"),
    S("Active", "Won"),
    S("Closed", "Accepted"),
    S("Closed", "Pending"),
    S("None", "None"),
    S("Open", "Pending"),
]

# The moves an owner may make (spec §3.3 + the [I] rules), with a status reason present.
LEGAL_MOVES = {
    ("Incoming", NEW_PENDING): {NEW_PENDING, NEW_RECEIVED, ACCEPTED, DECLINED, ERROR},
    ("Incoming", NEW_RECEIVED): {NEW_PENDING, NEW_RECEIVED, ACCEPTED, DECLINED, ERROR},
    ("Incoming", ACCEPTED): {ACCEPTED, WON, LOST, ERROR},
    ("Outgoing", ACCEPTED): {ACCEPTED, WON, LOST, ERROR},
}
CASES = [
    (direction, current, proposed, proposed in LEGAL_MOVES.get((direction, current), set()))
    for direction, current, proposed in itertools.product(
        ("Incoming", "Outgoing"), LEGAL_STATES, LEGAL_STATES + ILLEGAL_PAIRS
    )
    if direction == "Incoming" or current.status != "New"
]


@pytest.mark.parametrize(
    ("direction", "current", "proposed", "legal"),
    CASES,
    ids=[f"{d}:{c}->{p}" for d, c, p, _ in CASES],
)
def test_transition_table(
    direction: str, current: ReferralState, proposed: ReferralState, legal: bool
) -> None:
    if legal:
        check_transition(current, proposed, direction=direction, status_reason="budget")
    else:
        with pytest.raises(TransitionError) as caught:
            check_transition(current, proposed, direction=direction, status_reason="budget")
        assert caught.value.target in ("/status", "/substatus", "/statusReason")
        assert caught.value.message


def test_every_legal_state_is_in_the_documented_table() -> None:
    for state in LEGAL_STATES:
        check_state(state)
    for state in ILLEGAL_PAIRS:
        with pytest.raises(TransitionError):
            check_state(state)


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_declining_needs_a_reason(reason: str | None) -> None:
    with pytest.raises(TransitionError, match="needs a reason") as caught:
        check_transition(NEW_PENDING, DECLINED, direction="Incoming", status_reason=reason)
    assert caught.value.target == "/statusReason"


@pytest.mark.parametrize(
    ("current", "proposed", "message"),
    [
        (WON, WON, "Closed referrals are final"),
        (DECLINED, ACCEPTED, "Closed referrals are final"),
        (ACCEPTED, NEW_PENDING, "cannot go from Active/Accepted to New/Pending"),
        (NEW_PENDING, EXPIRED, "Expired is set by Partner Center"),
        (NEW_PENDING, WON, "must be accepted (Active/Accepted) before"),
        (ACCEPTED, DECLINED, "only a new incoming referral can be declined"),
        (ACCEPTED, S("Active", "Pending"), "substatus 'Pending' is not valid with status 'Active'"),
        (ACCEPTED, S("Open", "Pending"), "status 'Open' is not valid"),
    ],
)
def test_messages_say_what_to_do(
    current: ReferralState, proposed: ReferralState, message: str
) -> None:
    with pytest.raises(TransitionError, match=re.escape(message)):
        check_transition(current, proposed, direction="Incoming", status_reason="x")


def test_only_the_receiver_accepts() -> None:
    with pytest.raises(TransitionError, match="only the receiver of a new incoming referral"):
        check_transition(NEW_PENDING, ACCEPTED, direction="Outgoing", status_reason=None)
