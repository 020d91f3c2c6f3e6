"""OData query options of the Referrals API: `$filter`, `$orderby`, `$select`, `$top`, `$skip`, `$count`.

`$filter` goes through three stages, each a small, separately tested function:

1. `tokenize` turns the text into tokens, each with its position (0-based offset), so every
   error can say where it is. Literals: `'strings'` (`''` escapes a quote), numbers, `true`,
   `false`, `null`, GUIDs quoted or not (`engagementId eq 6e4e...` is what real
   `links.relatedReferrals` URIs contain), date-times (`2026-01-05T09:00:00Z`, unquoted),
   typed literals (`guid'...'`, `datetime'...'`) and enum literals (`Namespace.Type'Value'`).
   A bare name starting with an upper-case letter is an enum member (`status eq Active`):
   every referral property starts lower-case, so this cannot shadow a property.
2. `parse_filter` is a recursive-descent parser producing an immutable syntax tree:

       expr       := or
       or         := and ('or' and)*
       and        := unary ('and' unary)*
       unary      := 'not' unary | comparison
       comparison := operand (('eq'|'ne'|'gt'|'ge'|'lt'|'le') operand)?
       operand    := '(' expr ')' | literal | function '(' expr (',' expr)* ')' | path
       path       := name ('/' name)* ('/' ('any'|'all') '(' [var ':' expr] ')')?

   Nested properties use `/` (`customerProfile/address/country`); a lambda variable scopes
   paths inside `any`/`all` (`team/any(t: t/email eq 'x@y.com')`). Functions: `contains`,
   `startswith`, `endswith`, `tolower`, `toupper`.
3. `compile_filter` turns the tree into a predicate over referral dicts. Comparisons follow
   the data: a missing property is null; `eq`/`ne` against null test for absence; GUIDs compare
   case-insensitively; a date-time on either side makes both sides date-times (so a quoted
   `'2026-01-01T00:00:00Z'` compares correctly with the stored seven-digit form); values of
   different types are simply not equal and not ordered (no error: real data has nulls and
   empty strings anywhere).

Every problem is an `ODataError` with the option name and the position, rendered by the API
as a 400 `invalidRequest`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cosell_sandbox.partnercenter.formats import parse_timestamp

ORDERABLE_FIELDS: Final = ("createdDateTime", "updatedDateTime")
COMPARISONS: Final = ("eq", "ne", "gt", "ge", "lt", "le")
MAX_NESTING: Final = 64  # far beyond any real query; keeps the recursive parser off the stack limit
FUNCTIONS: Final[dict[str, int]] = {
    "contains": 2,
    "startswith": 2,
    "endswith": 2,
    "tolower": 1,
    "toupper": 1,
}


class ODataError(Exception):
    """A query option that cannot be understood; the message names the option and position."""

    def __init__(self, option: str, message: str, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{option}: {message}{where}")
        self.option = option
        self.position = position


# ---- tokens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One lexical token of a `$filter` expression."""

    kind: str  # name, string, number, guid, datetime, enum, punct, end
    text: str
    value: Any
    position: int


_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID_RE = re.compile(_GUID + r"(?![0-9A-Za-z_-])")
_GUID_FULL_RE = re.compile(_GUID + r"\Z")
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?"
    r"(?![0-9A-Za-z_])"
)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![0-9A-Za-z_])")
_NAME_RE = re.compile(r"[A-Za-z_$@][A-Za-z0-9_.]*")
_PUNCT = "()/,:"
_TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T")


def _read_string(text: str, start: int, option: str) -> tuple[str, int]:
    """The quoted string at `start` (a `'`), and the offset after its closing quote."""
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                chars.append("'")
                i += 2
                continue
            return "".join(chars), i + 1
        chars.append(text[i])
        i += 1
    raise ODataError(option, "unterminated string literal (a ' is missing)", start)


def _datetime_value(text: str, position: int, option: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise ODataError(option, f"{text!r} is not a valid date-time", position) from None


def tokenize(text: str, option: str = "$filter") -> list[Token]:
    """Split a `$filter` expression into tokens, ending with an `end` token.

    Raises:
        ODataError: an unterminated string or a character that starts no token.
    """
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _PUNCT:
            tokens.append(Token("punct", ch, ch, i))
            i += 1
            continue
        if ch == "'":
            value, end = _read_string(text, i, option)
            tokens.append(Token("string", text[i:end], value, i))
            i = end
            continue
        if m := _GUID_RE.match(text, i):
            tokens.append(Token("guid", m.group(), m.group().lower(), i))
            i = m.end()
            continue
        if m := _DATETIME_RE.match(text, i):
            moment = _datetime_value(m.group(), i, option)
            tokens.append(Token("datetime", m.group(), moment, i))
            i = m.end()
            continue
        if m := _NUMBER_RE.match(text, i):
            raw = m.group().rstrip("mMdDfFlL")
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", m.group(), number, i))
            i = m.end()
            continue
        if m := _NAME_RE.match(text, i):
            name = m.group()
            end = m.end()
            if end < len(text) and text[end] == "'":
                literal, after = _read_string(text, end, option)
                tokens.append(_typed_literal(name, literal, text[i:after], i, option))
                i = after
                continue
            tokens.append(Token("name", name, name, i))
            i = end
            continue
        raise ODataError(option, f"unexpected character {ch!r}", i)
    tokens.append(Token("end", "", None, len(text)))
    return tokens


def _typed_literal(prefix: str, literal: str, raw: str, position: int, option: str) -> Token:
    kind = prefix.lower()
    if kind == "guid":
        if not _GUID_FULL_RE.match(literal):
            raise ODataError(option, f"{literal!r} is not a GUID", position)
        return Token("guid", raw, literal.lower(), position)
    if kind in ("datetime", "datetimeoffset"):
        return Token("datetime", raw, _datetime_value(literal, position, option), position)
    if "." not in prefix:
        raise ODataError(
            option,
            f"{prefix}'...' is not a literal; quote strings as '...' and write enum values as "
            "Namespace.Type'Value'",
            position,
        )
    return Token("enum", raw, literal, position)


# ---- syntax tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A constant; `kind` is string, number, bool, null, guid, datetime or enum."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Path:
    """A property path, relative to the referral (`variable` None) or to a lambda variable."""

    variable: str | None
    segments: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """`left op right`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical:
    """`left and right` / `left or right`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    """`not operand`."""

    operand: Node


@dataclass(frozen=True)
class Lambda:
    """`collection/any(var: predicate)` or `collection/all(...)`; `any()` with no predicate."""

    quantifier: str
    collection: Path
    variable: str | None
    predicate: Node | None


@dataclass(frozen=True)
class Call:
    """A function call such as `contains(name, 'Azure')`."""

    name: str
    arguments: tuple[Node, ...]


Node = Literal | Path | Comparison | Logical | Not | Lambda | Call


class _Parser:
    def __init__(self, text: str, option: str) -> None:
        self.option = option
        self.tokens = tokenize(text, option)
        self.index = 0
        self.variables: list[str] = []
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def describe(self, token: Token) -> str:
        return "the end of the expression" if token.kind == "end" else repr(token.text)

    def fail(self, expected: str, token: Token | None = None) -> ODataError:
        token = token or self.peek()
        return ODataError(
            self.option, f"expected {expected} but found {self.describe(token)}", token.position
        )

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token.kind == "name" and token.text.lower() in words:
            self.index += 1
            return token.text.lower()
        return None

    def expect_punct(self, char: str) -> Token:
        token = self.peek()
        if token.kind != "punct" or token.text != char:
            raise self.fail(f"'{char}'")
        return self.advance()

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ODataError(self.option, "the filter is empty", 0)
        node = self.expression()
        if self.peek().kind != "end":
            raise self.fail("'and', 'or' or the end of the expression")
        return node

    def expression(self) -> Node:
        node = self.conjunction()
        while self.keyword("or"):
            node = Logical("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.unary()
        while self.keyword("and"):
            node = Logical("and", node, self.unary())
        return node

    def unary(self) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise ODataError(
                    self.option,
                    f"the expression is nested more than {MAX_NESTING} levels deep",
                    self.peek().position,
                )
            if self.keyword("not"):
                return Not(self.unary())
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Node:
        left = self.operand()
        op = self.keyword(*COMPARISONS)
        if op is None:
            return left
        right = self.operand()
        return Comparison(op, left, right)

    def operand(self) -> Node:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self.advance()
            node = self.expression()
            self.expect_punct(")")
            return node
        if token.kind in ("string", "number", "guid", "datetime", "enum"):
            self.advance()
            return Literal(token.kind, token.value)
        if token.kind != "name":
            raise self.fail("a property, a literal or '('")
        lowered = token.text.lower()
        if lowered in ("true", "false"):
            self.advance()
            return Literal("bool", lowered == "true")
        if lowered == "null":
            self.advance()
            return Literal("null", None)
        if lowered in ("and", "or", "not", *COMPARISONS):
            raise self.fail("a property, a literal or '('")
        following = self.tokens[self.index + 1]
        if following.kind == "punct" and following.text == "(":
            return self.call()
        if token.text[0].isupper() and "." not in token.text and token.text not in self.variables:
            self.advance()
            return Literal("enum", token.text)
        return self.path()

    def call(self) -> Node:
        token = self.advance()
        name = token.text.lower()
        if name not in FUNCTIONS:
            raise ODataError(
                self.option,
                f"unknown function {token.text!r}; supported: {', '.join(FUNCTIONS)}",
                token.position,
            )
        self.expect_punct("(")
        arguments = [self.expression()]
        while self.peek().kind == "punct" and self.peek().text == ",":
            self.advance()
            arguments.append(self.expression())
        self.expect_punct(")")
        if len(arguments) != FUNCTIONS[name]:
            raise ODataError(
                self.option,
                f"{name} takes {FUNCTIONS[name]} argument(s), not {len(arguments)}",
                token.position,
            )
        return Call(name, tuple(arguments))

    def path(self) -> Node:
        first = self.advance()
        variable = first.text if first.text in self.variables else None
        segments: list[str] = [] if variable else [first.text]
        while self.peek().kind == "punct" and self.peek().text == "/":
            self.advance()
            token = self.peek()
            if token.kind != "name":
                raise self.fail("a property name after '/'")
            following = self.tokens[self.index + 1]
            if token.text.lower() in ("any", "all") and following.text == "(":
                if not segments:
                    raise ODataError(
                        self.option, f"{token.text} needs a collection before it", token.position
                    )
                self.advance()
                return self.lambda_(token.text.lower(), Path(variable, tuple(segments)))
            segments.append(self.advance().text)
        return Path(variable, tuple(segments))

    def lambda_(self, quantifier: str, collection: Path) -> Node:
        self.expect_punct("(")
        if self.peek().kind == "punct" and self.peek().text == ")":
            if quantifier == "all":
                raise self.fail("a lambda 'variable: predicate'")
            self.advance()
            return Lambda(quantifier, collection, None, None)
        token = self.peek()
        if token.kind != "name" or not token.text.isidentifier():
            raise self.fail("a lambda variable name")
        self.advance()
        self.expect_punct(":")
        self.variables.append(token.text)
        try:
            predicate = self.expression()
        finally:
            self.variables.pop()
        self.expect_punct(")")
        return Lambda(quantifier, collection, token.text, predicate)


def parse_filter(text: str) -> Node:
    """Parse a `$filter` expression into a syntax tree.

    Raises:
        ODataError: a syntax error, with its position.
    """
    return _Parser(text, "$filter").parse()


# ---- evaluation ------------------------------------------------------------------------

Scope = dict[str | None, Any]
Evaluator = Callable[[Scope], Any]


def _resolve(value: Any, segments: tuple[str, ...]) -> Any:
    for segment in segments:
        if not isinstance(value, dict):
            return None
        value = value.get(segment)
    return value


def _is_guid(value: Any) -> bool:
    return isinstance(value, str) and _GUID_FULL_RE.match(value) is not None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _TIMESTAMP_SHAPE.match(value):
        try:
            return parse_timestamp(value)
        except ValueError:
            return None
    return None


def _coerce(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, datetime) or isinstance(right, datetime):
        return _as_datetime(left), _as_datetime(right)
    if isinstance(left, str) and isinstance(right, str):
        if _is_guid(left) and _is_guid(right):
            return left.lower(), right.lower()
        as_left, as_right = _as_datetime(left), _as_datetime(right)
        if as_left is not None and as_right is not None:
            return as_left, as_right
    return left, right


def _comparable(left: Any, right: Any) -> bool:
    numbers = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return True
    return type(left) is type(right) and isinstance(left, str | datetime)


def compare(op: str, left: Any, right: Any) -> bool:
    """Evaluate `left op right` with the module's comparison rules."""
    if left is None or right is None:
        if op == "eq":
            return left is None and right is None
        if op == "ne":
            return not (left is None and right is None)
        return False
    left, right = _coerce(left, right)
    if not _comparable(left, right):
        return op == "ne"
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op == "gt":
        return bool(left > right)
    if op == "ge":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _compile(node: Node) -> Evaluator:
    if isinstance(node, Literal):
        value = node.value
        return lambda scope: value
    if isinstance(node, Path):
        variable, segments = node.variable, node.segments
        return lambda scope: _resolve(scope[variable], segments)
    if isinstance(node, Comparison):
        op, left, right = node.op, _compile(node.left), _compile(node.right)
        return lambda scope: compare(op, left(scope), right(scope))
    if isinstance(node, Logical):
        left, right = _compile(node.left), _compile(node.right)
        if node.op == "and":
            return lambda scope: left(scope) is True and right(scope) is True
        return lambda scope: left(scope) is True or right(scope) is True
    if isinstance(node, Not):
        operand = _compile(node.operand)
        return lambda scope: operand(scope) is not True
    if isinstance(node, Lambda):
        return _compile_lambda(node)
    return _compile_call(node)


def _compile_lambda(node: Lambda) -> Evaluator:
    collection = _compile(node.collection)
    variable = node.variable
    predicate = _compile(node.predicate) if node.predicate is not None else None

    def evaluate(scope: Scope) -> bool:
        items = collection(scope)
        if not isinstance(items, list):
            return node.quantifier == "all"
        if predicate is None:
            return bool(items)
        results = (predicate({**scope, variable: item}) is True for item in items)
        return any(results) if node.quantifier == "any" else all(results)

    return evaluate


def _compile_call(node: Call) -> Evaluator:
    arguments = [_compile(a) for a in node.arguments]
    name = node.name

    def evaluate(scope: Scope) -> Any:
        values = [a(scope) for a in arguments]
        if not all(isinstance(v, str) for v in values):
            return None
        if name == "tolower":
            return values[0].lower()
        if name == "toupper":
            return values[0].upper()
        if name == "contains":
            return values[1] in values[0]
        if name == "startswith":
            return bool(values[0].startswith(values[1]))
        return bool(values[0].endswith(values[1]))

    return evaluate


def compile_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over referral dicts for a `$filter` expression.

    Raises:
        ODataError: the expression does not parse.
    """
    evaluate = _compile(parse_filter(text))
    return lambda referral: evaluate({None: referral}) is True


# ---- the other options ----------------------------------------------------------------


@dataclass(frozen=True)
class OrderBy:
    """One `$orderby` key."""

    field: str
    descending: bool


def parse_orderby(text: str) -> tuple[OrderBy, ...]:
    """Parse `$orderby`: comma-separated `createdDateTime|updatedDateTime [asc|desc]`.

    Raises:
        ODataError: an unsupported field or direction.
    """
    keys: list[OrderBy] = []
    offset = 0
    for part in text.split(","):
        words = part.split()
        position = offset + (len(part) - len(part.lstrip()))
        offset += len(part) + 1
        if not words or len(words) > 2:
            raise ODataError("$orderby", "expected 'field [asc|desc]'", position)
        if words[0] not in ORDERABLE_FIELDS:
            raise ODataError(
                "$orderby",
                f"cannot order by {words[0]!r}; use {' or '.join(ORDERABLE_FIELDS)}",
                position,
            )
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ODataError("$orderby", f"{words[1]!r} is not asc or desc", position)
        keys.append(OrderBy(words[0], direction == "desc"))
    return tuple(keys)


def parse_select(text: str) -> tuple[tuple[str, ...], ...]:
    """Parse `$select`: comma-separated property paths (`id,name,details/dealValue`).

    Raises:
        ODataError: an empty item or a name that is not a property name.
    """
    paths: list[tuple[str, ...]] = []
    offset = 0
    for part in text.split(","):
        name = part.strip()
        position = offset + (len(part) - len(part.lstrip()))
        offset += len(part) + 1
        segments = tuple(name.split("/"))
        if not name or not all(s.isidentifier() for s in segments):
            raise ODataError("$select", f"{name!r} is not a property name", position)
        paths.append(segments)
    return tuple(paths)


def select_fields(referral: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    """The parts of `referral` named by `paths` (nested paths keep their parent objects)."""
    result: dict[str, Any] = {}
    for segments in paths:
        source: Any = referral
        target = result
        for depth, segment in enumerate(segments):
            if not isinstance(source, dict) or segment not in source:
                break
            source = source[segment]
            if depth == len(segments) - 1:
                target[segment] = source
            else:
                existing = target.get(segment)
                target = existing if isinstance(existing, dict) else target.setdefault(segment, {})
    return result


def parse_count(text: str) -> bool:
    """Parse `$count` (`true` or `false`).

    Raises:
        ODataError: any other value.
    """
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ODataError("$count", f"{text!r} is not true or false")
    return lowered == "true"


def parse_non_negative(
    option: str, text: str, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """Parse `$top` or `$skip`: a whole number from `minimum` (0) to `maximum` (unbounded).

    Raises:
        ODataError: not a whole number, or out of range.
    """
    raw = text.strip()
    if not raw.isdigit() or int(raw) < minimum:
        raise ODataError(option, f"{text!r} is not a whole number of at least {minimum}")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise ODataError(option, f"{value} is more than the maximum of {maximum}")
    return value
