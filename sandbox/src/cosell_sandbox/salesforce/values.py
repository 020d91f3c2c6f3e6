"""Wire formats of Salesforce values: datetimes, dates, HTTP dates.

Salesforce writes datetimes as `yyyy-MM-ddTHH:mm:ss.SSS+0000` (always UTC, milliseconds) and
dates as `yyyy-MM-dd` (spec §2.8). It reads datetimes more liberally: `Z`, `+00:00`, `+0000`
or any other offset, with or without fractional seconds; everything is converted to UTC.
Conditional request headers use HTTP dates (`EEE, dd MMM yyyy HH:mm:ss z`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime as _format_http_date
from email.utils import parsedate_to_datetime

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def format_datetime(value: datetime) -> str:
    """`value` in Salesforce's wire form, e.g. `2024-05-01T10:00:00.000+0000`."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """A datetime as Salesforce accepts it in a body or a query parameter (naive means UTC).

    Raises:
        ValueError: not a datetime.
    """
    match = _DATETIME.match(text.strip())
    if not match:
        raise ValueError(f"not a datetime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    tz = UTC
    result = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micros, tz
    )
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        result -= sign * offset
    return result


def parse_date(text: str) -> date:
    """A `yyyy-MM-dd` date.

    Raises:
        ValueError: not a date.
    """
    match = _DATE.match(text.strip())
    if not match:
        raise ValueError(f"not a date: {text!r}")
    return date(int(match[1]), int(match[2]), int(match[3]))


def parse_http_date(text: str) -> datetime:
    """An HTTP date header value (`Tue, 05 Jan 2026 09:00:00 GMT`), as aware UTC.

    Raises:
        ValueError: not an HTTP date.
    """
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not an HTTP date: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_http_date(value: datetime) -> str:
    """`value` as an HTTP date (`Last-Modified`, `If-Modified-Since`)."""
    return _format_http_date(value.astimezone(UTC), usegmt=True)


def epoch_millis(value: datetime) -> int:
    """Milliseconds since the Unix epoch, as CDC's commitTimestamp."""
    return int(value.timestamp() * 1000)
