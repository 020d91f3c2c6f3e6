"""Every transform both ways, round trips on canonical values (Hypothesis), and countries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosell.mapping import StageTable, ValueMappingError
from cosell.mapping.countries import ALIASES, COUNTRIES, country_code, country_name
from cosell.mapping.transforms import (
    AmountTransform,
    BooleanTransform,
    CountryTransform,
    CurrencyTransform,
    DateTransform,
    PicklistTransform,
    SimpleTransform,
    TextTransform,
)
from cosell.mapping.types import Value

HELP = PicklistTransform(
    values={
        "Unknown": None,
        "None": None,
        "GeneralOrOther": "General or other",
        "ProofOfConceptOrDemo": "Proof of concept or demo",
    }
)
STAGES = StageTable(
    on_hold_stage="On Hold",
    active_stage="Qualification",
    won_stage="Closed Won",
    lost_stage="Closed Lost",
    other_won_stages=("Won - Renewal",),
    other_lost_stages=("Closed - Duplicate",),
)
OPEN_STAGES = ("Prospecting", "Qualification", "Negotiation/Review")
ALL_STAGES = (
    *OPEN_STAGES,
    "On Hold",
    "Closed Won",
    "Closed Lost",
    "Won - Renewal",
    "Closed - Duplicate",
)

amounts = st.decimals(
    min_value=Decimal("-1e13"), max_value=Decimal("1e13"), places=2, allow_nan=False
).map(lambda d: str(d.quantize(Decimal("0.01"))))
canonical_values: dict[str, tuple[SimpleTransform, st.SearchStrategy[Value]]] = {
    "text": (TextTransform(), st.none() | st.text(min_size=1)),
    "amount": (AmountTransform(), st.none() | amounts),
    "currency": (
        CurrencyTransform(),
        st.none() | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    ),
    "date": (
        DateTransform(),
        st.none() | st.dates(date(1900, 1, 1), date(4000, 12, 31)).map(date.isoformat),
    ),
    "country": (CountryTransform(), st.none() | st.sampled_from([c[0] for c in COUNTRIES])),
    "country by name": (
        CountryTransform(salesforce_format="name"),
        st.none() | st.sampled_from([c[0] for c in COUNTRIES]),
    ),
    "boolean": (BooleanTransform(), st.booleans()),
    "picklist": (HELP, st.none() | st.sampled_from(["GeneralOrOther", "ProofOfConceptOrDemo"])),
}


@pytest.mark.parametrize("name", list(canonical_values))
@given(data=st.data())
def test_every_transform_round_trips_canonical_values_on_both_sides(
    name: str, data: st.DataObject
) -> None:
    transform, strategy = canonical_values[name]
    value = data.draw(strategy)
    assert transform.from_partner_center(transform.to_partner_center(value)) == value
    assert transform.from_salesforce(transform.to_salesforce(value)) == value


@given(value=st.sampled_from(["New/Pending", "Active/Accepted", "Closed/Won", "Closed/Lost"]))
def test_stage_round_trips_through_salesforce_whatever_the_current_stage(value: str) -> None:
    for current in (None, *ALL_STAGES):
        assert STAGES.from_salesforce(STAGES.to_salesforce(value, current)) == value


@given(
    value=st.sampled_from(
        [
            "New/Pending",
            "Active/Accepted",
            "Closed/Won",
            "Closed/Lost",
            "Closed/Declined",
            "Closed/Expired",
            "Closed/Error",
        ]
    )
)
def test_stage_round_trips_through_partner_center(value: str) -> None:
    assert STAGES.from_partner_center(*STAGES.to_partner_center(value)) == value


@pytest.mark.parametrize(
    "raw", ["25000", 25000, 25000.0, "25000.00", "25,000", Decimal("25000.001"), " 25000 "]
)
def test_amounts_from_either_side_read_as_two_decimal_strings(raw: Any) -> None:
    assert AmountTransform().from_partner_center(raw) == "25000.00"
    assert AmountTransform().from_salesforce(raw) == "25000.00"


def test_amounts_round_half_up_and_write_as_numbers() -> None:
    amount = AmountTransform()
    assert amount.from_salesforce(0.005) == "0.01"
    assert amount.from_salesforce("-3.335") == "-3.34"
    assert amount.to_partner_center("25000.00") == 25000
    assert isinstance(amount.to_partner_center("25000.00"), int)
    assert amount.to_salesforce("0.10") == 0.1
    assert amount.to_salesforce(None) is None


@pytest.mark.parametrize("raw", ["lots", True, "NaN", "Infinity"])
def test_amounts_refuse_what_is_not_a_number(raw: Any) -> None:
    with pytest.raises(ValueMappingError, match="not an amount"):
        AmountTransform().from_partner_center(raw)


@pytest.mark.parametrize("raw", [1e26, "1e26", Decimal("1e14"), -1e14, "99999999999999.995", 1e308])
def test_an_amount_salesforce_cannot_hold_is_refused_with_the_reason(raw: Any) -> None:
    # 1e26 once raised decimal.InvalidOperation: the deal never synced and nothing said why.
    for read in (AmountTransform().from_partner_center, AmountTransform().from_salesforce):
        with pytest.raises(ValueMappingError, match=r"too large .*precision 16, scale 2"):
            read(raw)


def test_the_largest_amount_salesforce_holds_is_read() -> None:
    assert AmountTransform().from_partner_center("99999999999999.99") == "99999999999999.99"
    assert AmountTransform().from_salesforce(-99999999999999.98) == "-99999999999999.98"


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-05:00",
        "1699-12-31",
        "4001-01-01T00:00:00Z",
        date(1, 1, 1),
        datetime(9999, 12, 31, tzinfo=UTC),
    ],
)
def test_a_date_salesforce_cannot_hold_is_refused_with_the_reason(raw: Any) -> None:
    with pytest.raises(ValueMappingError, match="out of the range of dates Salesforce can hold"):
        DateTransform().from_partner_center(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-06-30T00:00:00Z",
        "2026-06-30T00:00:00.0000000Z",
        "2026-06-30T00:00:00.000+00:00",
        "2026-06-30T12:30:00",
        "2026-06-30T20:00:00-03:00",
        "2026-06-30",
        datetime(2026, 6, 30, 23, 59, tzinfo=UTC),
        datetime(2026, 6, 30, 23, 59),  # noqa: DTZ001 (naive reads as UTC)
        date(2026, 6, 30),
    ],
)
def test_dates_and_datetimes_read_as_the_utc_date(raw: Any) -> None:
    assert DateTransform().from_partner_center(raw) == "2026-06-30"
    assert DateTransform().from_salesforce(raw) == "2026-06-30"


def test_a_datetime_late_in_a_western_zone_is_the_next_utc_day() -> None:
    late = datetime(2026, 6, 30, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert DateTransform().from_partner_center(late.isoformat()) == "2026-07-01"


def test_dates_write_midnight_utc_to_partner_center_and_the_date_to_salesforce() -> None:
    assert DateTransform().to_partner_center("2026-06-30") == "2026-06-30T00:00:00Z"
    assert DateTransform().to_salesforce("2026-06-30") == "2026-06-30"
    assert DateTransform().to_partner_center(None) is None


@pytest.mark.parametrize("raw", ["30/06/2026", "tomorrow", "2026-13-01"])
def test_dates_refuse_other_formats(raw: str) -> None:
    with pytest.raises(ValueMappingError, match="not a date"):
        DateTransform().from_salesforce(raw)


def test_currency_codes_compare_upper_case() -> None:
    assert CurrencyTransform().from_partner_center(" usd ") == "USD"
    assert CurrencyTransform().from_salesforce("") is None
    assert CurrencyTransform().to_salesforce("EUR") == "EUR"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("US", "US"),
        ("us", "US"),
        ("USA", "US"),
        ("United States", "US"),
        ("united states of america", "US"),
        ("U.S.A.", "US"),
        ("UK", "GB"),
        ("United Kingdom", "GB"),
        ("Great Britain", "GB"),
        ("deu", "DE"),
        ("Deutschland", "DE"),
        ("Côte d'Ivoire", "CI"),
        ("Ivory Coast", "CI"),
        ("the Netherlands", "NL"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Viet Nam", "VN"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Czech Republic", "CZ"),
        ("  new   zealand ", "NZ"),
        ("Bosnia and Herzegovina", "BA"),
    ],
)
def test_countries_read_from_codes_names_and_aliases(raw: str, code: str) -> None:
    assert country_code(raw) == code
    assert CountryTransform().from_salesforce(raw) == code


def test_an_unknown_country_is_kept_as_written_not_guessed() -> None:
    assert country_code("Atlantis") is None
    assert CountryTransform().from_salesforce(" Atlantis ") == "Atlantis"
    assert CountryTransform().from_partner_center(None) is None


def test_countries_write_codes_or_names() -> None:
    assert CountryTransform().to_salesforce("GB") == "GB"
    assert CountryTransform(salesforce_format="name").to_salesforce("GB") == "United Kingdom"
    assert CountryTransform(salesforce_format="name").to_partner_center("GB") == "GB"
    assert country_name("us") == "United States"
    assert country_name("ZZ") is None


def test_the_country_table_is_iso_3166_and_names_are_unambiguous() -> None:
    assert len(COUNTRIES) == 249
    assert len({c[0] for c in COUNTRIES}) == 249
    for alpha2, alpha3, names in COUNTRIES:
        assert country_code(alpha2) == alpha2
        assert country_code(alpha3) == alpha2
        for name in names:
            assert country_code(name) == alpha2, name
    for alpha2, aliases in ALIASES.items():
        for alias in aliases:
            assert country_code(alias) == alpha2, alias


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, False), ("", False), (True, True), (False, False), ("true", True), ("0", False)],
)
def test_booleans_read_null_as_false(raw: Any, value: bool) -> None:
    assert BooleanTransform().from_partner_center(raw) is value
    assert BooleanTransform().from_salesforce(raw) is value


def test_booleans_refuse_other_text() -> None:
    with pytest.raises(ValueMappingError, match="not true or false"):
        BooleanTransform().from_salesforce("maybe")


def test_text_keeps_strings_exactly_and_reads_empty_as_none() -> None:
    text = TextTransform()
    assert text.from_partner_center("  spaced  ") == "  spaced  "
    assert text.from_salesforce("") is None
    assert text.from_salesforce(42) == "42"
    assert text.to_partner_center(None) is None


def test_picklist_maps_values_both_ways() -> None:
    assert HELP.from_salesforce("General or other") == "GeneralOrOther"
    assert HELP.from_salesforce("general OR other") == "GeneralOrOther"
    assert HELP.to_salesforce("GeneralOrOther") == "General or other"
    assert HELP.from_partner_center("generalorother") == "GeneralOrOther"
    assert HELP.from_partner_center("Unknown") is None
    assert HELP.from_partner_center("None") is None
    assert HELP.to_salesforce(None) is None
    assert HELP.from_salesforce(None) is None


def test_picklist_without_defaults_refuses_unmapped_values() -> None:
    with pytest.raises(ValueMappingError, match="'Free lunch' is not in the mapping"):
        HELP.from_salesforce("Free lunch")
    with pytest.raises(ValueMappingError, match="'QuotesOrLicensing' is not in the mapping"):
        HELP.to_salesforce("QuotesOrLicensing")
    assert HELP.from_partner_center("QuotesOrLicensing") == "QuotesOrLicensing"


def test_picklist_defaults_cover_unmapped_values() -> None:
    lenient = PicklistTransform(
        values={"GeneralOrOther": "General or other", "Unknown": None},
        partner_center_default="GeneralOrOther",
        salesforce_default="General or other",
    )
    assert lenient.from_salesforce("Free lunch") == "GeneralOrOther"
    assert lenient.to_salesforce("QuotesOrLicensing") == "General or other"
    to_null = PicklistTransform(values={"Unknown": None, "A": "a"}, partner_center_default=None)
    assert to_null.from_salesforce("zzz") is None


def test_picklist_default_must_be_a_mapped_value() -> None:
    with pytest.raises(ValueError, match="partner_center_default 'Z' is not one of"):
        PicklistTransform(values={"A": "a"}, partner_center_default="Z")


@pytest.mark.parametrize(
    ("value", "current", "written"),
    [
        ("New/Pending", None, "On Hold"),
        ("Active/Accepted", None, "Qualification"),
        ("Active/Accepted", "On Hold", "Qualification"),
        ("Active/Accepted", "Negotiation/Review", "Negotiation/Review"),
        ("Active/Accepted", "Closed Lost", "Qualification"),
        ("Closed/Won", "Negotiation/Review", "Closed Won"),
        ("Closed/Won", "Won - Renewal", "Won - Renewal"),
        ("Closed/Lost", "Prospecting", "Closed Lost"),
        ("Closed/Lost", "Closed - Duplicate", "Closed - Duplicate"),
        ("Closed/Declined", "On Hold", "Closed Lost"),
        ("Closed/Expired", "On Hold", "Closed Lost"),
        ("Closed/Error", None, "Closed Lost"),
        ("New/Received", "On Hold", "On Hold"),
        (None, "Prospecting", None),
    ],
)
def test_stage_writes_keep_a_current_stage_that_means_the_same(
    value: str | None, current: str | None, written: str | None
) -> None:
    assert STAGES.to_salesforce(value, current) == written


def test_stage_reads_the_stage_table() -> None:
    assert STAGES.from_salesforce("On Hold") == "New/Pending"
    assert STAGES.from_salesforce("Prospecting") == "Active/Accepted"
    assert STAGES.from_salesforce("Won - Renewal") == "Closed/Won"
    assert STAGES.from_salesforce("Closed - Duplicate") == "Closed/Lost"
    assert STAGES.from_salesforce(None) is None


@pytest.mark.parametrize("value", ["Closed", "None/None", True])
def test_stage_refuses_values_that_are_not_a_status(value: Any) -> None:
    with pytest.raises(ValueMappingError):
        STAGES.to_salesforce(value, None)
