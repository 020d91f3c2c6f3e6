"""The vocabulary shared by the mapping and the merge.

A mapped field is compared and merged as a *canonical value*: the mapping's transforms turn
what Partner Center and Salesforce store (a decimal `dealValue`, an `Amount` number, a
`closingDateTime` and a `CloseDate`, a status/substatus pair and a `StageName`) into one
normalised form, so that equal meanings compare equal. Canonical values are JSON scalars:
strings (decimals and dates as normalised strings), booleans, or None for "unset".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

Value = str | bool | None
"""A canonical value: normalised string, boolean, or None for unset."""

STAGE_FIELD = "stage"
"""The canonical field holding Partner Center's status and substatus as "Status/Substatus"."""


class Direction(StrEnum):
    """Which way a mapped field flows."""

    BOTH = "both"
    TO_SALESFORCE = "to_salesforce"
    TO_PARTNER_CENTER = "to_partner_center"


class Owner(StrEnum):
    """The side whose value wins when both sides changed a field differently."""

    PARTNER_CENTER = "partner_center"
    SALESFORCE = "salesforce"


@dataclass(frozen=True)
class FieldRule:
    """What the merge needs to know about one mapped field.

    Attributes:
        name: the canonical field name (the mapping's `name`).
        direction: which way the field flows.
        owner: who wins a conflict.
        read_only_after_create: Partner Center refuses changes to it once the referral exists
            (customer name and address, spec §5.5); a Salesforce change is refused, not sent.
        read_only_once_set: Partner Center refuses changes to it once it holds a value: once
            the value is set (not unset, not false) it can be neither changed nor cleared (How
            can Microsoft help, the visibility to Microsoft sellers: spec §5.3, §5.5). Setting
            it the first time is allowed; a Salesforce change after that is refused, not sent.
        kind: the field's transform type (`text`, `amount`, `currency`, `country`, ...): the
            values Partner Center refuses depend on it (`cosell.sync.plan.rules.value_problem`).
        with_answer: the field travels with the referral's answer (`statusReason`, the loss
            or decline reason), so it is not held back while the referral is on hold.
        path: the referral member it maps (`solutionArea`), for the rules of one member.
    """

    name: str
    direction: Direction
    owner: Owner
    read_only_after_create: bool = False
    read_only_once_set: bool = False
    kind: str = "text"
    with_answer: bool = False
    path: str = ""

    @property
    def to_salesforce(self) -> bool:
        """Whether Partner Center's changes are written to Salesforce."""
        return self.direction in (Direction.BOTH, Direction.TO_SALESFORCE)

    @property
    def to_partner_center(self) -> bool:
        """Whether Salesforce's changes are written to Partner Center."""
        return self.direction in (Direction.BOTH, Direction.TO_PARTNER_CENTER)
