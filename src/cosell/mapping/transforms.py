"""Value transforms: each side's wire value to the canonical value and back.

A transform is part of a field's mapping (YAML `transform: date`, or an object with options for
`picklist` and `country`). It has four pure functions:

    from_partner_center(raw) -> Value      Partner Center JSON value -> canonical
    from_salesforce(raw) -> Value          Salesforce wire value    -> canonical
    to_partner_center(value) -> Any        canonical -> Partner Center JSON value
    to_salesforce(value) -> Any            canonical -> Salesforce wire value

Canonical forms (`cosell.mapping.types`): `text` keeps strings exactly (only "" reads as None);
`amount` is a plain decimal string with two places ("25000.00", rounded half up);
`currency` an upper-case ISO 4217 code; `date` "YYYY-MM-DD" (a Partner Center datetime is read
as its UTC date and written as midnight UTC); `country` an upper-case ISO 3166-1 alpha-2 code
(read from a code or a country name); `boolean` a bool (null reads as False, so an unset Partner
Center flag equals an unticked checkbox); `picklist` the Partner Center value, mapped to and from
Salesforce picklist values through `values`, with optional defaults for values the map lacks.

Invariant (tested with Hypothesis): for every transform and side, on canonical values,
`from_side(to_side(v)) == v`. The stage transform is the exception in shape only: it reads two
Partner Center members and the current Salesforce stage, so its functions live on the mapping's
`StageTable`.

A wire value that cannot be read (a deal value "lots", an unmapped picklist value without a
default) raises `ValueMappingError`, whose message names the field, the value and the fix; the
reconcile parks that one link with it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cosell.mapping.countries import country_code, country_name
from cosell.mapping.types import Value
from cosell.partnercenter.models import DealType, Referral

CENTS = Decimal("0.01")  # canonical amounts carry two decimal places, like most currencies
# Opportunity.Amount is a currency field of precision 16, scale 2: 14 digits before the point.
# A larger value cannot be held on the Salesforce side, so it is refused when it is read.
AMOUNT_PRECISION, AMOUNT_SCALE = 16, 2
AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_PRECISION - AMOUNT_SCALE)
# Salesforce stores dates from 1700-01-01 to 4000-12-31 ("Valid Date and DateTime Values").
EARLIEST_DATE, LATEST_DATE = date(1700, 1, 1), date(4000, 12, 31)
_FRACTION = re.compile(r"(\.\d{6})\d+")  # fromisoformat reads at most 6 fractional digits


class ValueMappingError(ValueError):
    """A value from one side cannot be mapped; the message says which, and what to change."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw == "")


class TextTransform(_Spec):
    """Strings as they are; an empty string reads as None."""

    type: Literal["text"] = "text"

    def from_partner_center(self, raw: Any) -> Value:
        """Canonical value of a Partner Center string."""
        return _text(raw)

    def from_salesforce(self, raw: Any) -> Value:
        """Canonical value of a Salesforce string."""
        return _text(raw)

    def to_partner_center(self, value: Value) -> Any:
        """Partner Center value of a canonical string."""
        return value

    def to_salesforce(self, value: Value) -> Any:
        """Salesforce value of a canonical string."""
        return value


def _text(raw: Any) -> Value:
    if _blank(raw):
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


class AmountTransform(_Spec):
    """Money amounts: `dealValue` (number or numeric string) and a currency or double field."""

    type: Literal["amount"] = "amount"

    def from_partner_center(self, raw: Any) -> Value:
        """Canonical amount ("25000.00") of a Partner Center number or numeric string."""
        return _amount(raw)

    def from_salesforce(self, raw: Any) -> Value:
        """Canonical amount of a Salesforce number."""
        return _amount(raw)

    def to_partner_center(self, value: Value) -> Any:
        """A JSON number: an integer when whole, else a float."""
        return _number(value)

    def to_salesforce(self, value: Value) -> Any:
        """A JSON number: an integer when whole, else a float."""
        return _number(value)


def _amount(raw: Any) -> Value:
    if _blank(raw):
        return None
    if isinstance(raw, bool):
        raise ValueMappingError(f"{raw!r} is not an amount")
    text = raw.replace(",", "").strip() if isinstance(raw, str) else str(raw)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueMappingError(
            f"{raw!r} is not an amount (write a number such as 25000.00)"
        ) from None
    if not number.is_finite():
        raise ValueMappingError(f"{raw!r} is not an amount (write a number such as 25000.00)")
    rounded = number.quantize(CENTS, rounding=ROUND_HALF_UP) if abs(number) < AMOUNT_LIMIT else None
    if rounded is None or abs(rounded) >= AMOUNT_LIMIT:
        raise ValueMappingError(
            f"{_shown(raw)} is too large for Salesforce's currency field (precision "
            f"{AMOUNT_PRECISION}, scale {AMOUNT_SCALE}: at most {AMOUNT_LIMIT - CENTS:,}); "
            "correct the deal value"
        )
    return str(rounded)


def _shown(raw: Any) -> str:
    text = repr(raw.isoformat()) if isinstance(raw, date) else repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Value) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueMappingError(f"{value!r} is not an amount")
    number = Decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


class CurrencyTransform(_Spec):
    """ISO 4217 currency codes, compared upper-case."""

    type: Literal["currency"] = "currency"

    def from_partner_center(self, raw: Any) -> Value:
        """Canonical (upper-case) currency code."""
        return None if _blank(raw) else str(raw).strip().upper() or None

    def from_salesforce(self, raw: Any) -> Value:
        """Canonical (upper-case) currency code."""
        return None if _blank(raw) else str(raw).strip().upper() or None

    def to_partner_center(self, value: Value) -> Any:
        """The code."""
        return value

    def to_salesforce(self, value: Value) -> Any:
        """The code."""
        return value


class DateTransform(_Spec):
    """A Partner Center datetime (`closingDateTime`) and a Salesforce date (`CloseDate`)."""

    type: Literal["date"] = "date"

    def from_partner_center(self, raw: Any) -> Value:
        """The UTC date of a Partner Center datetime, "YYYY-MM-DD"."""
        return _date(raw)

    def from_salesforce(self, raw: Any) -> Value:
        """The date of a Salesforce date (or datetime), "YYYY-MM-DD"."""
        return _date(raw)

    def to_partner_center(self, value: Value) -> Any:
        """Midnight UTC of the date, as Partner Center writes datetimes."""
        return None if value is None else f"{value}T00:00:00Z"

    def to_salesforce(self, value: Value) -> Any:
        """The date, "YYYY-MM-DD"."""
        return value


def _date(raw: Any) -> Value:
    if _blank(raw):
        return None
    if isinstance(raw, datetime):
        moment = raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)
        try:
            return _in_range(raw, moment.astimezone(UTC).date())
        except OverflowError:  # year 1 or 9999 moved across midnight by its offset
            return _in_range(raw, None)
    if isinstance(raw, date):
        return _in_range(raw, raw)
    text = str(raw).strip()
    try:
        if len(text) == len("2026-06-30"):
            parsed: date = date.fromisoformat(text)
        else:
            parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("z", "Z")))
    except ValueError:
        raise ValueMappingError(
            f"{_shown(raw)} is not a date (expected YYYY-MM-DD or an ISO 8601 datetime)"
        ) from None
    return _date(parsed)


def _in_range(raw: Any, day: date | None) -> str:
    if day is None or not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueMappingError(
            f"{_shown(raw)} is out of the range of dates Salesforce can hold "
            f"({EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}); correct the date"
        )
    return day.isoformat()


class CountryTransform(_Spec):
    """ISO 3166-1 alpha-2 codes, read from a code or a country name in any case.

    Attributes:
        salesforce_format: write a code ("US") or the country's name ("United States") to
            Salesforce.
    """

    type: Literal["country"] = "country"
    salesforce_format: Literal["code", "name"] = "code"

    def from_partner_center(self, raw: Any) -> Value:
        """The alpha-2 code (an unknown name is kept as written, trimmed)."""
        return _country(raw)

    def from_salesforce(self, raw: Any) -> Value:
        """The alpha-2 code (an unknown name is kept as written, trimmed)."""
        return _country(raw)

    def to_partner_center(self, value: Value) -> Any:
        """The alpha-2 code."""
        return value

    def to_salesforce(self, value: Value) -> Any:
        """The code, or the country's name when `salesforce_format` is `name`."""
        if value is None or self.salesforce_format == "code" or not isinstance(value, str):
            return value
        return country_name(value) or value


def _country(raw: Any) -> Value:
    if _blank(raw):
        return None
    text = str(raw).strip()
    return country_code(text) or text or None


class BooleanTransform(_Spec):
    """Flags and checkboxes; null reads as False."""

    type: Literal["boolean"] = "boolean"

    def from_partner_center(self, raw: Any) -> Value:
        """The flag (null is False)."""
        return _bool(raw)

    def from_salesforce(self, raw: Any) -> Value:
        """The checkbox."""
        return _bool(raw)

    def to_partner_center(self, value: Value) -> Any:
        """The flag."""
        return bool(value)

    def to_salesforce(self, value: Value) -> Any:
        """The checkbox."""
        return bool(value)


def _bool(raw: Any) -> Value:
    if _blank(raw):
        return False
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueMappingError(f"{raw!r} is not true or false")


class PicklistTransform(_Spec):
    """Partner Center enum values mapped to Salesforce picklist values.

    The canonical value is the Partner Center value. A Partner Center value mapped to `null`
    means "no value" (e.g. `Unknown: null`). A Salesforce value missing from the map reads as
    `partner_center_default` when one is given, else it is an error; a Partner Center value
    missing from the map is written as `salesforce_default` when given, else it is an error.

    Attributes:
        values: Partner Center value -> Salesforce value (or null for none).
        partner_center_default: canonical value for Salesforce values the map lacks.
        salesforce_default: Salesforce value for Partner Center values the map lacks.
    """

    type: Literal["picklist"] = "picklist"
    values: dict[str, str | None] = Field(min_length=1)
    partner_center_default: str | None = None
    salesforce_default: str | None = None

    @model_validator(mode="after")
    def _defaults_are_known(self) -> PicklistTransform:
        default = self.partner_center_default
        if default is not None and default not in self.values:
            raise ValueError(
                f"partner_center_default {default!r} is not one of the Partner Center values of "
                f"`values` ({', '.join(self.values)})"
            )
        return self

    def _pc_key(self, raw: str) -> str | None:
        if raw in self.values:
            return raw
        lowered = raw.lower()
        return next((k for k in self.values if k.lower() == lowered), None)

    def from_partner_center(self, raw: Any) -> Value:
        """The Partner Center value in the map's spelling; None for values mapped to null."""
        if _blank(raw):
            return None
        text = str(raw)
        key = self._pc_key(text)
        if key is None:
            return text
        return None if self.values[key] is None else key

    def from_salesforce(self, raw: Any) -> Value:
        """The Partner Center value the Salesforce value maps to."""
        if _blank(raw):
            return None
        text = str(raw)
        for key, target in self.values.items():
            if target is not None and target.lower() == text.lower():
                return key
        if "partner_center_default" in self.model_fields_set:
            return self.from_partner_center(self.partner_center_default)
        known = ", ".join(repr(v) for v in self.values.values() if v is not None)
        raise ValueMappingError(
            f"Salesforce value {text!r} is not in the mapping's picklist values ({known}); add "
            "it to `values` or set `partner_center_default`"
        )

    def to_partner_center(self, value: Value) -> Any:
        """The Partner Center value."""
        return value

    def to_salesforce(self, value: Value) -> Any:
        """The Salesforce value the canonical (Partner Center) value maps to."""
        if value is None:
            return None
        key = self._pc_key(str(value))
        if key is not None:
            return self.values[key]
        if "salesforce_default" in self.model_fields_set:
            return self.salesforce_default
        raise ValueMappingError(
            f"Partner Center value {value!r} is not in the mapping's picklist values "
            f"({', '.join(self.values)}); add it to `values` or set `salesforce_default`"
        )


_DEAL_TYPES: dict[str, str | None] = {t.value: t.value for t in DealType}


class DealTypeTransform(PicklistTransform):
    """Private / Partner-led / Co-sell <-> the referral's consent and help requested (spec §9.2).

    The canonical value is the deal type's name (`DealType`). Partner Center has no deal-type
    member: read, the deal type is derived from the whole referral (`DealType.of`: the consent
    to share with Microsoft sellers and the help requested); written, it is the consent
    (`consent/consentToShareReferralWithMicrosoftSellers`, the field's path): False for Private,
    True otherwise. The help itself travels in its own field (How can Microsoft help?), and
    which changes Partner Center allows is `cosell.sync.plan.rules`' to say. `values` maps the
    deal types to the Salesforce picklist's values (by default the same words).
    """

    type: Literal["deal_type"] = "deal_type"  # type: ignore[assignment]
    values: dict[str, str | None] = Field(default_factory=lambda: dict(_DEAL_TYPES), min_length=1)

    @model_validator(mode="after")
    def _deal_types_only(self) -> DealTypeTransform:
        unknown = sorted(set(self.values) - set(_DEAL_TYPES))
        if unknown:
            raise ValueError(
                f"deal_type values {', '.join(unknown)} are not deal types; the keys are "
                f"{', '.join(_DEAL_TYPES)}"
            )
        return self

    def from_partner_center(self, raw: Any) -> Value:
        """The deal type of a referral (its JSON), or of a consent flag alone."""
        if isinstance(raw, dict):
            referral = Referral.model_validate(raw)
            return super().from_partner_center(referral.deal_type.value)
        if isinstance(raw, bool):
            return super().from_partner_center(DealType.of(raw, None).value)
        return super().from_partner_center(raw)

    def to_partner_center(self, value: Value) -> Any:
        """The consent to share with Microsoft sellers the deal type gives."""
        if value is None:
            return None
        return DealType(str(value)).consent


class StageTransform(_Spec):
    """Partner Center status and substatus <-> the opportunity's stage (see `StageTable`)."""

    type: Literal["stage"] = "stage"


Transform = Annotated[
    TextTransform
    | AmountTransform
    | CurrencyTransform
    | DateTransform
    | CountryTransform
    | BooleanTransform
    | PicklistTransform
    | DealTypeTransform
    | StageTransform,
    Field(discriminator="type"),
]
"""One field's transform; YAML may give just its name (`transform: date`)."""

SimpleTransform = (
    TextTransform
    | AmountTransform
    | CurrencyTransform
    | DateTransform
    | CountryTransform
    | BooleanTransform
    | PicklistTransform
    | DealTypeTransform
)
"""The transforms whose four functions need nothing but the value (the deal type: the referral)."""

TRANSFORM_NAMES = (
    "text",
    "amount",
    "currency",
    "date",
    "country",
    "boolean",
    "picklist",
    "deal_type",
    "stage",
)
