"""SOQL date literals (TODAY, LAST_N_DAYS:n, THIS_QUARTER ...) as half-open ranges of days.

A date literal names a range of whole days relative to "today", which the sandbox takes as the UTC
date of the injected `now` (Salesforce uses the user's time zone; the sandbox's user lives in UTC).
`literal_range(name, n, today)` returns `[start, end)` as dates. The evaluator uses it on date
fields directly and on datetime fields as `[start 00:00Z, end 00:00Z)`, so `= TODAY` on a
datetime covers the whole UTC day. Comparisons follow from the range: `= L` is inside,
`< L` before `start`, `<= L` before `end`, `> L` at or after `end`, `>= L` at or after `start`.

Ranges, as Salesforce documents them (weeks start on Sunday, the en_US locale's first day):

- TODAY, YESTERDAY, TOMORROW: one day.
- THIS/LAST/NEXT_WEEK, _MONTH, _QUARTER, _YEAR: the calendar period containing today, the one
  before, the one after (quarters start in January, April, July, October).
- LAST_90_DAYS and LAST_N_DAYS:n: the past n days *and today* (n + 1 days).
- NEXT_90_DAYS and NEXT_N_DAYS:n: the n days starting tomorrow (today excluded).
- LAST_N_WEEKS/MONTHS/QUARTERS/YEARS:n: the n whole periods before the current one.
- NEXT_N_WEEKS/MONTHS/QUARTERS/YEARS:n: the n whole periods after the current one.
- N_DAYS_AGO/N_WEEKS_AGO/N_MONTHS_AGO/N_QUARTERS_AGO/N_YEARS_AGO:n: the one period n periods ago.

Fiscal literals (THIS_FISCAL_YEAR ...) need the org's fiscal year settings, which the sandbox
does not model; the parser rejects them as unsupported.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

DAYS_IN_WEEK: Final = 7
MONTHS_IN_QUARTER: Final = 3
MONTHS_IN_YEAR: Final = 12
NINETY: Final = 90  # LAST_90_DAYS and NEXT_90_DAYS are LAST/NEXT_N_DAYS:90

FIXED_LITERALS: Final = frozenset(
    {
        "YESTERDAY",
        "TODAY",
        "TOMORROW",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
        "LAST_QUARTER",
        "THIS_QUARTER",
        "NEXT_QUARTER",
        "LAST_YEAR",
        "THIS_YEAR",
        "NEXT_YEAR",
    }
)
_UNITS: Final = ("DAYS", "WEEKS", "MONTHS", "QUARTERS", "YEARS")
N_LITERALS: Final = frozenset(
    {f"LAST_N_{unit}" for unit in _UNITS}
    | {f"NEXT_N_{unit}" for unit in _UNITS}
    | {f"N_{unit}_AGO" for unit in _UNITS}
)
FISCAL_MARKER: Final = "FISCAL"


def _add_months(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s month."""
    index = day.year * MONTHS_IN_YEAR + (day.month - 1) + months
    return date(index // MONTHS_IN_YEAR, index % MONTHS_IN_YEAR + 1, 1)


def _period_start(today: date, unit: str) -> date:
    """The first day of the calendar period of `unit` that contains `today`."""
    if unit == "DAYS":
        return today
    if unit == "WEEKS":
        # date.weekday() is 0 on Monday; Sunday-first weeks start (weekday + 1) % 7 days back
        return today - timedelta(days=(today.weekday() + 1) % DAYS_IN_WEEK)
    if unit == "MONTHS":
        return today.replace(day=1)
    if unit == "QUARTERS":
        first_month = (today.month - 1) // MONTHS_IN_QUARTER * MONTHS_IN_QUARTER + 1
        return date(today.year, first_month, 1)
    return date(today.year, 1, 1)


def _shift(start: date, unit: str, count: int) -> date:
    """`start` (a period start) moved by `count` periods of `unit`."""
    if unit == "DAYS":
        return start + timedelta(days=count)
    if unit == "WEEKS":
        return start + timedelta(days=DAYS_IN_WEEK * count)
    if unit == "MONTHS":
        return _add_months(start, count)
    if unit == "QUARTERS":
        return _add_months(start, MONTHS_IN_QUARTER * count)
    return _add_months(start, MONTHS_IN_YEAR * count)


def literal_range(name: str, n: int | None, today: date) -> tuple[date, date]:
    """The half-open range of days `[start, end)` a date literal stands for.

    Args:
        name: the literal in upper case, e.g. "THIS_MONTH" or "LAST_N_DAYS".
        n: the argument of an `_N_` literal, None for the fixed ones.
        today: the current date (UTC).

    Returns:
        The first day in the range and the first day after it.
    """
    fixed = {
        "YESTERDAY": ("DAYS", -1),
        "TODAY": ("DAYS", 0),
        "TOMORROW": ("DAYS", 1),
    }
    if name in fixed:
        unit, step = fixed[name]
        start = _shift(today, unit, step)
        return start, _shift(start, unit, 1)
    if name == "LAST_90_DAYS":
        return literal_range("LAST_N_DAYS", NINETY, today)
    if name == "NEXT_90_DAYS":
        return literal_range("NEXT_N_DAYS", NINETY, today)
    relation, _, unit = name.partition("_")
    if relation in {"THIS", "LAST", "NEXT"} and n is None:
        unit = unit + "S"
        start = _shift(
            _period_start(today, unit), unit, {"THIS": 0, "LAST": -1, "NEXT": 1}[relation]
        )
        return start, _shift(start, unit, 1)
    assert n is not None, f"{name} takes an argument"
    if name.startswith("N_"):
        unit = name[2:].removesuffix("_AGO")
        start = _shift(_period_start(today, unit), unit, -n)
        return start, _shift(start, unit, 1)
    unit = name.split("_")[2]
    current = _period_start(today, unit)
    if relation == "LAST":
        if unit == "DAYS":
            return today - timedelta(days=n), today + timedelta(days=1)
        return _shift(current, unit, -n), current
    following = _shift(current, unit, 1)
    return following, _shift(following, unit, n)
