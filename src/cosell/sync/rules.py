"""Partner Center's business rules, checked before the merge plans a write to Partner Center.

The merge (`cosell.sync.merge`) asks one question of this module for every value it would
write to Partner Center: `refusal_reason(rule, value, current, state)`. The answer is None
(Partner Center accepts the change) or a sentence for the seller that says why Partner Center
would refuse it and what to do. A refused value is never sent: sending it would only earn a
400 and park the link on an opaque API error.

The rules, in the order they are checked (the first that applies wins):

1. **Terminal referral.** A referral that is Closed (Won, Lost, Declined, Expired, Error)
   accepts no writes at all (spec §3.3): every change is refused.
2. **Read-only after create.** Fields the mapping marks `read_only_after_create` (the
   customer's name and address, spec §5.5) cannot change once the referral exists.
3. **The stage.** The canonical stage value is "Status/Substatus". A change must be a legal
   move of the status/substatus table (spec §3.3), checked by
   `cosell.partnercenter.models.check_transition` (the one copy of the table; it also knows
   that only Partner Center expires a referral, that a New referral is accepted before it
   is Won, and that an Active one is Lost, not Declined). Closing a New referral as Lost is
   a decline, as DESIGN.md promises ("closing it lost while on hold declines it") and as
   the mapping writes it. What the table cannot see is who is asking: only the *receiver*
   of a referral accepts or declines it, so a partner cannot accept or decline an Outgoing
   referral it sent itself.

`ReferralState.is_new` is True while the referral does not exist in Partner Center yet (the
values go into the create body): then there is nothing to be read-only and no status to move
from, so rules 2 and 3 do not apply (and rule 1 cannot).

A decline (and a loss) is written with a `statusReason` (spec §3.3). The reason is not a
mapped value the merge compares: `needs_status_reason` flags such a stage and the mapping's
writes supply the reason (`cosell.mapping` adds `statusReason` to a Lost or Declined stage).

`same_stage` says when two canonical stages mean the same to both sides; the merge compares
the stage with it (see `cosell.sync.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cosell.mapping.types import STAGE_FIELD, FieldRule, Value
from cosell.partnercenter.models import (
    Referral,
    ReferralDirection,
    ReferralStatus,
    ReferralSubstatus,
    check_transition,
    is_terminal,
)

_FIELD_LABELS = {
    "customer_name": "the customer's name",
    "street": "the customer's address",
    "city": "the customer's address",
    "state": "the customer's address",
    "postal_code": "the customer's address",
    "country": "the customer's address",
}
"""How the default mapping's read-only fields are named in a message to a seller."""


@dataclass(frozen=True)
class ReferralState:
    """What Partner Center's rules need to know about the referral, as last read.

    Attributes:
        status: the referral's status ("New", "Active", "Closed"), None when unknown.
        substatus: the referral's substatus ("Pending", "Accepted", "Won", ...).
        direction: "Incoming" (received) or "Outgoing" (sent by the partner), None when unknown.
        is_new: the referral does not exist in Partner Center yet; its values go into the
            create body, so nothing is read-only and there is no status to move from.
    """

    status: str | None
    substatus: str | None
    direction: str | None
    is_new: bool = False

    @classmethod
    def of(cls, referral: Referral) -> ReferralState:
        """The state of a referral read from Partner Center."""
        return cls(
            status=None if referral.status is None else referral.status.value,
            substatus=None if referral.substatus is None else referral.substatus.value,
            direction=None if referral.direction is None else referral.direction.value,
        )

    @property
    def stage(self) -> str:
        """The state as a canonical stage value, "Status/Substatus"."""
        return f"{self.status}/{self.substatus}"

    @property
    def is_terminal(self) -> bool:
        """Whether Partner Center accepts no further changes to the referral."""
        if self.is_new:
            return False
        return is_terminal(_status(self.status), _substatus(self.substatus))


def parse_stage(value: Value) -> tuple[ReferralStatus, ReferralSubstatus] | None:
    """Split a canonical stage value into Partner Center's status and substatus.

    Args:
        value: a canonical stage, "Status/Substatus" (e.g. "Active/Accepted").

    Returns:
        The documented status and substatus, or None when the value is not one.
    """
    if not isinstance(value, str) or value.count("/") != 1:
        return None
    status_text, substatus_text = value.split("/")
    status, substatus = ReferralStatus(status_text), ReferralSubstatus(substatus_text)
    if not (status.is_known and substatus.is_known):
        return None
    return status, substatus


def needs_status_reason(stage: Value) -> bool:
    """Whether writing this stage to Partner Center needs a `statusReason` (Lost, Declined)."""
    parsed = parse_stage(stage)
    return parsed is not None and parsed[1] in (ReferralSubstatus.LOST, ReferralSubstatus.DECLINED)


def same_stage(one: Value, other: Value) -> bool:
    """Whether two canonical stages mean the same to both sides.

    Salesforce's stage table has one stage per class: on hold (New/Pending, New/Received),
    open (Active/Accepted), won (Closed/Won), and lost (Closed/Lost, Declined, Expired,
    Error). Values of one class agree; anything else compares exactly.
    """
    return _stage_class(one) == _stage_class(other)


def _stage_class(value: Value) -> Value:
    parsed = parse_stage(value)
    if parsed is None:
        return value
    status, substatus = parsed
    if status == ReferralStatus.CLOSED:
        return "Closed/Won" if substatus == ReferralSubstatus.WON else "Closed/Lost"
    return status.value


def refusal_reason(
    rule: FieldRule, value: Value, current: Value, state: ReferralState
) -> str | None:
    """Why Partner Center would refuse a Salesforce value for one field, if it would.

    Args:
        rule: the field's mapping rule.
        value: the Salesforce value the merge would write to Partner Center.
        current: Partner Center's value of the field now.
        state: the referral's state, as read in this reconcile.

    Returns:
        None when Partner Center accepts the write, else a message for the seller: what
        was not sent, why, and what to do.
    """
    field = rule.name.replace("_", " ")  # deal_value -> "deal value": words for a seller
    change = f"the {field} change to {_show(value)} was not sent"
    if state.is_terminal:
        return (
            f"The referral is {state.stage} in Partner Center, and a closed referral cannot be "
            f"changed; {change}. Set the opportunity's {field} back to {_show(current)} to "
            "clear this error."
        )
    if state.is_new:
        return None
    if rule.read_only_after_create:
        label = _FIELD_LABELS.get(rule.name, f"the {field} field")
        return (
            f"Partner Center does not allow changing {label} after the referral is created; "
            f"{change}. Set it back to {_show(current)} to clear this error (a different "
            "customer needs a new opportunity)."
        )
    if rule.name == STAGE_FIELD:
        return _stage_refusal(value, state)
    return None


def _stage_refusal(value: Value, state: ReferralState) -> str | None:
    back = f"Set the opportunity's stage back to the one for {state.stage} to clear this error"
    target = parse_stage(value)
    if target is None:
        maps_to = (
            "has no Partner Center status/substatus in the mapping's stage table"
            if value is None
            else f"maps to {value!r}, which is not a Partner Center status/substatus"
        )
        return (
            f"The opportunity's stage {maps_to}, so the stage change was not sent. Fix the "
            "stage table of the mapping file (`cosell mapping check` lists its problems), or "
            f"set the opportunity's stage back to the one for {state.stage}."
        )
    status, substatus = target
    current_status, current_substatus = _status(state.status), _substatus(state.substatus)
    if current_status is None:
        return (
            "Partner Center did not say the referral's status, so the stage change to "
            f"{_show(value)} was not sent; it is retried on the next sync."
        )
    if current_status == ReferralStatus.NEW and substatus == ReferralSubstatus.LOST:
        substatus = (
            ReferralSubstatus.DECLINED
        )  # lost while on hold declines (the mapping writes it)
    moving = f"from {state.stage} to {status}/{substatus}"
    is_answer = current_status == ReferralStatus.NEW and (
        status == ReferralStatus.ACTIVE or substatus == ReferralSubstatus.DECLINED
    )
    if is_answer and _direction(state.direction) == ReferralDirection.OUTGOING:
        return (
            f"Partner Center cannot move the referral {moving}: only the receiver of a "
            "referral accepts or declines it, and this one was sent by you. "
            f"{back}, and wait for the receiver's answer."
        )
    reason = check_transition(current_status, current_substatus, status, substatus)
    if reason is None:
        return None
    if current_status == ReferralStatus.NEW and substatus in (
        ReferralSubstatus.WON,
        ReferralSubstatus.LOST,
    ):
        back = (
            "Move the opportunity to the stage for Active/Accepted first (that accepts the "
            "referral), let it sync, then close it"
        )
    return f"Partner Center cannot move the referral {moving}: {reason}. {back}."


def _status(text: str | None) -> ReferralStatus | None:
    return None if text is None else ReferralStatus(text)


def _substatus(text: str | None) -> ReferralSubstatus | None:
    return None if text is None else ReferralSubstatus(text)


def _direction(text: str | None) -> ReferralDirection | None:
    return None if text is None else ReferralDirection(text)


_SHOWN = 30
"""Characters of a value quoted in a message: enough to recognise it, short enough for a field."""


def _show(value: Value) -> str:
    if value is None:
        return "empty"
    if isinstance(value, str) and len(value) > _SHOWN:
        return repr(value[:_SHOWN]) + "..."
    return repr(value)
