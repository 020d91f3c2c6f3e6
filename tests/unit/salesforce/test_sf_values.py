"""SOQL literals cannot be broken out of; Salesforce datetimes read and write back."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosell.salesforce.values import (
    format_datetime,
    parse_datetime,
    soql_date,
    soql_datetime,
    soql_in,
    soql_like,
    soql_quote,
)

_UNESCAPE = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "%": "%",
    "_": "_",
}


def _read_literal(text: str) -> tuple[str, str]:
    """Read one SOQL string literal the way a SOQL lexer does; return (value, rest)."""
    assert text[0] == "'"
    out, i = [], 1
    while True:
        ch = text[i]
        if ch == "\\":
            out.append(_UNESCAPE[text[i + 1]])
            i += 2
        elif ch == "'":
            return "".join(out), text[i + 1 :]
        else:
            out.append(ch)
            i += 1


@given(st.text())
def test_quote_round_trips_and_the_literal_ends_where_it_should(value: str) -> None:
    literal = soql_quote(value)
    read, rest = _read_literal(literal + " AND Id != null")
    assert read == value
    assert rest == " AND Id != null"


@given(st.text())
def test_like_round_trips_with_wildcards_escaped(value: str) -> None:
    literal = soql_like(value)
    read, rest = _read_literal(literal)
    assert read == value
    assert rest == ""
    assert not re.search(r"(?<!\\)[%_]", literal.replace("\\\\", ""))


def test_injection_attempt_stays_inside_the_literal() -> None:
    assert soql_quote("x' OR Name != '") == "'x\\' OR Name != \\''"
    assert soql_quote("a\\'b") == "'a\\\\\\'b'"


def test_in_list() -> None:
    assert soql_in(["a", "b'c"]) == "('a','b\\'c')"
    with pytest.raises(ValueError, match="at least one"):
        soql_in([])


def test_datetime_literals_are_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert soql_datetime(datetime(2026, 1, 5, 10, 0, tzinfo=cet)) == "2026-01-05T09:00:00Z"
    assert (
        soql_datetime(datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)) == "2026-01-05T09:00:00Z"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        soql_datetime(datetime(2026, 1, 5))  # noqa: DTZ001
    assert soql_date(date(2026, 1, 5)) == "2026-01-05"
    with pytest.raises(TypeError):
        soql_date(datetime(2026, 1, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05T09:00:00.000+0000",
        "2026-01-05T09:00:00Z",
        "2026-01-05T09:00:00+00:00",
        "2026-01-05T10:00:00.000+0100",
    ],
)
def test_parse_salesforce_datetimes(text: str) -> None:
    assert parse_datetime(text) == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_parse_refuses_naive_and_format_writes_salesforce_form() -> None:
    with pytest.raises(ValueError, match="without a zone"):
        parse_datetime("2026-01-05T09:00:00")
    when = datetime(2026, 1, 5, 9, 0, 1, 250000, tzinfo=UTC)
    assert format_datetime(when) == "2026-01-05T09:00:01.250+0000"
    assert parse_datetime(format_datetime(when)) == when
