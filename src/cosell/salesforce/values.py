r"""Salesforce value formats: ids, SOQL literals, and the datetimes Salesforce sends.

SOQL is text, so every value put into a query goes through one of the literal helpers here and
never through string formatting: `soql_quote` escapes a string so that no value can end the
literal early (the SOQL escapes are `\'`, `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`);
`soql_like` also escapes the LIKE wildcards `%` and `_`; `soql_datetime` and `soql_date` write
the unquoted UTC literals SOQL expects. `parse_datetime` reads Salesforce's
`2013-05-07T22:07:19.000+0000` form (and the ISO forms) into an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import NewType

SalesforceId = NewType("SalesforceId", str)
"""An 18-character (or 15-character) Salesforce record id, e.g. `006000000000001AAA`."""

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_LIKE_ESCAPES = {**_ESCAPES, "%": "\\%", "_": "\\_"}


def soql_quote(value: str) -> str:
    """A SOQL string literal for `value`, quotes included.

    Args:
        value: Any string, e.g. a customer-supplied name.

    Returns:
        `'...'` with every character SOQL treats specially escaped.
    """
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"


def soql_like(value: str) -> str:
    """A SOQL LIKE pattern literal matching `value` literally (wildcards escaped).

    Args:
        value: The text to match; add `%` around the result's content yourself if wanted.

    Returns:
        `'...'` with quotes, backslashes and the LIKE wildcards `%` and `_` escaped.
    """
    return "'" + "".join(_LIKE_ESCAPES.get(ch, ch) for ch in value) + "'"


def soql_in(values: Iterable[str]) -> str:
    """A parenthesised SOQL list of string literals, for `IN (...)`.

    Args:
        values: At least one string.

    Returns:
        `('a','b')`.

    Raises:
        ValueError: When `values` is empty (SOQL has no empty list).
    """
    quoted = [soql_quote(v) for v in values]
    if not quoted:
        raise ValueError("SOQL IN needs at least one value; skip the query when there are none")
    return "(" + ",".join(quoted) + ")"


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal in UTC, e.g. `2026-01-05T09:00:00Z` (unquoted).

    Sub-seconds are dropped: SOQL's documented datetime formats have none. Against a
    `SystemModstamp > literal` watermark this can only return extra rows of the same second
    (which a poller de-duplicates), never miss one.

    Args:
        value: A timezone-aware datetime.

    Returns:
        The literal.

    Raises:
        ValueError: For a naive datetime, whose meaning would depend on the machine's zone.
    """
    if value.tzinfo is None:
        raise ValueError("SOQL datetimes need a timezone-aware datetime (use UTC)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_date(value: date) -> str:
    """A SOQL date literal, e.g. `2026-01-05` (unquoted).

    Args:
        value: A date (a datetime is refused: convert it deliberately).

    Returns:
        The literal.

    Raises:
        TypeError: For a datetime.
    """
    if isinstance(value, datetime):
        raise TypeError("soql_date takes a date; use soql_datetime for a datetime")
    return value.isoformat()


def parse_datetime(value: str) -> datetime:
    """Read a Salesforce datetime (`2013-05-07T22:07:19.000+0000`, or ISO 8601) as UTC.

    Args:
        value: The datetime text from a record, a header or a result.

    Returns:
        A timezone-aware UTC datetime.

    Raises:
        ValueError: When the text is not a datetime with a zone.
    """
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"  # +0000 -> +00:00
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"Salesforce datetime without a zone: {value!r}")
    return parsed.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """Write a datetime the way Salesforce does in JSON bodies: `2026-01-05T09:00:00.000+0000`.

    Args:
        value: A timezone-aware datetime.

    Returns:
        The text.

    Raises:
        ValueError: For a naive datetime.
    """
    if value.tzinfo is None:
        raise ValueError("Salesforce datetimes need a timezone-aware datetime (use UTC)")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"
