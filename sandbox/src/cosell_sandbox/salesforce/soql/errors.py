"""SOQL errors, worded and coded as Salesforce reports them.

Every error a query can cause is a `SoqlError` carrying Salesforce's `errorCode` and message; the
`/query` route renders it as a 400 with the usual array body. Errors tied to a place in the query
carry Salesforce's caret diagram: the offending line of the query, a caret under the column, then
`ERROR at Row:r:Column:c` (both 1-based) and the detail.

Codes used (all HTTP 400):

- `MALFORMED_QUERY`: syntax (`unexpected token: 'X'`), constructs outside the sandbox's subset,
  a duplicate field in SELECT.
- `INVALID_FIELD`: an unknown column or relationship, a field that cannot be filtered or sorted,
  a literal whose type does not match the field ("value of filter criterion for field 'X' must
  be of type date and should not be enclosed in quotes").
- `INVALID_TYPE`: an unknown or unqueryable object, an unknown child relationship.
- `INVALID_QUERY_FILTER_OPERATOR`: an operator the field's type does not support (LIKE on a
  number, INCLUDES on a plain picklist) and a malformed id literal (`invalid ID field: x`).
- `NUMBER_OUTSIDE_VALID_RANGE`: an OFFSET above 2000.
"""

from __future__ import annotations

MALFORMED_QUERY = "MALFORMED_QUERY"
INVALID_FIELD = "INVALID_FIELD"
INVALID_TYPE = "INVALID_TYPE"
INVALID_QUERY_FILTER_OPERATOR = "INVALID_QUERY_FILTER_OPERATOR"
NUMBER_OUTSIDE_VALID_RANGE = "NUMBER_OUTSIDE_VALID_RANGE"


class SoqlError(Exception):
    """A query Salesforce would refuse, with its `errorCode` and message."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


def row_column(source: str, offset: int) -> tuple[int, int]:
    """The 1-based row and column of `offset` in `source`."""
    row = source.count("\n", 0, offset) + 1
    line_start = source.rfind("\n", 0, offset) + 1
    return row, offset - line_start + 1


def located(error_code: str, source: str, offset: int, detail: str) -> SoqlError:
    r"""An error with Salesforce's caret diagram pointing at `offset` of `source`.

    Args:
        error_code: the Salesforce `errorCode`.
        source: the whole query text.
        offset: where the offending token starts (0-based).
        detail: the last line of the message.

    Returns:
        The error, its message shaped like `\n<line>\n<caret>\nERROR at Row:r:Column:c\n<detail>`.
    """
    offset = max(0, min(offset, len(source)))
    row, column = row_column(source, offset)
    line_start = source.rfind("\n", 0, offset) + 1
    line_end = source.find("\n", offset)
    line = source[line_start : line_end if line_end >= 0 else len(source)]
    caret = " " * (column - 1) + "^"
    return SoqlError(error_code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}")
