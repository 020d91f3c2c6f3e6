"""Date literal ranges and date/datetime literal tokens of the SOQL engine."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cosell_sandbox.salesforce.soql import SoqlError
from cosell_sandbox.salesforce.soql.dates import FIXED_LITERALS, N_LITERALS, literal_range
from cosell_sandbox.salesforce.soql.lexer import DATE, DATETIME, tokenize

WEDNESDAY = date(2024, 5, 15)


def d(text: str) -> date:
    return date.fromisoformat(text)


RANGES = [
    ("YESTERDAY", None, "2024-05-14", "2024-05-15"),
    ("TODAY", None, "2024-05-15", "2024-05-16"),
    ("TOMORROW", None, "2024-05-16", "2024-05-17"),
    ("LAST_WEEK", None, "2024-05-05", "2024-05-12"),
    ("THIS_WEEK", None, "2024-05-12", "2024-05-19"),
    ("NEXT_WEEK", None, "2024-05-19", "2024-05-26"),
    ("LAST_MONTH", None, "2024-04-01", "2024-05-01"),
    ("THIS_MONTH", None, "2024-05-01", "2024-06-01"),
    ("NEXT_MONTH", None, "2024-06-01", "2024-07-01"),
    ("LAST_90_DAYS", None, "2024-02-15", "2024-05-16"),
    ("NEXT_90_DAYS", None, "2024-05-16", "2024-08-14"),
    ("LAST_QUARTER", None, "2024-01-01", "2024-04-01"),
    ("THIS_QUARTER", None, "2024-04-01", "2024-07-01"),
    ("NEXT_QUARTER", None, "2024-07-01", "2024-10-01"),
    ("LAST_YEAR", None, "2023-01-01", "2024-01-01"),
    ("THIS_YEAR", None, "2024-01-01", "2025-01-01"),
    ("NEXT_YEAR", None, "2025-01-01", "2026-01-01"),
    ("LAST_N_DAYS", 3, "2024-05-12", "2024-05-16"),
    ("NEXT_N_DAYS", 3, "2024-05-16", "2024-05-19"),
    ("N_DAYS_AGO", 3, "2024-05-12", "2024-05-13"),
    ("LAST_N_WEEKS", 2, "2024-04-28", "2024-05-12"),
    ("NEXT_N_WEEKS", 2, "2024-05-19", "2024-06-02"),
    ("N_WEEKS_AGO", 1, "2024-05-05", "2024-05-12"),
    ("LAST_N_MONTHS", 2, "2024-03-01", "2024-05-01"),
    ("NEXT_N_MONTHS", 2, "2024-06-01", "2024-08-01"),
    ("N_MONTHS_AGO", 5, "2023-12-01", "2024-01-01"),
    ("LAST_N_QUARTERS", 2, "2023-10-01", "2024-04-01"),
    ("NEXT_N_QUARTERS", 3, "2024-07-01", "2025-04-01"),
    ("N_QUARTERS_AGO", 1, "2024-01-01", "2024-04-01"),
    ("LAST_N_YEARS", 2, "2022-01-01", "2024-01-01"),
    ("NEXT_N_YEARS", 1, "2025-01-01", "2026-01-01"),
    ("N_YEARS_AGO", 2, "2022-01-01", "2023-01-01"),
]


@pytest.mark.parametrize(
    ("name", "n", "start", "end"), RANGES, ids=[f"{r[0]}:{r[1]}" for r in RANGES]
)
def test_literal_ranges_on_a_wednesday(name: str, n: int | None, start: str, end: str) -> None:
    assert literal_range(name, n, WEDNESDAY) == (d(start), d(end))


def test_every_literal_is_in_the_table() -> None:
    assert {name for name, *_ in RANGES} == FIXED_LITERALS | N_LITERALS


def test_a_week_starts_on_sunday() -> None:
    assert literal_range("THIS_WEEK", None, d("2024-05-12")) == (d("2024-05-12"), d("2024-05-19"))
    assert literal_range("THIS_WEEK", None, d("2024-05-18")) == (d("2024-05-12"), d("2024-05-19"))


def test_periods_cross_the_year_end() -> None:
    new_year_eve = d("2024-12-31")
    assert literal_range("NEXT_MONTH", None, new_year_eve) == (d("2025-01-01"), d("2025-02-01"))
    assert literal_range("TOMORROW", None, new_year_eve) == (d("2025-01-01"), d("2025-01-02"))
    assert literal_range("NEXT_QUARTER", None, new_year_eve) == (d("2025-01-01"), d("2025-04-01"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00+00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00-05:00", datetime(2024, 5, 1, 15, tzinfo=UTC)),
        ("2024-05-01T10:00:00+0530", datetime(2024, 5, 1, 4, 30, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123Z", datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T00:30:00.5+01:00", datetime(2024, 4, 30, 23, 30, 0, 500000, tzinfo=UTC)),
    ],
)
def test_datetime_literals_are_normalised_to_utc(text: str, expected: datetime) -> None:
    [token, _eof] = tokenize(text)
    assert (token.kind, token.value) == (DATETIME, expected)


def test_date_literal_token() -> None:
    [token, _eof] = tokenize("2024-02-29")
    assert (token.kind, token.value) == (DATE, date(2024, 2, 29))


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29",
        "2024-13-01",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:00Z",
        "2024-05-01T10:00:00+25:00",
        "2024-05-01T10:00:00",
    ],
)
def test_impossible_dates_and_times_are_malformed(text: str) -> None:
    with pytest.raises(SoqlError) as caught:
        tokenize(text)
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert f"invalid date or datetime literal: '{text}'" in caught.value.message
