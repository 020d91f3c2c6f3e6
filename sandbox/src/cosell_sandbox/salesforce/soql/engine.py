"""Checking a parsed query against the catalog, and evaluating it over rows.

One `_Compiler` walks the syntax tree once. It resolves every name against the catalog (raising
INVALID_TYPE / INVALID_FIELD / INVALID_QUERY_FILTER_OPERATOR with Salesforce's caret diagram)
and turns the query into closures: a predicate per WHERE clause, a value getter per field path,
one sort key per ORDER BY item, and a projection tree that renders a row in wire shape. `check`
runs the compiler without rows; `execute` runs it with them, then evaluates in one pass:

1. Candidates: a top-level `Id = '...'`, `Id IN (...)` or `Id IN (SELECT ...)` (alone or as
   one conjunct of an AND) reads those rows with `RowSource.row` (in the literal's order, or
   by id for a semi-join, which is the result's order without ORDER BY; Salesforce promises
   no order either); anything else scans `RowSource.rows` once, in the store's order.
2. Filter with the compiled WHERE predicate. A semi-join (`Id IN (SELECT ...)`) is evaluated
   once, into a set of id keys, before the scan.
3. Sort (when ORDER BY is given) with every key computed once per row, then slice
   `[OFFSET : OFFSET + LIMIT]`.
4. Child subqueries: one scan of the child object per subquery, keeping the children of the
   page's parents, sorted once and grouped by parent id; never one scan per parent.
5. Render: `attributes` first, then the selected fields in SELECT order with canonical names;
   a parent path becomes a nested record (or null when the reference is empty), a child
   subquery `{"totalSize", "done": true, "records"}` (or null when there are no children).
   Parent rows are read with `RowSource.row` and cached for the query.

Semantics worth knowing (Salesforce's, unless marked as the sandbox's choice):

- Null is a value: `f != 'x'` and `f NOT IN (...)` match rows where f is null; `<`, `>`, LIKE
  and INCLUDES never match null; EXCLUDES matches it. `f = null` / `f != null` test for null;
  the sandbox treats `<`, `<=`, `>`, `>=` against null as matching nothing.
- A literal of the wrong type is INVALID_FIELD: "value of filter criterion for field
  'CloseDate' must be of type date and should not be enclosed in quotes". A date (`2024-05-01`)
  only filters date fields and a datetime only datetime fields; date literals (TODAY ...)
  filter both, covering whole UTC days on datetimes.
- A malformed id literal on an id or reference field is INVALID_QUERY_FILTER_OPERATOR
  ("invalid ID field: x"); LIKE on a non-text field and INCLUDES / EXCLUDES on anything but a
  multipicklist are INVALID_QUERY_FILTER_OPERATOR too.
- A polymorphic relationship (Owner -> User or Group) resolves its fields against the first
  target the catalog knows that has them, and its rows by trying each target in turn.
- Semi-join subqueries read live rows only (no deleted rows, even under queryAll): the
  sandbox's choice.
"""

from __future__ import annotations

import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Final

from cosell_sandbox.salesforce import ids
from cosell_sandbox.salesforce.soql import values
from cosell_sandbox.salesforce.soql.catalog import (
    ChildRelationship,
    FieldInfo,
    ObjectInfo,
    RowSource,
    SoqlCatalog,
)
from cosell_sandbox.salesforce.soql.dates import literal_range
from cosell_sandbox.salesforce.soql.errors import (
    INVALID_FIELD,
    INVALID_QUERY_FILTER_OPERATOR,
    INVALID_TYPE,
    MALFORMED_QUERY,
    SoqlError,
    located,
)
from cosell_sandbox.salesforce.soql.syntax import (
    And,
    ChildQuery,
    Comparison,
    Condition,
    CountAll,
    CountField,
    FieldPath,
    Includes,
    InList,
    Like,
    Literal,
    Not,
    Or,
    Query,
    SemiJoin,
)

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
Getter = Callable[[Row], Any]

_NAMES_HINT: Final = "Please reference your WSDL or the describe call for the appropriate names."
_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Where a row sorts relative to the others under each null placement; see `_sorted`.
_NULL_LOW: Final = 0
_VALUE_RANK: Final = 1
_NULL_HIGH: Final = 2


@dataclass(frozen=True)
class QueryResult:
    """The answer to a query: `totalSize` and the records in wire shape (before paging)."""

    total_size: int
    records: list[dict[str, Any]]


def check(query: Query, catalog: SoqlCatalog) -> None:
    """Resolve every object and field of `query` against `catalog`, reading no rows.

    Raises:
        SoqlError: INVALID_TYPE for an unknown object or child relationship, INVALID_FIELD for
            an unknown column or relationship, an unfilterable or unsortable field, or a literal
            of the wrong type; INVALID_QUERY_FILTER_OPERATOR for an operator the field does not
            support or a malformed id; MALFORMED_QUERY for a duplicate field in SELECT.
    """
    _Compiler(catalog, query.source, None).top(query)


def execute(
    query: Query,
    catalog: SoqlCatalog,
    rows: RowSource,
    *,
    api_version: str,
    include_deleted: bool,
    now: datetime,
) -> QueryResult:
    """Evaluate `query` over `rows`.

    Args:
        query: a parsed query (`parse`).
        catalog: the org's schema.
        rows: the org's data.
        api_version: the version in the request path, e.g. "66.0", for the records' urls.
        include_deleted: True for queryAll: deleted rows are candidates too.
        now: the sandbox clock's current time; date literals are relative to its UTC date.

    Returns:
        The total number of records and every record (the caller pages them); for COUNT(),
        the count and no records.

    Raises:
        SoqlError: as `check` does.
    """
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    context = _Context(
        rows=rows,
        include_deleted=include_deleted,
        today=moment.astimezone(UTC).date(),
        url_prefix=f"/services/data/v{api_version.removeprefix('v')}/sobjects/",
    )
    plan = _Compiler(catalog, query.source, context).top(query)
    return plan.run(context)


@dataclass
class _Context:
    """What one execution reads: the rows, the flags, and a cache of parent rows."""

    rows: RowSource
    include_deleted: bool
    today: date
    url_prefix: str
    parents: dict[tuple[tuple[str, ...], str], tuple[str, Row] | None] = field(default_factory=dict)

    def parent(self, targets: tuple[str, ...], record_id: str) -> tuple[str, Row] | None:
        """The parent row `record_id` of one of `targets`, with its object name."""
        key = (targets, record_id)
        if key not in self.parents:
            found = None
            for target in targets:
                row = self.rows.row(target, record_id)
                if row is not None:
                    found = (target, row)
                    break
            self.parents[key] = found
        return self.parents[key]

    def live(self, row: Row | None) -> bool:
        """Whether a row read by id may be a candidate (deleted rows only under queryAll)."""
        return row is not None and (self.include_deleted or row.get("IsDeleted") is not True)


@dataclass(frozen=True)
class _Hop:
    """One parent relationship on a field path: `Account` through `AccountId`."""

    relationship: str
    id_field: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class _Resolved:
    """A field path resolved against the catalog."""

    path: FieldPath
    hops: tuple[_Hop, ...]
    info: FieldInfo
    kind: str | None

    @property
    def identity(self) -> tuple[str, ...]:
        """The path's canonical identity, to spot a field selected twice."""
        return (*(hop.relationship.lower() for hop in self.hops), self.info.name.lower())


@dataclass
class _Projection:
    """What to render from one row: fields, parent records and child subqueries, in order.

    Each entry is a field's canonical name, a `(hop, projection)` pair for a parent record, or
    a `_ChildPlan` for a child subquery.
    """

    entries: list[str | tuple[_Hop, _Projection] | _ChildPlan] = field(default_factory=list)

    def parent(self, hop: _Hop) -> _Projection:
        """The projection of the parent record reached through `hop`, added on first use."""
        for entry in self.entries:
            if isinstance(entry, tuple) and entry[0].relationship == hop.relationship:
                return entry[1]
        sub = _Projection()
        self.entries.append((hop, sub))
        return sub


@dataclass
class _OrderKey:
    getter: Getter
    kind: str
    descending: bool
    nulls_first: bool


@dataclass
class _ChildPlan:
    relationship: ChildRelationship
    obj: ObjectInfo
    predicate: Predicate | None
    order: list[_OrderKey]
    limit: int | None
    projection: _Projection


@dataclass
class _Plan:
    obj: ObjectInfo
    predicate: Predicate | None
    lookup_ids: list[str] | None
    order: list[_OrderKey]
    limit: int | None
    offset: int
    projection: _Projection
    count_all: bool
    counts: list[tuple[str, Getter]]
    children: list[_ChildPlan]

    def run(self, context: _Context) -> QueryResult:
        if self.lookup_ids is not None:
            fetched = (context.rows.row(self.obj.name, rid) for rid in self.lookup_ids)
            candidates: Iterable[Row] = [
                row for row in fetched if row is not None and context.live(row)
            ]
        else:
            candidates = context.rows.rows(self.obj.name, include_deleted=context.include_deleted)
        predicate = self.predicate
        matched = [row for row in candidates if predicate(row)] if predicate else list(candidates)
        if self.order:
            matched = _sorted(matched, self.order)
        end = None if self.limit is None else self.offset + self.limit
        page = matched[self.offset : end]
        if self.count_all:
            return QueryResult(len(page), [])
        if self.counts:
            aggregate: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
            for name, getter in self.counts:
                aggregate[name] = sum(1 for row in page if getter(row) is not None)
            return QueryResult(1, [aggregate])
        children = {id(plan): _collect_children(plan, page, context) for plan in self.children}
        renderer = _Renderer(context, children)
        return QueryResult(
            len(page), [renderer.record(row, self.obj.name, self.projection) for row in page]
        )


def _collect_children(
    plan: _ChildPlan, parents: list[Row], context: _Context
) -> dict[str, list[Row]]:
    """The children of `parents` that pass the subquery, ordered and limited, by parent id key."""
    wanted = {values.row_key(values.ID, row["Id"]) for row in parents if row.get("Id")}
    if not wanted:
        return {}
    reference = plan.relationship.field
    predicate = plan.predicate
    matched = []
    for row in context.rows.rows(plan.obj.name, include_deleted=context.include_deleted):
        parent_id = row.get(reference)
        if parent_id is None or values.row_key(values.ID, parent_id) not in wanted:
            continue
        if predicate is None or predicate(row):
            matched.append(row)
    if plan.order:
        matched = _sorted(matched, plan.order)
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in matched:
        group = groups[values.row_key(values.ID, row[reference])]
        if plan.limit is None or len(group) < plan.limit:
            group.append(row)
    return groups


def _sorted(rows: list[Row], order: list[_OrderKey]) -> list[Row]:
    """`rows` sorted by `order`, each key computed once per row, stably.

    One stable pass per key, last key first. A key is `(rank, value)`: nulls get a rank below
    or above every value, chosen so that after a descending (reversed) pass they still land
    where NULLS FIRST / LAST puts them.
    """
    decorated: list[tuple[list[Any], Row]] = []
    for row in rows:
        keys = []
        for item in order:
            value = item.getter(row)
            keys.append(None if value is None else values.row_key(item.kind, value))
        decorated.append((keys, row))
    for index in range(len(order) - 1, -1, -1):
        item = order[index]
        null_rank = _NULL_LOW if item.nulls_first != item.descending else _NULL_HIGH

        def sort_key(
            entry: tuple[list[Any], Row], index: int = index, null_rank: int = null_rank
        ) -> tuple[int, Any]:
            value = entry[0][index]
            return (null_rank, None) if value is None else (_VALUE_RANK, value)

        decorated.sort(key=sort_key, reverse=item.descending)
    return [row for _, row in decorated]


class _Renderer:
    def __init__(self, context: _Context, children: dict[int, dict[str, list[Row]]]) -> None:
        self.context = context
        self.children = children

    def record(self, row: Row, type_name: str, projection: _Projection) -> dict[str, Any]:
        record: dict[str, Any] = {
            "attributes": {
                "type": type_name,
                "url": f"{self.context.url_prefix}{type_name}/{row.get('Id')}",
            }
        }
        for entry in projection.entries:
            if isinstance(entry, str):
                record[entry] = row.get(entry)
            elif isinstance(entry, tuple):
                hop, sub = entry
                reference = row.get(hop.id_field)
                found = self.context.parent(hop.targets, reference) if reference else None
                record[hop.relationship] = (
                    None if found is None else self.record(found[1], found[0], sub)
                )
            else:
                plan = entry
                own_id = row.get("Id")
                group = (
                    self.children[id(plan)].get(values.row_key(values.ID, own_id))
                    if own_id
                    else None
                )
                record[plan.relationship.relationship_name] = (
                    {
                        "totalSize": len(group),
                        "done": True,
                        "records": [
                            self.record(child, plan.obj.name, plan.projection) for child in group
                        ],
                    }
                    if group
                    else None
                )
        return record


class _Compiler:
    """Resolves names and builds closures; reads rows only for semi-joins, and only with a context."""

    def __init__(self, catalog: SoqlCatalog, source: str, context: _Context | None) -> None:
        self.catalog = catalog
        self.source = source
        self.context = context
        self.semi_join_keys: dict[int, set[str]] = {}  # id(SemiJoin node) -> matching id keys

    # -- errors ----------------------------------------------------------------------------

    def fail(self, code: str, offset: int, detail: str) -> SoqlError:
        return located(code, self.source, offset, detail)

    # -- names -----------------------------------------------------------------------------

    def object(self, name: str, offset: int) -> ObjectInfo:
        info = self.catalog.object(name)
        if info is None or not info.queryable:
            raise self.fail(
                INVALID_TYPE,
                offset,
                f"sObject type '{name}' is not supported. If you are attempting to use a custom "
                f"object, be sure to append the '__c' after the entity name. {_NAMES_HINT}",
            )
        return info

    def resolve(self, obj: ObjectInfo, path: FieldPath) -> _Resolved:
        parts = path.parts
        if (
            len(parts) > 1
            and parts[0].lower() == obj.name.lower()
            and obj.parent_relationship(parts[0]) is None
        ):
            parts = parts[1:]  # `Opportunity.Name` on Opportunity names its own field
        hops: list[_Hop] = []
        current = obj
        for name in parts[:-1]:
            reference = current.parent_relationship(name)
            targets = tuple(
                info.name
                for info in (
                    self.catalog.object(t) for t in (reference.reference_to if reference else ())
                )
                if info is not None
            )
            if reference is None or not targets:
                raise self.fail(
                    INVALID_FIELD,
                    path.offset,
                    f"Didn't understand relationship '{name}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    f"the custom relationship name. {_NAMES_HINT}",
                )
            assert reference.relationship_name is not None
            hops.append(_Hop(reference.relationship_name, reference.name, targets))
            current = self._target_with(targets, parts[len(hops)] if len(hops) < len(parts) else "")
        info = current.field(parts[-1])
        if info is None:
            raise self.fail(
                INVALID_FIELD,
                path.offset,
                f"No such column '{parts[-1]}' on entity '{current.name}'. If you are attempting "
                "to use a custom field, be sure to append the '__c' after the custom field "
                f"name. {_NAMES_HINT}",
            )
        return _Resolved(path, tuple(hops), info, values.kind_of(info.type))

    def _target_with(self, targets: tuple[str, ...], next_name: str) -> ObjectInfo:
        """The first target object that knows `next_name` as a field or relationship."""
        infos = [info for info in (self.catalog.object(t) for t in targets) if info is not None]
        for info in infos:
            if info.field(next_name) is not None or info.parent_relationship(next_name):
                return info
        return infos[0]

    def getter(self, resolved: _Resolved) -> Getter:
        name = resolved.info.name
        if not resolved.hops:
            return lambda row: row.get(name)
        hops = resolved.hops

        def follow(row: Row) -> Any:
            context = self.context
            assert context is not None
            current: Row | None = row
            for hop in hops:
                assert current is not None
                reference = current.get(hop.id_field)
                if reference is None:
                    return None
                found = context.parent(hop.targets, reference)
                if found is None:
                    return None
                current = found[1]
            assert current is not None
            return current.get(name)

        return follow

    def filterable(self, obj: ObjectInfo, path: FieldPath) -> _Resolved:
        resolved = self.resolve(obj, path)
        if not resolved.info.filterable or resolved.kind is None:
            raise self.fail(
                INVALID_FIELD,
                path.offset,
                f"field '{resolved.info.name}' can not be filtered in a query call",
            )
        return resolved

    # -- queries ---------------------------------------------------------------------------

    def top(self, query: Query) -> _Plan:
        obj = self.object(query.from_name, query.from_offset)
        projection = _Projection()
        seen: set[tuple[str, ...]] = set()
        counts: list[tuple[str, Getter]] = []
        children: list[_ChildPlan] = []
        count_all = False
        for item in query.select:
            if isinstance(item, FieldPath):
                self.project(obj, item, projection, seen)
            elif isinstance(item, CountAll):
                count_all = True
            elif isinstance(item, CountField):
                resolved = self.resolve(obj, item.path)
                counts.append((item.alias or f"expr{len(counts)}", self.getter(resolved)))
            else:
                plan = self.child(obj, item, seen)
                children.append(plan)
                projection.entries.append(plan)
        predicate = self.condition(obj, query.where) if query.where is not None else None
        return _Plan(
            obj=obj,
            predicate=predicate,
            lookup_ids=self.lookup_ids(obj, query.where),
            order=self.order(obj, query),
            limit=query.limit,
            offset=query.offset_rows or 0,
            projection=projection,
            count_all=count_all,
            counts=counts,
            children=children,
        )

    def project(
        self, obj: ObjectInfo, path: FieldPath, projection: _Projection, seen: set[tuple[str, ...]]
    ) -> None:
        resolved = self.resolve(obj, path)
        if resolved.identity in seen:
            raise self.fail(MALFORMED_QUERY, path.offset, f"duplicate field selected: {path.text}")
        seen.add(resolved.identity)
        target = projection
        for hop in resolved.hops:
            target = target.parent(hop)
        target.entries.append(resolved.info.name)

    def child(self, parent: ObjectInfo, item: ChildQuery, seen: set[tuple[str, ...]]) -> _ChildPlan:
        query = item.query
        relationship = parent.child_relationships.get(query.from_name.lower())
        child_obj = self.catalog.object(relationship.child_object) if relationship else None
        if relationship is None or child_obj is None:
            raise self.fail(
                INVALID_TYPE,
                query.from_offset,
                f"Didn't understand relationship '{query.from_name}' in FROM part of query "
                "call. If you are attempting to use a custom relationship, be sure to append "
                f"the '__r' after the custom relationship name. {_NAMES_HINT}",
            )
        identity = ("(" + relationship.relationship_name.lower(),)
        if identity in seen:
            raise self.fail(
                MALFORMED_QUERY,
                query.from_offset,
                f"duplicate field selected: {relationship.relationship_name}",
            )
        seen.add(identity)
        projection = _Projection()
        child_seen: set[tuple[str, ...]] = set()
        for select_item in query.select:
            assert isinstance(select_item, FieldPath), "the parser allows only fields here"
            self.project(child_obj, select_item, projection, child_seen)
        return _ChildPlan(
            relationship=relationship,
            obj=child_obj,
            predicate=self.condition(child_obj, query.where) if query.where is not None else None,
            order=self.order(child_obj, query),
            limit=query.limit,
            projection=projection,
        )

    def order(self, obj: ObjectInfo, query: Query) -> list[_OrderKey]:
        keys = []
        for item in query.order_by:
            resolved = self.resolve(obj, item.path)
            if (
                not resolved.info.sortable
                or resolved.kind is None
                or resolved.kind == values.MULTIPICKLIST
            ):
                raise self.fail(
                    INVALID_FIELD,
                    item.path.offset,
                    f"field '{resolved.info.name}' can not be sorted in a query call",
                )
            keys.append(
                _OrderKey(
                    self.getter(resolved), resolved.kind, item.descending, item.puts_nulls_first
                )
            )
        return keys

    def is_own_id(self, obj: ObjectInfo, path: FieldPath) -> bool:
        """Whether `path` is the object's own Id field (not a parent's, not a reference)."""
        return len(path.parts) == 1 and self.resolve(obj, path).info.type == "id"

    def lookup_ids(self, obj: ObjectInfo, where: Condition | None) -> list[str] | None:
        """The ids a top-level `Id = ...`, `Id IN (...)` or `Id IN (SELECT ...)` pins the result to.

        None when the WHERE clause has no such conjunct: the rows must be scanned.
        """
        conjuncts = where.items if isinstance(where, And) else (where,)
        for condition in conjuncts:
            literals: tuple[Literal, ...]
            if isinstance(condition, Comparison) and condition.op == "=":
                path, literals = condition.path, (condition.value,)
            elif isinstance(condition, InList) and not condition.negated:
                path, literals = condition.path, condition.values
            elif isinstance(condition, SemiJoin) and not condition.negated:
                if self.is_own_id(obj, condition.path) and id(condition) in self.semi_join_keys:
                    return [ids.to_18(key) for key in sorted(self.semi_join_keys[id(condition)])]
                continue
            else:
                continue
            if not self.is_own_id(obj, path):
                continue
            try:
                wanted = [ids.to_18(str(lit.value)) for lit in literals if lit.kind == "string"]
            except ValueError:
                continue  # compiling the condition reports the malformed id
            if len(wanted) == len(literals):
                return list(dict.fromkeys(wanted))
        return None

    # -- WHERE -----------------------------------------------------------------------------

    def condition(self, obj: ObjectInfo, condition: Condition) -> Predicate:
        if isinstance(condition, And):
            parts = [self.condition(obj, item) for item in condition.items]
            return lambda row: all(part(row) for part in parts)
        if isinstance(condition, Or):
            parts = [self.condition(obj, item) for item in condition.items]
            return lambda row: any(part(row) for part in parts)
        if isinstance(condition, Not):
            inner = self.condition(obj, condition.item)
            return lambda row: not inner(row)
        if isinstance(condition, Comparison):
            return self.comparison(obj, condition)
        if isinstance(condition, InList):
            return self.in_list(obj, condition)
        if isinstance(condition, SemiJoin):
            return self.semi_join(obj, condition)
        if isinstance(condition, Like):
            return self.like(obj, condition)
        return self.includes(obj, condition)

    def mismatch(self, resolved: _Resolved, literal: Literal) -> SoqlError:
        kind = resolved.kind or ""
        wanted = values.message_type(kind, resolved.info.type)
        quoted = kind in {values.STRING, values.ID, values.MULTIPICKLIST}
        if literal.kind == "string" and not quoted:
            hint = " and should not be enclosed in quotes"
        elif literal.kind != "string" and quoted:
            hint = " and should be enclosed in quotes"
        else:
            hint = ""
        return self.fail(
            INVALID_FIELD,
            literal.offset,
            f"value of filter criterion for field '{resolved.info.name}' must be of type "
            f"{wanted}{hint}",
        )

    def literal_key(self, resolved: _Resolved, literal: Literal) -> Any:
        """The comparison key of a non-null, non-date-literal `literal` for `resolved`'s kind."""
        kind = resolved.kind
        value = literal.value
        wanted_literal = {
            values.STRING: "string",
            values.ID: "string",
            values.MULTIPICKLIST: "string",
            values.NUMBER: "number",
            values.BOOLEAN: "boolean",
            values.DATE: "date",
            values.DATETIME: "datetime",
        }
        if kind is None or literal.kind != wanted_literal[kind]:
            raise self.mismatch(resolved, literal)
        if kind == values.ID:
            text = str(value)
            try:
                return ids.to_18(text)[: values.SHORT_ID_LENGTH]
            except ValueError:
                raise self.fail(
                    INVALID_QUERY_FILTER_OPERATOR, literal.offset, f"invalid ID field: {text}"
                ) from None
        if kind == values.NUMBER:
            return value if isinstance(value, int) else float(str(value))
        if kind in {values.DATE, values.DATETIME, values.BOOLEAN}:
            return value
        return values.row_key(kind, value)

    def date_range(self, resolved: _Resolved, literal: Literal) -> tuple[Any, Any]:
        if resolved.kind not in {values.DATE, values.DATETIME}:
            raise self.mismatch(resolved, literal)
        today = self.context.today if self.context else date.min
        start, end = literal_range(str(literal.value), literal.n, today)
        if resolved.kind == values.DATE:
            return start, end
        return datetime.combine(start, time(), UTC), datetime.combine(end, time(), UTC)

    def comparison(self, obj: ObjectInfo, condition: Comparison) -> Predicate:
        resolved = self.filterable(obj, condition.path)
        get = self.getter(resolved)
        kind = resolved.kind
        assert kind is not None
        literal, op = condition.value, condition.op
        if literal.kind == "null":
            if op == "=":
                return lambda row: get(row) is None
            if op == "!=":
                return lambda row: get(row) is not None
            return lambda row: False
        if literal.kind == "date_literal":
            start, end = self.date_range(resolved, literal)
            inside = {"=": True, "!=": False}
            if op in inside:
                want = inside[op]

                def in_range(row: Row) -> bool:
                    value = get(row)
                    if value is None:
                        return not want
                    key = values.row_key(kind, value)
                    return bool(start <= key < end) == want

                return in_range
            bound, compare = {
                "<": (start, operator.lt),
                "<=": (end, operator.lt),
                ">": (end, operator.ge),
                ">=": (start, operator.ge),
            }[op]
            return self.ordered(get, kind, compare, bound)
        key = self.literal_key(resolved, literal)
        if kind == values.MULTIPICKLIST and op not in {"=", "!="}:
            raise self.fail(
                INVALID_QUERY_FILTER_OPERATOR,
                condition.offset,
                "invalid operator on multipicklist field",
            )
        if op == "=":
            return lambda row: (
                (value := get(row)) is not None and values.row_key(kind, value) == key
            )
        if op == "!=":
            return lambda row: (value := get(row)) is None or values.row_key(kind, value) != key
        return self.ordered(get, kind, _ORDERINGS[op], key)

    @staticmethod
    def ordered(
        get: Getter, kind: str, compare: Callable[[Any, Any], bool], bound: Any
    ) -> Predicate:
        def predicate(row: Row) -> bool:
            value = get(row)
            return value is not None and compare(values.row_key(kind, value), bound)

        return predicate

    def in_list(self, obj: ObjectInfo, condition: InList) -> Predicate:
        resolved = self.filterable(obj, condition.path)
        get = self.getter(resolved)
        kind = resolved.kind
        assert kind is not None
        keys = set()
        ranges = []
        with_null = False
        for literal in condition.values:
            if literal.kind == "null":
                with_null = True
            elif literal.kind == "date_literal":
                ranges.append(self.date_range(resolved, literal))
            else:
                keys.add(self.literal_key(resolved, literal))
        negated = condition.negated

        def member(row: Row) -> bool:
            value = get(row)
            if value is None:
                return with_null != negated
            key = values.row_key(kind, value)
            found = key in keys or any(start <= key < end for start, end in ranges)
            return found != negated

        return member

    def semi_join(self, obj: ObjectInfo, condition: SemiJoin) -> Predicate:
        resolved = self.filterable(obj, condition.path)
        if resolved.kind != values.ID:
            raise self.fail(
                INVALID_FIELD,
                condition.offset,
                f"semi join sub-selects are only allowed on id or reference fields, not on "
                f"'{resolved.info.name}'",
            )
        inner = condition.query
        inner_obj = self.object(inner.from_name, inner.from_offset)
        selected = inner.select[0]
        assert isinstance(selected, FieldPath), "the parser allows one field in a semi-join"
        inner_resolved = self.resolve(inner_obj, selected)
        if inner_resolved.kind != values.ID:
            raise self.fail(
                INVALID_FIELD,
                selected.offset,
                f"semi join sub-selects can only select an id or reference field, not "
                f"'{inner_resolved.info.name}'",
            )
        inner_predicate = (
            self.condition(inner_obj, inner.where) if inner.where is not None else None
        )
        inner_get = self.getter(inner_resolved)
        keys: set[str] = set()
        if self.context is not None:
            for row in self.context.rows.rows(inner_obj.name, include_deleted=False):
                if inner_predicate is None or inner_predicate(row):
                    value = inner_get(row)
                    if value is not None:
                        keys.add(values.row_key(values.ID, value))
            self.semi_join_keys[id(condition)] = keys
        get = self.getter(resolved)
        negated = condition.negated

        def member(row: Row) -> bool:
            value = get(row)
            if value is None:
                return negated
            return (values.row_key(values.ID, value) in keys) != negated

        return member

    def like(self, obj: ObjectInfo, condition: Like) -> Predicate:
        resolved = self.filterable(obj, condition.path)
        if resolved.kind != values.STRING:
            raise self.fail(
                INVALID_QUERY_FILTER_OPERATOR,
                condition.offset,
                f"invalid operator on {resolved.info.type} field",
            )
        pattern = condition.pattern
        text = str(pattern.value)
        pieces = []
        for index, char in enumerate(text):
            if char == "%" and index not in pattern.literal_wildcards:
                pieces.append(".*")
            elif char == "_" and index not in pattern.literal_wildcards:
                pieces.append(".")
            else:
                pieces.append(re.escape(char.casefold()))
        matcher = re.compile("".join(pieces), re.DOTALL)
        get = self.getter(resolved)

        def like(row: Row) -> bool:
            value = get(row)
            return value is not None and matcher.fullmatch(str(value).casefold()) is not None

        return like

    def includes(self, obj: ObjectInfo, condition: Includes) -> Predicate:
        resolved = self.filterable(obj, condition.path)
        if resolved.kind != values.MULTIPICKLIST:
            raise self.fail(
                INVALID_QUERY_FILTER_OPERATOR,
                condition.offset,
                "includes or excludes operator only valid on multipicklist field",
            )
        wanted = [values.split_multipicklist(str(literal.value)) for literal in condition.values]
        get = self.getter(resolved)
        excludes = condition.excludes

        def includes(row: Row) -> bool:
            value = get(row)
            if value is None:
                return excludes
            present = values.split_multipicklist(str(value))
            return any(group <= present for group in wanted) != excludes

        return includes
