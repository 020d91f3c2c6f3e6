"""Partner Center's business rules, checked before the merge plans a write to Partner Center.

The merge (`cosell.sync.plan.merge`) asks one question of this module for every value it would
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

Two more refusals come before rule 2 (after rule 1):

- **Values Partner Center refuses** (`value_problem`, also used by the create path in
  `cosell.sync.run.creates`): by the field's transform, an `amount` (the deal value) must be set
  and not zero (the connector refuses 0 or empty on update, spec §5.4), a `currency` must be
  set, a `country` must be an ISO 3166-1 alpha-2 code (spec §3.8).
- **FY26 values** (by the field's referral member): a partner role, solution area or solution
  play outside the FY26 taxonomy (`models.PartnerRole`, `SolutionArea`, `SolutionPlay`; an
  org still mapping FY25 values) is refused with the values to choose from.
- **The deal type** (a `deal_type` field): Partner Center lets a Private deal become
  Partner-led or Co-sell and a Partner-led one become Co-sell, never back (the consent to share
  with Microsoft sellers and the help requested are never withdrawn, spec §3.9, §5.5); a change
  the other way is refused with a message.
- **Read-only once set.** Fields the mapping marks `read_only_once_set` (How can Microsoft
  help, the visibility to Microsoft sellers, spec §5.3 and §5.5: "read-only once set to Yes",
  "once visible cannot revert") may be set once; after Partner Center holds a value (not
  unset, not false) a change or a clearing is refused.

`ReferralState.is_new` is True while the referral does not exist in Partner Center yet (the
values go into the create body): then there is nothing to be read-only and no status to move
from, so rules 2 and 3 and read-only-once-set do not apply (and rule 1 cannot).

**Holds** (`hold_reason`) are not refusals: the change is right, Partner Center only does not
take it *yet*, so the merge keeps it pending (nothing written either way, the base keeps its
old value) and it flows by itself once allowed, with no error on the opportunity:

- **On hold.** While an incoming referral is New (Pending or Received) Partner Center takes
  no field edits, only the answer (accept or decline, spec §5.4: "edits while on hold are not
  synced"); every Salesforce change but the stage (and the reason sent with a decline,
  `FieldRule.with_answer`) is held until the referral is accepted.
- **Won before the 72nd hour** (`[sync] hold_wins_for_registration`, on by default). Partner
  Center takes Won at any time, but a deal is eligible for deal registration only when at
  least 72 hours passed between its creation and Won (spec §3.3, §9.6). With the setting on
  (`ReferralState.hold_wins`), a win before then is held until `created + WIN_WAIT`
  (`ReferralState.created` and `now` say when; without them nothing is held); off, it goes
  at once.

`deal_problems` checks what spans fields before a referral is created (`cosell.sync.plan.creates`):
a Co-sell deal needs How can Microsoft help?, help asked makes a deal Co-sell, a private deal
is not visible to Microsoft sellers, and a services co-sell deal (a co-sell deal naming a
partner role, solution area or play) needs all three, the play within the area (spec §9.3).

A decline (and a loss) is written with a `statusReason` (spec §3.3). The reason is not a
mapped value the merge compares: `needs_status_reason` flags such a stage and the mapping's
writes supply the reason (`cosell.mapping` adds `statusReason` to a Lost or Declined stage).

`same_stage` says when two canonical stages mean the same to both sides; the merge compares
the stage with it (see `cosell.sync.plan.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from cosell.mapping.countries import country_name
from cosell.mapping.types import STAGE_FIELD, FieldRule, Value
from cosell.partnercenter.models import (
    SOLUTION_PLAY_AREAS,
    DealType,
    PartnerRole,
    Referral,
    ReferralDirection,
    ReferralStatus,
    ReferralSubstatus,
    SolutionArea,
    SolutionPlay,
    TolerantEnum,
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
    "help": "How can Microsoft help",
    "visibility": "the referral's visibility to Microsoft sellers",
}
"""How the default mapping's read-only fields are named in a message to a seller."""

WIN_WAIT = timedelta(hours=72)
"""A deal stays eligible for deal registration when Won this long after creation (spec §3.3)."""


@dataclass(frozen=True)
class ReferralState:
    """What Partner Center's rules need to know about the referral, as last read.

    Attributes:
        status: the referral's status ("New", "Active", "Closed"), None when unknown.
        substatus: the referral's substatus ("Pending", "Accepted", "Won", ...).
        direction: "Incoming" (received) or "Outgoing" (sent by the partner), None when unknown.
        is_new: the referral does not exist in Partner Center yet; its values go into the
            create body, so nothing is read-only and there is no status to move from.
        created: when Partner Center created the referral (None: unknown).
        now: the time of the reconcile (None: unknown); with `created`, says whether a win
            is allowed yet.
        holds_edits: edits wait for the acceptance while the referral is New (an
            opportunity on hold); False for a Salesforce Lead, whose edits go at once.
        hold_wins: a win waits until 72 hours after creation (`[sync]
            hold_wins_for_registration`); False sends it at once.
    """

    status: str | None
    substatus: str | None
    direction: str | None
    is_new: bool = False
    created: datetime | None = None
    now: datetime | None = None
    holds_edits: bool = True
    hold_wins: bool = True

    @classmethod
    def of(
        cls, referral: Referral, *, now: datetime | None = None, hold_wins: bool = True
    ) -> ReferralState:
        """The state of a referral read from Partner Center, at `now` (the reconcile's time)."""
        return cls(
            status=None if referral.status is None else referral.status.value,
            substatus=None if referral.substatus is None else referral.substatus.value,
            direction=None if referral.direction is None else referral.direction.value,
            created=referral.created_date_time,
            now=now,
            hold_wins=hold_wins,
        )

    @property
    def is_on_hold(self) -> bool:
        """Whether the referral waits for its receiver's answer (New): no field edits yet."""
        return self.holds_edits and not self.is_new and self.status == ReferralStatus.NEW.value

    @property
    def win_allowed_at(self) -> datetime | None:
        """When a win is sent (72 hours after creation); None when unknown or not held."""
        return None if self.created is None or not self.hold_wins else self.created + WIN_WAIT

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
    problem = value_problem(rule, value)
    if problem is not None:
        return f"{problem}; {change}."
    if state.is_new:
        return None
    if rule.read_only_once_set and is_set(current) and value != current:
        label = _FIELD_LABELS.get(rule.name, f"the {field} field")
        return (
            f"Partner Center does not allow changing {label} once it is set (it is "
            f"{_show(current)} in Partner Center); {change}. Set it back to {_show(current)} "
            "to clear this error."
        )
    if rule.read_only_after_create:
        label = _FIELD_LABELS.get(rule.name, f"the {field} field")
        return (
            f"Partner Center does not allow changing {label} after the referral is created; "
            f"{change}. Set it back to {_show(current)} to clear this error (a different "
            "customer needs a new opportunity)."
        )
    if rule.name == STAGE_FIELD:
        return _stage_refusal(value, state)
    if rule.kind == DEAL_TYPE_KIND:
        refusal = deal_type_refusal(value, current)
        if refusal is not None:
            return f"{refusal}; {change}. Set it back to {_show(current)} to clear this error."
    return None


DEAL_TYPE_KIND = "deal_type"
"""`FieldRule.kind` of a deal type field (`cosell.mapping.transforms.DealTypeTransform`)."""

_DEAL_TYPE_MOVES = {
    (DealType.PRIVATE.value, DealType.PARTNER_LED.value),
    (DealType.PRIVATE.value, DealType.CO_SELL.value),
    (DealType.PARTNER_LED.value, DealType.CO_SELL.value),
}
"""The deal type changes Partner Center allows: sharing and asking for help, never back."""


def unchosen_when_empty(rule: FieldRule) -> bool:
    """Whether an empty Salesforce value of this field means "not chosen yet", not "cleared".

    Every referral has a deal type (Partner Center derives it from the consent and the help),
    so an empty Deal Type picklist (an opportunity linked before the field was mapped, or a
    seller clearing it) is filled from Partner Center instead of being sent there.
    """
    return rule.kind == DEAL_TYPE_KIND and rule.to_salesforce


def deal_type_refusal(value: Value, current: Value) -> str | None:
    """Why Partner Center would refuse changing a referral's deal type from `current` to `value`."""
    if value is None or current is None or value == current:
        return None
    if (current, value) in _DEAL_TYPE_MOVES:
        return None
    if current == DealType.CO_SELL.value:
        return (
            "a Co-sell referral stays Co-sell in Partner Center: the help asked of Microsoft "
            f"cannot be withdrawn, so it cannot become {value}"
        )
    return (
        f"a referral shared with Microsoft sellers cannot become {value} again in Partner "
        "Center: the consent to share it cannot be withdrawn"
    )


_FY26: dict[str, tuple[str, type[TolerantEnum]]] = {
    "partnerRole": ("partner role", PartnerRole),
    "solutionArea": ("FY26 solution area", SolutionArea),
    "solutionPlay": ("FY26 solution play", SolutionPlay),
}
"""The members whose values must be in the FY26 taxonomy, with their words for a seller."""


def _fy26_problem(rule: FieldRule, value: Value) -> str | None:
    if rule.path not in _FY26 or not isinstance(value, str) or not value:
        return None
    words, enum = _FY26[rule.path]
    if enum(value).is_known:
        return None
    choices = ", ".join(m.value for m in enum)
    return (
        f"{value!r} is not a {words} Partner Center takes (the FY26 taxonomy): choose one of "
        f"{choices} in the opportunity's {rule.name.replace('_', ' ')}"
    )


def deal_problems(values: list[tuple[FieldRule, Value]]) -> list[str]:
    """What Partner Center needs across fields of a new referral, checked before the call.

    Args:
        values: each mapped field's rule with the canonical value the create would send.

    Returns:
        One sentence per problem (what to fill or change); empty when none.
    """
    # The deal type maps the consent path too: by path, only the other fields.
    by_path = {rule.path: value for rule, value in values if rule.kind != DEAL_TYPE_KIND}
    deal = next((v for r, v in values if r.kind == DEAL_TYPE_KIND), None)
    help_code = by_path.get("inviteContext/assistanceRequestCode")
    asks_help = help_code is not None and help_code not in ("Unknown", "None")
    problems: list[str] = []
    if deal == DealType.CO_SELL.value and not asks_help:
        problems.append(
            "a Co-sell deal asks Microsoft for help: choose the help in How can Microsoft "
            "help? (or set the Deal Type to Partner-led)"
        )
    elif deal in (DealType.PRIVATE.value, DealType.PARTNER_LED.value) and asks_help:
        problems.append(
            f"How can Microsoft help? makes the deal Co-sell, but its Deal Type is {deal}: set "
            "the Deal Type to Co-sell, or clear How can Microsoft help?"
        )
    visible = by_path.get("consent/consentToShareReferralWithMicrosoftSellers")
    if deal == DealType.PRIVATE.value and visible is True:
        problems.append(
            "a Private deal is not shared with Microsoft sellers: untick Referral Visibility, "
            "or set the Deal Type to Partner-led"
        )
    services = {path: by_path.get(path) for path in _FY26 if path in by_path}
    co_sell = deal == DealType.CO_SELL.value or asks_help
    if co_sell and any(services.values()):
        missing = [_FY26[path][0] for path, value in services.items() if not value]
        if missing:
            problems.append(
                "a services co-sell deal needs the partner role, the solution area and the "
                f"solution play: fill in the {', '.join(missing)}"
            )
    area, play = by_path.get("solutionArea"), by_path.get("solutionPlay")
    if isinstance(area, str) and isinstance(play, str):
        expected = SOLUTION_PLAY_AREAS.get(SolutionPlay(play))
        if expected is not None and SolutionArea(area).is_known and expected.value != area:
            problems.append(
                f"the solution play {play} belongs to the solution area {expected.value}, not "
                f"{area}: choose a play of {area} or change the area"
            )
    return problems


def is_set(value: Value) -> bool:
    """Whether a value counts as set for `read_only_once_set`: not unset, not false, not ""."""
    return value not in (None, False, "")


def value_problem(rule: FieldRule, value: Value) -> str | None:
    """Why Partner Center refuses this value of a field whatever the referral's state, if it does.

    Checked by the field's transform (`FieldRule.kind`): a deal value (`amount`) must be set
    and not zero, a `currency` must be set, a `country` must be an ISO 3166-1 alpha-2 code.

    Args:
        rule: the field's mapping rule.
        value: the canonical value to write to Partner Center.

    Returns:
        None when the value is acceptable, else a sentence for the seller saying what to fix
        (without a final full stop, so callers can add what was not sent).
    """
    if rule.kind == "amount" and _is_zero(value):
        return (
            f"Partner Center needs a {rule.name.replace('_', ' ')} that is not zero (it is "
            f"{_show(value)}): enter the opportunity's amount"
        )
    if rule.kind == "currency" and not value:
        return "Partner Center needs the deal's currency: set the opportunity's currency"
    fy26 = _fy26_problem(rule, value)
    if fy26 is not None:
        return fy26
    if rule.kind == "country" and not (
        isinstance(value, str) and len(value) == 2 and country_name(value) is not None
    ):
        return (
            f"Partner Center needs the customer's country as a 2-letter ISO 3166 code such as "
            f"'US' or 'DE' (it is {_show(value)}): correct the account's billing country"
        )
    return None


def _is_zero(value: Value) -> bool:
    if value is None or isinstance(value, bool):
        return True
    try:
        return Decimal(value) == 0
    except InvalidOperation:
        return False  # not a number: the mapping's transform reports it


@dataclass(frozen=True)
class Hold:
    """Why a change is held back, and until when.

    Attributes:
        reason: a sentence for the seller: what waits, why, and when it is sent.
        until: when it may be sent; None when it waits for the referral's acceptance.
    """

    reason: str
    until: datetime | None


def hold_reason(rule: FieldRule, value: Value, state: ReferralState) -> Hold | None:
    """Whether a change Partner Center accepts later (not now) must wait, and why.

    Args:
        rule: the field's mapping rule.
        value: the Salesforce value the merge would write to Partner Center.
        state: the referral's state (with `created` and `now` for the 72-hour wait).

    Returns:
        None when the change can be sent now, else the hold (see the module docstring).
    """
    if rule.name != STAGE_FIELD:
        if not state.is_on_hold or rule.with_answer:
            return None
        return Hold(
            f"the {rule.name.replace('_', ' ')} change to {_show(value)} is held back: "
            "Partner Center takes edits only once the referral is accepted; it is sent when "
            "the opportunity moves to the active stage (that accepts the referral)",
            None,
        )
    target = parse_stage(value)
    allowed_at = state.win_allowed_at
    if (
        target is None
        or target[1] != ReferralSubstatus.WON
        or state.status != ReferralStatus.ACTIVE.value
        or allowed_at is None
        or state.now is None
        or state.now >= allowed_at
    ):
        return None
    return Hold(
        "the win is held back until 72 hours after the referral was created, so the deal "
        f"stays eligible for deal registration; it is sent on {allowed_at:%Y-%m-%d %H:%M} UTC "
        "by itself ([sync] hold_wins_for_registration = false sends wins at once)",
        allowed_at,
    )


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
