"""The SOQL parser: recursive descent over the tokenizer's output, one function per rule.

The sandbox's subset, in EBNF (keywords are case-insensitive; `name` is a NAME token):

    query        = select_clause from_clause [where_clause] [order_clause]
                   [limit_clause] [offset_clause] EOF ;
    select_clause= "SELECT" select_item { "," select_item } ;
    select_item  = field_path
                 | "COUNT" "(" [ field_path ] ")" [ name ]        (* alias only after COUNT(f) *)
                 | "(" child_query ")" ;                           (* top level only *)
    child_query  = "SELECT" field_path { "," field_path } "FROM" name
                   [where_clause] [order_clause] [limit_clause] ;
    semi_join    = "SELECT" field_path "FROM" name [where_clause] ;
    field_path   = name { "." name } ;
    from_clause  = "FROM" name ;
    where_clause = "WHERE" condition ;
    condition    = unary { "AND" unary }
                 | unary { "OR" unary } ;       (* mixing AND and OR needs parentheses *)
    unary        = "NOT" unary | "(" condition ")" | predicate ;
    predicate    = field_path comparator value
                 | field_path [ "NOT" ] "IN" "(" ( value { "," value } | semi_join ) ")"
                 | field_path "LIKE" string
                 | field_path ( "INCLUDES" | "EXCLUDES" ) "(" string { "," string } ")" ;
    comparator   = "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" ;
    value        = string | number | date | datetime | "TRUE" | "FALSE" | "NULL"
                 | date_literal ;
    date_literal = name                          (* TODAY, THIS_MONTH ... see dates.py *)
                 | name ":" integer ;             (* LAST_N_DAYS:30 ... *)
    order_clause = "ORDER" "BY" order_item { "," order_item } ;
    order_item   = field_path [ "ASC" | "DESC" ] [ "NULLS" ( "FIRST" | "LAST" ) ] ;
    limit_clause = "LIMIT" integer ;
    offset_clause= "OFFSET" integer ;             (* top level only; at most 2000 *)

Invariants: `parse` either returns a `Query` that follows this grammar or raises `SoqlError`
with MALFORMED_QUERY (or NUMBER_OUTSIDE_VALID_RANGE for OFFSET > 2000) and Salesforce's caret
diagram at the offending token. SOQL that is valid in Salesforce but outside this subset
(GROUP BY, HAVING, WITH, USING SCOPE, FOR UPDATE, TYPEOF, aggregate and other functions such as
SUM, FORMAT() or convertCurrency(), object aliases, fiscal date literals, nested child queries)
is refused with a message naming the construct as unsupported by the sandbox, never accepted
and silently ignored. `name` never matches one of SOQL's reserved words (`RESERVED_WORDS`);
other keywords (ORDER, BY, OFFSET, TODAY ...) are keywords only where the grammar expects them.
Names are not resolved here: `check` does that against the catalog.
"""

from __future__ import annotations

from typing import Final

from cosell_sandbox.salesforce.soql.dates import FISCAL_MARKER, FIXED_LITERALS, N_LITERALS
from cosell_sandbox.salesforce.soql.errors import (
    MALFORMED_QUERY,
    NUMBER_OUTSIDE_VALID_RANGE,
    SoqlError,
    located,
)
from cosell_sandbox.salesforce.soql.lexer import (
    DATE,
    DATETIME,
    EOF,
    NAME,
    NUMBER,
    STRING,
    Token,
    tokenize,
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
    OrderItem,
    Query,
    SelectItem,
    SemiJoin,
)

MAX_OFFSET: Final = 2000  # Salesforce's documented maximum OFFSET
MAX_NESTING: Final = (
    100  # NOTs and parentheses in WHERE; keeps the recursion far from Python's limit
)

_TOP: Final = "top"
_CHILD: Final = "child"
_SEMI_JOIN: Final = "semi-join"

_COMPARATORS: Final = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# Clauses of real SOQL the sandbox leaves out, by the keyword that starts them.
_UNSUPPORTED_CLAUSES: Final = {
    "GROUP": "GROUP BY",
    "HAVING": "HAVING",
    "WITH": "WITH",
    "USING": "USING SCOPE",
    "FOR": "FOR VIEW / FOR REFERENCE / FOR UPDATE",
    "UPDATE": "UPDATE TRACKING / UPDATE VIEWSTAT",
}
_CLAUSE_KEYWORDS: Final = frozenset({"WHERE", "ORDER", "LIMIT", "OFFSET", *_UNSUPPORTED_CLAUSES})
# SOQL's reserved words: never a field, relationship or object name.
RESERVED_WORDS: Final = frozenset(
    {
        "AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES",
        "LAST", "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH",
    }
)  # fmt: skip


def parse(text: str) -> Query:
    """Parse one SOQL query.

    Args:
        text: the query, as sent to `/query?q=`.

    Returns:
        Its syntax tree.

    Raises:
        SoqlError: MALFORMED_QUERY for a syntax error or a construct outside the sandbox's subset;
            NUMBER_OUTSIDE_VALID_RANGE for an OFFSET above 2000.
    """
    return _Parser(text).parse()


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.depth = 0  # NOT and parentheses currently open in WHERE

    # -- token helpers ---------------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != EOF:
            self.index += 1
        return token

    def error(self, token: Token, detail: str | None = None) -> SoqlError:
        return located(
            MALFORMED_QUERY,
            self.source,
            token.offset,
            detail if detail is not None else f"unexpected token: '{token.text}'",
        )

    def error_at(self, offset: int, detail: str) -> SoqlError:
        return located(MALFORMED_QUERY, self.source, offset, detail)

    def unsupported(self, token: Token, what: str) -> SoqlError:
        return self.error(token, f"{what} is not supported by the sandbox's SOQL subset")

    def keyword(self, *words: str) -> Token:
        if not self.token.is_keyword(*words):
            raise self.error(self.token)
        return self.advance()

    def op(self, *ops: str) -> Token:
        if not self.token.is_op(*ops):
            raise self.error(self.token)
        return self.advance()

    def name(self) -> Token:
        if self.token.kind != NAME or self.token.text.upper() in RESERVED_WORDS:
            raise self.error(self.token)
        return self.advance()

    # -- statements ------------------------------------------------------------------------

    def parse(self) -> Query:
        query = self.query(_TOP)
        if self.token.kind != EOF:
            self.reject_unsupported_clause()
            raise self.error(self.token)
        return query

    def query(self, context: str) -> Query:
        self.keyword("SELECT")
        select = self.select_list(context)
        self.keyword("FROM")
        from_token = self.name()
        self.reject_alias()
        where = None
        if self.token.is_keyword("WHERE"):
            self.advance()
            where = self.condition(context)
        self.reject_unsupported_clause()
        order_by: tuple[OrderItem, ...] = ()
        limit = offset = None
        if self.token.is_keyword("ORDER"):
            if context == _SEMI_JOIN:
                raise self.unsupported(self.token, "ORDER BY in a semi-join subquery")
            order_by = self.order_by()
        if self.token.is_keyword("LIMIT"):
            if context == _SEMI_JOIN:
                raise self.unsupported(self.token, "LIMIT in a semi-join subquery")
            self.advance()
            limit = self.integer()
        if self.token.is_keyword("OFFSET"):
            if context != _TOP:
                raise self.unsupported(self.token, f"OFFSET in a {context} subquery")
            offset_token = self.advance()
            offset = self.integer()
            if offset > MAX_OFFSET:
                raise located(
                    NUMBER_OUTSIDE_VALID_RANGE,
                    self.source,
                    offset_token.offset,
                    f"Maximum SOQL offset allowed is {MAX_OFFSET}",
                )
        self.reject_unsupported_clause()
        return Query(
            select=select,
            from_name=from_token.text,
            where=where,
            order_by=order_by,
            limit=limit,
            offset_rows=offset,
            source=self.source,
            from_offset=from_token.offset,
        )

    def reject_alias(self) -> None:
        token = self.token
        if token.kind == NAME and token.text.upper() not in _CLAUSE_KEYWORDS:
            raise self.unsupported(token, f"an alias for the object ('{token.text}')")

    def reject_unsupported_clause(self) -> None:
        token = self.token
        if token.kind == NAME and token.text.upper() in _UNSUPPORTED_CLAUSES:
            raise self.unsupported(token, _UNSUPPORTED_CLAUSES[token.text.upper()])

    def integer(self) -> int:
        token = self.token
        if token.kind != NUMBER or not isinstance(token.value, int) or token.text[0] in "+-":
            raise self.error(token)
        self.advance()
        return token.value

    # -- SELECT ----------------------------------------------------------------------------

    def select_list(self, context: str) -> tuple[SelectItem, ...]:
        items = [self.select_item(context)]
        while self.token.is_op(","):
            self.advance()
            items.append(self.select_item(context))
        counts = [item for item in items if isinstance(item, CountAll)]
        if counts and len(items) > 1:
            raise self.error_at(
                counts[0].offset, "COUNT() must be the only item in the SELECT list"
            )
        fields = [item for item in items if isinstance(item, FieldPath | ChildQuery)]
        if fields and any(isinstance(item, CountField) for item in items):
            raise self.error_at(
                fields[0].offset, f"Field must be grouped or aggregated: {_item_text(fields[0])}"
            )
        if context == _SEMI_JOIN and (len(items) != 1 or not isinstance(items[0], FieldPath)):
            raise self.error_at(
                items[0].offset,
                "a semi-join subquery must select exactly one id or reference field",
            )
        return tuple(items)

    def select_item(self, context: str) -> SelectItem:
        token = self.token
        if token.is_op("("):
            if context != _TOP:
                raise self.unsupported(token, "a subquery inside a subquery")
            self.advance()
            if not self.token.is_keyword("SELECT"):
                raise self.error(self.token)
            query = self.query(_CHILD)
            self.op(")")
            return ChildQuery(query, offset=token.offset)
        if token.kind != NAME:
            raise self.error(token)
        if token.is_keyword("TYPEOF"):
            raise self.unsupported(token, "TYPEOF")
        if self.peek().is_op("("):
            return self.function(context)
        return self.field_path()

    def function(self, context: str) -> SelectItem:
        token = self.advance()
        if not token.is_keyword("COUNT"):
            raise self.unsupported(token, f"the function {token.text}()")
        if context != _TOP:
            raise self.unsupported(token, f"COUNT in a {context} subquery")
        self.op("(")
        if self.token.is_op(")"):
            self.advance()
            return CountAll(offset=token.offset)
        path = self.field_path()
        self.op(")")
        alias = None
        if self.token.kind == NAME and not self.token.is_keyword("FROM"):
            alias = self.advance().text
        return CountField(path, alias, offset=token.offset)

    def field_path(self) -> FieldPath:
        first = self.name()
        parts = [first.text]
        while self.token.is_op("."):
            self.advance()
            parts.append(self.name().text)
        return FieldPath(tuple(parts), offset=first.offset)

    # -- WHERE -----------------------------------------------------------------------------

    def condition(self, context: str) -> Condition:
        first = self.unary(context)
        if not self.token.is_keyword("AND", "OR"):
            return first
        joiner = self.token.text.upper()
        items = [first]
        while self.token.is_keyword("AND", "OR"):
            if self.token.text.upper() != joiner:
                raise self.error(self.token)  # Salesforce wants parentheses to mix AND and OR
            self.advance()
            items.append(self.unary(context))
        return And(tuple(items)) if joiner == "AND" else Or(tuple(items))

    def unary(self, context: str) -> Condition:
        if self.token.is_keyword("NOT") or self.token.is_op("("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.error(self.token, "the WHERE clause is nested too deeply")
        if self.token.is_keyword("NOT"):
            self.advance()
            result: Condition = Not(self.unary(context))
        elif self.token.is_op("("):
            self.advance()
            result = self.condition(context)
            self.op(")")
        else:
            return self.predicate(context)
        self.depth -= 1
        return result

    def predicate(self, context: str) -> Condition:
        if self.token.kind == NAME and self.peek().is_op("("):
            raise self.unsupported(self.token, f"the function {self.token.text}() in WHERE")
        path = self.field_path()
        token = self.token
        if token.is_op(*_COMPARATORS):
            self.advance()
            return Comparison(path, _COMPARATORS[token.text], self.value(), offset=path.offset)
        if token.is_keyword("NOT") and self.peek().is_keyword("IN"):
            self.advance()
            return self.in_list(path, context, negated=True)
        if token.is_keyword("IN"):
            return self.in_list(path, context, negated=False)
        if token.is_keyword("LIKE"):
            self.advance()
            if self.token.kind != STRING:
                raise self.error(self.token)
            return Like(path, self.value(), offset=path.offset)
        if token.is_keyword("INCLUDES", "EXCLUDES"):
            self.advance()
            self.op("(")
            values = [self.string()]
            while self.token.is_op(","):
                self.advance()
                values.append(self.string())
            self.op(")")
            return Includes(
                path, tuple(values), excludes=token.is_keyword("EXCLUDES"), offset=path.offset
            )
        raise self.error(token)

    def in_list(self, path: FieldPath, context: str, *, negated: bool) -> Condition:
        self.keyword("IN")
        self.op("(")
        if self.token.is_keyword("SELECT"):
            if context == _SEMI_JOIN:
                raise self.unsupported(self.token, "a semi-join inside a semi-join")
            query = self.query(_SEMI_JOIN)
            self.op(")")
            return SemiJoin(path, query, negated=negated, offset=path.offset)
        values = [self.value()]
        while self.token.is_op(","):
            self.advance()
            values.append(self.value())
        self.op(")")
        return InList(path, tuple(values), negated=negated, offset=path.offset)

    def string(self) -> Literal:
        if self.token.kind != STRING:
            raise self.error(self.token)
        return self.value()

    def value(self) -> Literal:
        token = self.advance()
        if token.kind == STRING:
            assert isinstance(token.value, str)
            return Literal(
                "string",
                token.value,
                offset=token.offset,
                literal_wildcards=token.literal_wildcards,
            )
        if token.kind == NUMBER:
            return Literal("number", token.value, offset=token.offset)  # type: ignore[arg-type]
        if token.kind == DATE:
            return Literal("date", token.value, offset=token.offset)  # type: ignore[arg-type]
        if token.kind == DATETIME:
            return Literal("datetime", token.value, offset=token.offset)  # type: ignore[arg-type]
        if token.kind != NAME:
            raise self.error(token)
        word = token.text.upper()
        if word in {"TRUE", "FALSE"}:
            return Literal("boolean", word == "TRUE", offset=token.offset)
        if word == "NULL":
            return Literal("null", None, offset=token.offset)
        if word in FIXED_LITERALS:
            return Literal("date_literal", word, offset=token.offset)
        if word in N_LITERALS:
            self.op(":")
            return Literal("date_literal", word, offset=token.offset, n=self.integer())
        if FISCAL_MARKER in word:
            raise self.unsupported(token, f"the fiscal date literal {word}")
        raise self.error(token)

    # -- ORDER BY --------------------------------------------------------------------------

    def order_by(self) -> tuple[OrderItem, ...]:
        self.keyword("ORDER")
        self.keyword("BY")
        items = [self.order_item()]
        while self.token.is_op(","):
            self.advance()
            items.append(self.order_item())
        return tuple(items)

    def order_item(self) -> OrderItem:
        if self.token.kind == NAME and self.peek().is_op("("):
            raise self.unsupported(self.token, f"the function {self.token.text}() in ORDER BY")
        path = self.field_path()
        descending = False
        nulls_first = None
        if self.token.is_keyword("ASC", "DESC"):
            descending = self.advance().is_keyword("DESC")
        if self.token.is_keyword("NULLS"):
            self.advance()
            nulls_first = self.keyword("FIRST", "LAST").is_keyword("FIRST")
        return OrderItem(path, descending=descending, nulls_first=nulls_first)


def _item_text(item: SelectItem) -> str:
    if isinstance(item, FieldPath):
        return item.text
    if isinstance(item, ChildQuery):
        return item.query.from_name
    if isinstance(item, CountField):
        return f"COUNT({item.path.text})"
    return "COUNT()"
