"""SOQL for the Salesforce sandbox: a grammar-based parser and an evaluator over rows.

`parse(text)` turns a query into a syntax tree (`syntax.py`; the grammar is in `parser.py`) or
raises `SoqlError` (MALFORMED_QUERY). `execute(query, catalog, rows, ...)` resolves the tree
against the org's schema (`SoqlCatalog`) and evaluates it over its data (`RowSource`), returning
`QueryResult(total_size, records)` with records in wire shape, or raises `SoqlError`
(INVALID_TYPE, INVALID_FIELD, ...). `check(query, catalog)` does the resolution alone. The engine
is pure: it reads the catalog and the rows it is given and the `now` it is passed, nothing else.
Paging (`nextRecordsUrl`) is the `/query` route's business, over `QueryResult.records`.
"""

from cosell_sandbox.salesforce.soql.catalog import (
    ChildRelationship,
    FieldInfo,
    ObjectInfo,
    RowSource,
    SoqlCatalog,
)
from cosell_sandbox.salesforce.soql.engine import QueryResult, check, execute
from cosell_sandbox.salesforce.soql.errors import SoqlError
from cosell_sandbox.salesforce.soql.lexer import quote_string
from cosell_sandbox.salesforce.soql.parser import parse
from cosell_sandbox.salesforce.soql.syntax import Query

__all__ = [
    "ChildRelationship",
    "FieldInfo",
    "ObjectInfo",
    "Query",
    "QueryResult",
    "RowSource",
    "SoqlCatalog",
    "SoqlError",
    "check",
    "execute",
    "parse",
    "quote_string",
]
