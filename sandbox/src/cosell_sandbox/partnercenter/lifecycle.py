"""The referral lifecycle: legal status/substatus pairs and who may move a referral where.

Spec §3.3 gives the documented table; this module enforces it, plus the rules derived from the
product's behaviour (marked [I] in the spec), as one pure function of the current state, the
proposed state, the referral's direction and its status reason:

| from / to           | New/Pending, New/Received | Active/Accepted | Closed/Won, Closed/Lost | Closed/Declined | Closed/Error | Closed/Expired |
|---------------------|---------------------------|-----------------|-------------------------|-----------------|--------------|----------------|
| New (Incoming)      | yes                       | yes (accept)    | no: accept first        | yes, needs statusReason | yes  | no: system only |
| Active              | no: status goes forward   | yes (no change) | yes                     | no: decline only while New | yes | no: system only |
| Closed (any)        | no: terminal              | no: terminal    | no: terminal            | no: terminal    | no: terminal | no: terminal   |

Outgoing referrals (created by their owner) start Active/Accepted and so never accept or decline.
Only the organisation that owns a referral writes it; the caller checks ownership before asking
this module (the owner of an incoming referral is its receiver). Expiry (`Closed/Expired`) is
applied by the store's clock-driven sweep, never through `check_transition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

STATUSES: Final = ("New", "Active", "Closed")
"""Statuses a referral can be in (`None` exists in the enum but is never a stored state)."""

SUBSTATUSES_BY_STATUS: Final[dict[str, tuple[str, ...]]] = {
    "New": ("Pending", "Received"),
    "Active": ("Accepted",),
    "Closed": ("Won", "Lost", "Declined", "Expired", "Error"),
}

NEXT_STATUSES: Final[dict[str, tuple[str, ...]]] = {
    "New": ("New", "Active", "Closed"),
    "Active": ("Active", "Closed"),
    "Closed": ("Closed",),
}


@dataclass(frozen=True)
class ReferralState:
    """A status and substatus pair."""

    status: str
    substatus: str

    def __str__(self) -> str:
        return f"{self.status}/{self.substatus}"


class TransitionError(Exception):
    """A proposed status change that Partner Center refuses; `target` is the JSON path to blame."""

    def __init__(self, message: str, target: str) -> None:
        super().__init__(message)
        self.message = message
        self.target = target


def check_state(state: ReferralState) -> None:
    """Check that `state` is a legal status/substatus pair.

    Raises:
        TransitionError: the status or the pair is not one of spec §3.3's.
    """
    if state.status not in SUBSTATUSES_BY_STATUS:
        raise TransitionError(
            f"status {state.status!r} is not valid; use one of {', '.join(STATUSES)}", "/status"
        )
    allowed = SUBSTATUSES_BY_STATUS[state.status]
    if state.substatus not in allowed:
        raise TransitionError(
            f"substatus {state.substatus!r} is not valid with status {state.status!r}; "
            f"use one of {', '.join(allowed)}",
            "/substatus",
        )


def check_transition(
    current: ReferralState,
    proposed: ReferralState,
    *,
    direction: str,
    status_reason: str | None,
) -> None:
    """Check that the owner of a referral may move it from `current` to `proposed`.

    Args:
        current: the stored state.
        proposed: the state after the write.
        direction: the referral's direction, `Incoming` or `Outgoing`.
        status_reason: the referral's statusReason after the write.

    Raises:
        TransitionError: the move is not allowed; the message says why and what to do instead.
    """
    if current.status == "Closed":
        raise TransitionError(
            f"the referral is closed ({current}); Closed referrals are final and cannot be "
            "updated; create a new referral instead",
            "/status",
        )
    check_state(proposed)
    if proposed == current:
        return
    if proposed.status not in NEXT_STATUSES[current.status]:
        raise TransitionError(
            f"a referral cannot go from {current} to {proposed}; from {current.status} the "
            f"status may become {', '.join(NEXT_STATUSES[current.status])}",
            "/status",
        )
    target = "/substatus"
    if proposed.substatus == "Expired":
        raise TransitionError(
            "Expired is set by Partner Center when an incoming referral gets no answer within "
            "14 days; close the referral as Declined, Lost or Won instead",
            target,
        )
    if proposed.status == "New" or proposed == ReferralState("Active", "Accepted"):
        if direction != "Incoming" or current.status != "New":
            raise TransitionError(
                f"only the receiver of a new incoming referral can move it to {proposed}; "
                f"this {direction.lower()} referral is {current}",
                target,
            )
        return
    # From here on the proposed status is Closed.
    if proposed.substatus == "Declined":
        if direction != "Incoming" or current.status != "New":
            raise TransitionError(
                f"only a new incoming referral can be declined (this {direction.lower()} "
                f"referral is {current}); close it as Lost instead",
                target,
            )
        if not (status_reason or "").strip():
            raise TransitionError(
                "declining a referral needs a reason: set /statusReason in the same request",
                "/statusReason",
            )
        return
    if proposed.substatus in ("Won", "Lost") and current.status != "Active":
        raise TransitionError(
            f"a referral that is {current} must be accepted (Active/Accepted) before it can "
            f"be closed as {proposed.substatus}; accept it first, or decline it",
            target,
        )
