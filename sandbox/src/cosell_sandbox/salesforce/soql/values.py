"""How SOQL compares and sorts values: one comparison key per describe type.

Rows hold wire values (`catalog.py`); literals come from the parser. Both are turned into keys
of one Python type per field *kind*, so that comparing two keys is comparing what Salesforce
compares:

| kind          | describe types                                         | key                        |
|---------------|--------------------------------------------------------|----------------------------|
| string        | string, textarea, picklist, combobox, email, phone, url | `str.casefold()`           |
| multipicklist | multipicklist                                          | frozenset of casefolded values |
| id            | id, reference                                          | the first 15 characters    |
| number        | int, double, currency, percent, long                   | `int` or `float`           |
| boolean       | boolean                                                | `bool`                     |
| date          | date                                                   | `datetime.date`            |
| datetime      | datetime                                               | aware `datetime` in UTC    |

Strings compare case-insensitively, as Salesforce does for =, !=, IN, LIKE and ORDER BY. An id
key is the case-sensitive 15-character id, so a 15-character literal matches its 18-character
form (literals are canonicalised by `ids.to_18`, which also repairs an 18-character id whose
case was lost). Wire datetimes are read with `datetime.fromisoformat`, which takes Salesforce's
`+0000` form directly and is several times faster than a general parser over 50,000 rows. Other describe types (base64,
address, location ...) have no kind: they cannot be filtered or sorted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Final

STRING: Final = "string"
MULTIPICKLIST: Final = "multipicklist"
ID: Final = "id"
NUMBER: Final = "number"
BOOLEAN: Final = "boolean"
DATE: Final = "date"
DATETIME: Final = "datetime"

_KINDS: Final = {
    "string": STRING,
    "textarea": STRING,
    "picklist": STRING,
    "combobox": STRING,
    "email": STRING,
    "phone": STRING,
    "url": STRING,
    "encryptedstring": STRING,
    "multipicklist": MULTIPICKLIST,
    "id": ID,
    "reference": ID,
    "int": NUMBER,
    "long": NUMBER,
    "double": NUMBER,
    "currency": NUMBER,
    "percent": NUMBER,
    "boolean": BOOLEAN,
    "date": DATE,
    "datetime": DATETIME,
}
# The type names Salesforce's messages use ("must be of type dateTime").
_MESSAGE_TYPES: Final = {
    STRING: "string",
    MULTIPICKLIST: "string",
    ID: "id",
    BOOLEAN: "boolean",
    DATE: "date",
    DATETIME: "dateTime",
}
SHORT_ID_LENGTH: Final = 15  # the case-sensitive id; 18-character ids add a 3-character checksum


def kind_of(describe_type: str) -> str | None:
    """The comparison kind of a describe type, or None when SOQL cannot compare it."""
    return _KINDS.get(describe_type)


def message_type(kind: str, describe_type: str) -> str:
    """The type name Salesforce's filter error messages use for a field."""
    if kind == NUMBER:
        return "int" if describe_type == "int" else "double"
    return _MESSAGE_TYPES.get(kind, describe_type)


def split_multipicklist(text: str) -> frozenset[str]:
    """The set of values in a `;`-separated multipicklist value, casefolded."""
    return frozenset(part.strip().casefold() for part in text.split(";") if part.strip())


def parse_datetime(value: Any) -> datetime:
    """A wire datetime (`2024-05-01T10:00:00.000+0000`) as an aware UTC datetime."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_date(value: Any) -> date:
    """A wire date (`2024-05-01`) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])  # YYYY-MM-DD is ten characters


def row_key(kind: str, value: Any) -> Any:
    """The comparison key of a non-null wire value of a field of `kind`."""
    if kind == STRING:
        return str(value).casefold()
    if kind == ID:
        return str(value)[:SHORT_ID_LENGTH]
    if kind == NUMBER:
        return value if isinstance(value, int | float) else float(value)
    if kind == BOOLEAN:
        return bool(value)
    if kind == DATE:
        return parse_date(value)
    if kind == DATETIME:
        return parse_datetime(value)
    if kind == MULTIPICKLIST:
        return split_multipicklist(str(value))
    raise AssertionError(f"no comparison key for kind {kind!r}")
