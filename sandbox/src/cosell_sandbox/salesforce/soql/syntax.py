"""The SOQL syntax tree: what `parse` returns and `execute` evaluates.

Every node is a frozen dataclass. Names are kept as written (the checker resolves them against the
catalog, case-insensitively); `offset` fields say where a node starts in the query text so that
errors can point at it, and take no part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class FieldPath:
    """A field, possibly through parent relationships: `Name`, `Account.Owner.Name`."""

    parts: tuple[str, ...]
    offset: int = field(default=0, compare=False)

    @property
    def text(self) -> str:
        """The path as written, dotted."""
        return ".".join(self.parts)


@dataclass(frozen=True)
class CountAll:
    """`COUNT()`: the query answers with its row count only."""

    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class CountField:
    """`COUNT(field) [alias]`: one AggregateResult row counting the non-null values of a field."""

    path: FieldPath
    alias: str | None = None
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ChildQuery:
    """A child subquery in the SELECT list: `(SELECT ... FROM OpportunityContactRoles ...)`."""

    query: Query
    offset: int = field(default=0, compare=False)


SelectItem = FieldPath | CountAll | CountField | ChildQuery


@dataclass(frozen=True)
class Literal:
    """A constant in a condition.

    `kind` is one of: string, number, boolean, null, date, datetime, date_literal.
    For date literals, `value` is the literal's name in upper case (`LAST_N_DAYS`) and `n` its
    argument when it takes one.
    """

    kind: str
    value: str | Decimal | int | bool | date | datetime | None
    offset: int = field(default=0, compare=False)
    n: int | None = None
    literal_wildcards: frozenset[int] = field(default_factory=frozenset, compare=False)


@dataclass(frozen=True)
class Comparison:
    """`field op literal`, op one of = != < <= > >= (`<>` is read as `!=`)."""

    path: FieldPath
    op: str
    value: Literal
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class InList:
    """`field [NOT] IN (literal, ...)`."""

    path: FieldPath
    values: tuple[Literal, ...]
    negated: bool = False
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SemiJoin:
    """`field [NOT] IN (SELECT idField FROM Object [WHERE ...])`."""

    path: FieldPath
    query: Query
    negated: bool = False
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Like:
    """`field LIKE 'pattern'` (% any run, _ one character, case-insensitive)."""

    path: FieldPath
    pattern: Literal
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Includes:
    """`field INCLUDES ('a;b', 'c')` or EXCLUDES: multipicklist set tests."""

    path: FieldPath
    values: tuple[Literal, ...]
    excludes: bool = False
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class And:
    """All of `items` hold."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    """At least one of `items` holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """`item` does not hold."""

    item: Condition


Condition = Comparison | InList | SemiJoin | Like | Includes | And | Or | Not


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key. `nulls_first` None means Salesforce's default for the direction."""

    path: FieldPath
    descending: bool = False
    nulls_first: bool | None = None

    @property
    def puts_nulls_first(self) -> bool:
        """Where nulls go: first for ASC and last for DESC unless NULLS FIRST/LAST says."""
        return (not self.descending) if self.nulls_first is None else self.nulls_first


@dataclass(frozen=True)
class Query:
    """One SELECT statement: the whole query, a child subquery or a semi-join subquery."""

    select: tuple[SelectItem, ...]
    from_name: str
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset_rows: int | None = None
    source: str = field(default="", compare=False)
    from_offset: int = field(default=0, compare=False)
