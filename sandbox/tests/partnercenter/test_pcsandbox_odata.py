"""OData query options: tokenizer, parser, evaluator and the other options, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cosell_sandbox.partnercenter.odata import (
    Comparison,
    Lambda,
    Literal,
    Logical,
    Not,
    ODataError,
    OrderBy,
    Path,
    compile_filter,
    parse_count,
    parse_filter,
    parse_non_negative,
    parse_orderby,
    parse_select,
    select_fields,
    tokenize,
)

ENGAGEMENT = "6e4e1b4a-3c2d-4b5a-9e8f-0a1b2c3d4e5f"

REFERRAL: dict[str, Any] = {
    "id": "11111111-2222-3333-4444-555555555555",
    "engagementId": ENGAGEMENT,
    "name": "Contoso - Azure migration",
    "status": "New",
    "substatus": "Pending",
    "qualification": "SalesQualified",
    "type": "Shared",
    "direction": "Incoming",
    "createdDateTime": "2026-01-05T09:00:00.1234560Z",
    "updatedDateTime": "2026-01-06T10:00:00.0000000Z",
    "statusReason": None,
    "customerProfile": {"name": "Contoso", "address": {"country": "US", "city": "Seattle"}},
    "details": {"dealValue": 25000, "currency": "USD"},
    "team": [
        {"email": "x@y.com", "firstName": "X"},
        {"email": "sam@partner.example", "firstName": "Sam"},
    ],
    "tags": ["priority", "azure"],
    "isSpam": False,
}


def matches(expression: str, referral: dict[str, Any] = REFERRAL) -> bool:
    return compile_filter(expression)(referral)


# ---- tokens -----------------------------------------------------------------------------


def test_tokenize_kinds_and_positions() -> None:
    tokens = tokenize(f"engagementId eq {ENGAGEMENT} and name eq 'O''Neil'")
    assert [(t.kind, t.position) for t in tokens] == [
        ("name", 0),
        ("name", 13),
        ("guid", 16),
        ("name", 53),
        ("name", 57),
        ("name", 62),
        ("string", 65),
        ("end", 74),
    ]
    assert tokens[6].value == "O'Neil"


def test_tokenize_guid_that_starts_with_letters_is_one_token() -> None:
    tokens = tokenize("abcdef12-0000-4000-8000-000000000000")
    assert tokens[0].kind == "guid"
    assert tokens[0].value == "abcdef12-0000-4000-8000-000000000000"


def test_tokenize_datetime_number_and_typed_literals() -> None:
    tokens = tokenize(
        "2026-01-05T09:00:00Z 2026-01-05 -12.5 42 guid'AAAAAAAA-0000-4000-8000-000000000000' "
        "datetime'2026-01-05T09:00:00' Microsoft.Partner.ReferralStatus'Active'"
    )
    kinds = [(t.kind, t.value) for t in tokens[:-1]]
    assert kinds == [
        ("datetime", datetime(2026, 1, 5, 9, tzinfo=UTC)),
        ("datetime", datetime(2026, 1, 5, tzinfo=UTC)),
        ("number", -12.5),
        ("number", 42),
        ("guid", "aaaaaaaa-0000-4000-8000-000000000000"),
        ("datetime", datetime(2026, 1, 5, 9, tzinfo=UTC)),
        ("enum", "Active"),
    ]


# ---- parser -----------------------------------------------------------------------------


def test_precedence_and_binds_tighter_than_or() -> None:
    tree = parse_filter("a eq 1 or b eq 2 and c eq 3")
    assert isinstance(tree, Logical)
    assert tree.op == "or"
    assert isinstance(tree.right, Logical)
    assert tree.right.op == "and"


def test_parentheses_override_precedence() -> None:
    tree = parse_filter("(a eq 1 or b eq 2) and not c eq 3")
    assert isinstance(tree, Logical)
    assert tree.op == "and"
    assert isinstance(tree.left, Logical)
    assert tree.left.op == "or"
    assert tree.right == Not(Comparison("eq", Path(None, ("c",)), Literal("number", 3)))


def test_nested_path_and_lambda_tree() -> None:
    tree = parse_filter("team/any(t: t/email eq 'x@y.com')")
    assert tree == Lambda(
        "any",
        Path(None, ("team",)),
        "t",
        Comparison("eq", Path("t", ("email",)), Literal("string", "x@y.com")),
    )
    assert parse_filter("customerProfile/address/country eq 'US'") == Comparison(
        "eq", Path(None, ("customerProfile", "address", "country")), Literal("string", "US")
    )


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("", "the filter is empty", 0),
        ("status eq", "expected a property, a literal or '(' but found the end", 9),
        ("status eq 'New' and", "expected a property, a literal or '(' but found the end", 19),
        ("(status eq 'New'", "expected ')' but found the end of the expression", 16),
        ("status eq 'New')", "expected 'and', 'or' or the end of the expression but found ')'", 15),
        ("status eq 'New", "unterminated string literal", 10),
        ("status eq 'New' # 1", "unexpected character '#'", 16),
        ("status eq 'New' status", "expected 'and', 'or' or the end", 16),
        ("status eq eq", "expected a property, a literal or '('", 10),
        ("team/any(t t/email eq 'x')", "expected ':' but found 't'", 11),
        ("team/any(: t eq 'x')", "expected a lambda variable name but found ':'", 9),
        ("team/all()", "expected a lambda 'variable: predicate'", 9),
        ("frobnicate(name, 'x')", "unknown function 'frobnicate'", 0),
        ("contains(name)", "contains takes 2 argument(s), not 1", 0),
        ("customerProfile/(x)", "expected a property name after '/' but found '('", 16),
        ("createdDateTime gt 2026-13-45", "'2026-13-45' is not a valid date-time", 19),
        ("id eq guid'nope'", "'nope' is not a GUID", 6),
        ("status eq foo'bar'", "foo'...' is not a literal", 10),
        ("(" * 65 + "a eq 1" + ")" * 65, "nested more than 64 levels deep", 64),
        ("not " * 70 + "a eq 1", "nested more than 64 levels deep", 256),
    ],
)
def test_syntax_errors_name_the_problem_and_position(
    expression: str, message: str, position: int
) -> None:
    with pytest.raises(ODataError) as caught:
        parse_filter(expression)
    assert message in str(caught.value)
    assert caught.value.position == position
    assert str(caught.value).startswith("$filter: ")
    assert str(caught.value).endswith(f"at position {position}")


# ---- evaluation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("status eq 'New'", True),
        ("status eq 'Active'", False),
        ("status ne 'Active'", True),
        ("status ne 'New'", False),
        ("details/dealValue gt 24999", True),
        ("details/dealValue gt 25000", False),
        ("details/dealValue ge 25000", True),
        ("details/dealValue ge 25000.01", False),
        ("details/dealValue lt 25000.5", True),
        ("details/dealValue lt 25000", False),
        ("details/dealValue le 25000", True),
        ("details/dealValue le 24999", False),
        ("name gt 'A'", True),
        ("name lt 'A'", False),
    ],
)
def test_every_comparison_operator(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("status eq 'New' and qualification eq 'SalesQualified'", True),
        ("status eq 'New' and qualification eq 'Direct'", False),
        ("status eq 'Active' or direction eq 'Incoming'", True),
        ("status eq 'Active' or direction eq 'Outgoing'", False),
        ("not status eq 'Active'", True),
        ("not (status eq 'New')", False),
        ("not not status eq 'New'", True),
        ("(type eq 'Shared' and direction eq 'Incoming')", True),
        ("(direction eq 'Incoming' and substatus eq 'Pending')", True),
        ("status eq 'Active' or (status eq 'New' and substatus eq 'Pending')", True),
        ("(status eq 'Active' or status eq 'New') and substatus eq 'Received'", False),
        ("STATUS eq 'New'", False),  # property names are case-sensitive
        ("status EQ 'New' AND direction Eq 'Incoming'", True),  # operators are not
    ],
)
def test_logical_operators_and_parentheses(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("customerProfile/address/country eq 'US' and direction eq 'Incoming'", True),
        ("customerProfile/address/country eq 'DE'", False),
        ("customerProfile/address/missing eq null", True),
        ("customerProfile/nothing/deeper eq null", True),
        ("customerProfile/address/city ne null", True),
        ("statusReason eq null", True),
        ("statusReason ne null", False),
        ("isSpam eq false", True),
        ("isSpam", False),
        ("details/dealValue eq 'x'", False),  # different types are never equal
        ("details/dealValue ne 'x'", True),
        ("details/dealValue gt 'x'", False),
    ],
)
def test_nested_paths_nulls_and_types(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("team/any(t: t/email eq 'x@y.com')", True),
        ("team/any(t:t/email eq 'nobody@y.com')", False),
        ("team/any(m: m/email eq 'x@y.com' and m/firstName eq 'X')", True),
        ("team/any(m: m/email eq 'x@y.com' and m/firstName eq 'Sam')", False),
        ("team/all(m: endswith(m/email, '.com') or endswith(m/email, '.example'))", True),
        ("team/all(m: m/firstName eq 'X')", False),
        ("team/any()", True),
        ("customerProfile/team/any()", False),
        ("tags/any(t: t eq 'azure')", True),
        (
            "status eq 'New' and direction eq 'Incoming' and type eq 'Shared' and "
            "team/any(t:t/email eq 'x@y.com')",
            True,
        ),
    ],
)
def test_lambdas(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


@pytest.mark.parametrize(
    "expression",
    [
        f"engagementId eq '{ENGAGEMENT}'",
        f"engagementId eq {ENGAGEMENT}",
        f"engagementId eq {ENGAGEMENT.upper()}",
        f"engagementId eq '{ENGAGEMENT.upper()}'",
        f"engagementId eq guid'{ENGAGEMENT}'",
    ],
)
def test_quoted_and_unquoted_guids(expression: str) -> None:
    assert matches(expression)
    other = {**REFERRAL, "engagementId": "00000000-0000-4000-8000-000000000000"}
    assert not matches(expression, other)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("status eq New", True),
        ("status eq Active", False),
        ("status eq Microsoft.Partner.ReferralStatus'New'", True),
        ("status ne Microsoft.Partner.ReferralStatus'New'", False),
        ("qualification eq SalesQualified and type eq Shared", True),
    ],
)
def test_enum_literals(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("createdDateTime gt 2026-01-05T09:00:00Z", True),
        ("createdDateTime gt 2026-01-05T09:00:00.2Z", False),
        ("createdDateTime ge 2026-01-05T09:00:00.123456Z", True),
        ("createdDateTime eq 2026-01-05T09:00:00.1234560Z", True),
        ("createdDateTime lt 2026-01-05", False),
        ("createdDateTime lt 2026-01-06", True),
        ("createdDateTime lt 2026-01-05T10:00:00+02:00", False),  # 08:00 UTC
        ("updatedDateTime le '2026-01-06T10:00:00Z'", True),  # quoted, same instant
        ("updatedDateTime eq '2026-01-06T10:00:00Z'", True),
        ("updatedDateTime gt datetime'2026-01-06T09:59:59'", True),
        ("statusReason lt 2026-01-05", False),
    ],
)
def test_datetime_literals(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("contains(name, 'Azure')", True),
        ("startswith(name, 'Contoso')", True),
        ("endswith(name, 'Contoso')", False),
        ("tolower(status) eq 'new'", True),
        ("toupper(customerProfile/address/country) eq 'US'", True),
        ("contains(statusReason, 'x')", False),
    ],
)
def test_functions(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


# ---- other options ----------------------------------------------------------------------


def test_orderby() -> None:
    assert parse_orderby("createdDateTime") == (OrderBy("createdDateTime", False),)
    assert parse_orderby("updatedDateTime desc, createdDateTime asc") == (
        OrderBy("updatedDateTime", True),
        OrderBy("createdDateTime", False),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name", "cannot order by 'name'; use createdDateTime or updatedDateTime at position 0"),
        ("createdDateTime sideways", "'sideways' is not asc or desc at position 0"),
        ("createdDateTime, ", "expected 'field [asc|desc]' at position 17"),
        ("createdDateTime asc desc", "expected 'field [asc|desc]'"),
    ],
)
def test_orderby_errors(text: str, message: str) -> None:
    with pytest.raises(ODataError, match=r"^\$orderby: ") as caught:
        parse_orderby(text)
    assert message in str(caught.value)


def test_select() -> None:
    paths = parse_select("id, name,details/dealValue,customerProfile/address/country")
    assert select_fields(REFERRAL, paths) == {
        "id": REFERRAL["id"],
        "name": REFERRAL["name"],
        "details": {"dealValue": 25000},
        "customerProfile": {"address": {"country": "US"}},
    }
    assert select_fields(REFERRAL, parse_select("nothingHere")) == {}
    with pytest.raises(ODataError, match="'' is not a property name at position 3"):
        parse_select("id,,name")
    with pytest.raises(ODataError, match="'na-me' is not a property name"):
        parse_select("na-me")


def test_count_top_skip() -> None:
    assert parse_count("true") is True
    assert parse_count("FALSE") is False
    with pytest.raises(ODataError, match="\\$count: 'yes' is not true or false"):
        parse_count("yes")
    assert parse_non_negative("$skip", "0") == 0
    assert parse_non_negative("$top", "10", minimum=1, maximum=1000) == 10
    with pytest.raises(ODataError, match="\\$top: '0' is not a whole number of at least 1"):
        parse_non_negative("$top", "0", minimum=1)
    with pytest.raises(ODataError, match="\\$top: 1001 is more than the maximum of 1000"):
        parse_non_negative("$top", "1001", maximum=1000)
    with pytest.raises(ODataError, match="'-1' is not a whole number"):
        parse_non_negative("$skip", "-1")
