r"""The SOQL tokenizer: query text to a list of tokens, each with its offset for error messages.

Token kinds:

- `NAME`: a name or keyword, `[A-Za-z_][A-Za-z0-9_]*`. Keywords are not reserved here; the parser
  decides by position, comparing case-insensitively.
- `STRING`: a single-quoted literal. Escapes are `\'`, `\"`, `\\`, `\n`, `\r`, `\t`, `\b`,
  `\f`, `\uXXXX`, and for LIKE patterns `\%` and `\_`; any other backslash sequence is
  MALFORMED_QUERY, as in Salesforce. The token's `value` is the decoded text; `literal_wildcards`
  lists the indices in `value` whose `%` or `_` came from `\%` / `\_`, so a LIKE pattern can
  tell an escaped wildcard from a live one.
- `NUMBER`: `[+-]? digits [. digits]` or `[+-]? . digits`; `value` is an `int` or a `Decimal`.
  SOQL has no arithmetic, so a sign directly before a digit always belongs to the number.
- `DATE` (`2024-05-01`) and `DATETIME` (`2024-05-01T10:00:00Z`, `...+00:00`, `...-0500`, with
  optional fractional seconds): `value` is a `date` or an aware `datetime` in UTC.
- `OP`: one of `( ) , . : = != <> < > <= >=`.
- `EOF`: the end, so the parser can say "unexpected token: '<EOF>'".

Whitespace (including newlines) separates tokens and is otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final

from cosell_sandbox.salesforce.soql.errors import MALFORMED_QUERY, SoqlError, located

NAME: Final = "NAME"
STRING: Final = "STRING"
NUMBER: Final = "NUMBER"
DATE: Final = "DATE"
DATETIME: Final = "DATETIME"
OP: Final = "OP"
EOF: Final = "EOF"

_SIMPLE_ESCAPES: Final = {
    "'": "'",
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
}
_WILDCARD_ESCAPES: Final = frozenset("%_")
_QUOTE_TABLE: Final = {
    ord("\\"): "\\\\",
    ord("'"): "\\'",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    ord("\b"): "\\b",
    ord("\f"): "\\f",
}
_TWO_CHAR_OPS: Final = ("!=", "<>", "<=", ">=")
_ONE_CHAR_OPS: Final = frozenset("(),.:=<>")
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_UNICODE_ESCAPE_DIGITS: Final = 4  # \uXXXX carries exactly four hex digits


@dataclass(frozen=True)
class Token:
    """One token: its kind, the source text it came from, its value and where it starts."""

    kind: str
    text: str
    offset: int
    value: object = None
    literal_wildcards: frozenset[int] = field(default_factory=frozenset)

    def is_keyword(self, *words: str) -> bool:
        """Whether this is a NAME spelled like one of `words` (given in upper case)."""
        return self.kind == NAME and self.text.upper() in words

    def is_op(self, *ops: str) -> bool:
        """Whether this is one of the operator or punctuation tokens `ops`."""
        return self.kind == OP and self.text in ops


def quote_string(value: str) -> str:
    """`value` as a SOQL string literal, escaped so that the tokenizer reads back `value`.

    `%` and `_` are left alone: in a LIKE pattern they stay wildcards.
    """
    return "'" + value.translate(_QUOTE_TABLE) + "'"


def tokenize(source: str) -> list[Token]:
    """Split `source` into tokens, ending with an EOF token.

    Raises:
        SoqlError: MALFORMED_QUERY for a character no token starts with, an unterminated string,
            an unknown escape sequence, or an impossible date or time.
    """
    return _Lexer(source).run()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        source = self.source
        while True:
            while self.pos < len(source) and source[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(source):
                self.tokens.append(Token(EOF, "<EOF>", len(source)))
                return self.tokens
            char = source[self.pos]
            if char.isascii() and (char.isalpha() or char == "_"):
                self._name()
            elif char == "'":
                self._string()
            elif (char.isascii() and char.isdigit()) or (
                char in "+-." and self._digit_follows(char)
            ):
                self._number_or_date()
            elif source.startswith(_TWO_CHAR_OPS, self.pos):
                self._emit(OP, self.pos + 2)
            elif char in _ONE_CHAR_OPS:
                self._emit(OP, self.pos + 1)
            else:
                raise self._error(self.pos, f"unexpected token: '{char}'")

    def _error(self, offset: int, detail: str) -> SoqlError:
        return located(MALFORMED_QUERY, self.source, offset, detail)

    def _emit(self, kind: str, end: int, value: object = None) -> None:
        self.tokens.append(Token(kind, self.source[self.pos : end], self.pos, value))
        self.pos = end

    def _digit_follows(self, char: str) -> bool:
        rest = self.source[self.pos + 1 : self.pos + 3]
        if char == ".":
            return rest[:1].isdigit()
        return rest[:1].isdigit() or (rest[:1] == "." and rest[1:2].isdigit())

    def _digits(self, start: int) -> int:
        end = start
        while end < len(self.source) and self.source[end].isascii() and self.source[end].isdigit():
            end += 1
        return end

    def _name(self) -> None:
        end = self.pos
        source = self.source
        while (
            end < len(source)
            and source[end].isascii()
            and (source[end].isalnum() or source[end] == "_")
        ):
            end += 1
        self._emit(NAME, end, source[self.pos : end])

    def _string(self) -> None:
        source = self.source
        start = self.pos
        out: list[str] = []
        wildcards: set[int] = set()
        index = start + 1
        while True:
            if index >= len(source):
                raise self._error(start, "unterminated string literal")
            char = source[index]
            if char == "'":
                break
            if char != "\\":
                out.append(char)
                index += 1
                continue
            escape = source[index + 1 : index + 2]
            if escape in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[escape])
                index += 2
            elif escape in _WILDCARD_ESCAPES:
                wildcards.add(len(out))
                out.append(escape)
                index += 2
            elif escape == "u":
                digits = source[index + 2 : index + 2 + _UNICODE_ESCAPE_DIGITS]
                if len(digits) != _UNICODE_ESCAPE_DIGITS or not set(digits) <= _HEX_DIGITS:
                    raise self._bad_escape(index, source[index : index + 2 + len(digits)])
                out.append(chr(int(digits, 16)))
                index += 2 + _UNICODE_ESCAPE_DIGITS
            else:
                raise self._bad_escape(index, source[index : index + 2])
        self.tokens.append(
            Token(STRING, source[start : index + 1], start, "".join(out), frozenset(wildcards))
        )
        self.pos = index + 1

    def _bad_escape(self, offset: int, sequence: str) -> SoqlError:
        return self._error(
            offset,
            f"Invalid string literal. Illegal character sequence '{sequence}' in string literal.",
        )

    def _number_or_date(self) -> None:
        source = self.source
        start = self.pos
        signed = source[start] in "+-"
        if signed:
            start += 1
        integer_end = self._digits(start)
        year_digits = 4  # a date literal starts with a four-digit year
        if (
            not signed
            and integer_end - start == year_digits
            and source[integer_end : integer_end + 1] == "-"
        ):
            self._date_or_datetime()
            return
        end = integer_end
        if source[end : end + 1] == "." and source[end + 1 : end + 2].isdigit():
            end = self._digits(end + 1)
            self._emit(NUMBER, end, Decimal(source[self.pos : end]))
        else:
            self._emit(NUMBER, end, int(source[self.pos : end]))

    def _date_or_datetime(self) -> None:
        source = self.source
        start = self.pos
        end = start
        while end < len(source) and (source[end].isalnum() or source[end] in "-:.+"):
            end += 1
        text = source[start:end]
        value = _parse_date_or_datetime(text)
        if value is None:
            raise self._error(start, f"invalid date or datetime literal: '{text}'")
        self._emit(DATETIME if isinstance(value, datetime) else DATE, end, value)


def _parse_date_or_datetime(text: str) -> date | datetime | None:
    """A SOQL date (`YYYY-MM-DD`) or datetime (with a mandatory `Z` or offset), or None."""
    date_part, _, time_part = text.partition("T")
    if not _shaped(date_part, "dddd-dd-dd"):
        return None
    try:
        day = date.fromisoformat(date_part)
    except ValueError:
        return None
    if not time_part and "T" not in text:
        return day
    clock, zone = _split_zone(time_part)
    if zone is None:
        return None
    whole, _, fraction = clock.partition(".")
    if not _shaped(whole, "dd:dd:dd") or (fraction and not fraction.isdigit()):
        return None
    hour, minute, second = (int(part) for part in whole.split(":"))
    if hour > 23 or minute > 59 or second > 59:  # the limits of a clock
        return None
    micro = int((fraction + "000000")[:6]) if fraction else 0  # six digits of microseconds
    moment = datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC)
    return moment - zone


def _split_zone(time_part: str) -> tuple[str, timedelta | None]:
    if time_part.endswith(("Z", "z")):
        return time_part[:-1], timedelta(0)
    for sign_index in range(len(time_part) - 1, -1, -1):
        sign = time_part[sign_index]
        if sign in "+-":
            offset = time_part[sign_index + 1 :]
            if _shaped(offset, "dd:dd"):
                hours, minutes = int(offset[:2]), int(offset[3:])
            elif _shaped(offset, "dddd"):
                hours, minutes = int(offset[:2]), int(offset[2:])
            else:
                return time_part, None
            if hours > 23 or minutes > 59:  # the limits of a clock
                return time_part, None
            delta = timedelta(hours=hours, minutes=minutes)
            return time_part[:sign_index], delta if sign == "+" else -delta
    return time_part, None


def _shaped(text: str, shape: str) -> bool:
    """Whether `text` has `shape`, where `d` stands for an ASCII digit and others for themselves."""
    if len(text) != len(shape):
        return False
    return all(
        (char.isascii() and char.isdigit()) if want == "d" else char == want
        for char, want in zip(text, shape, strict=True)
    )
