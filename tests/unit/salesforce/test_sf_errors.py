"""Every error code of spec §2.7 lands in the right class of the error tree."""

from __future__ import annotations

import httpx
import pytest

from cosell.salesforce import errors as e


def _response(status: int, body: object, **headers: str) -> httpx.Response:
    request = httpx.Request(
        "PATCH", "https://acme.my.salesforce.com/services/data/v62.0/x?q=secret"
    )
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "MALFORMED_QUERY", e.QueryError),
        (400, "INVALID_TYPE", e.QueryError),
        (400, "INVALID_QUERY_LOCATOR", e.QueryError),
        (400, "QUERY_TIMEOUT", e.QueryError),
        (400, "INVALID_FIELD", e.ValidationError),
        (400, "REQUIRED_FIELD_MISSING", e.RequiredFieldMissingError),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE", e.FieldNotWritableError),
        (400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", e.ValidationError),
        (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", e.CustomValidationError),
        (400, "STRING_TOO_LONG", e.ValidationError),
        (400, "INVALID_EMAIL_ADDRESS", e.ValidationError),
        (400, "MALFORMED_ID", e.ValidationError),
        (400, "JSON_PARSER_ERROR", e.ValidationError),
        (400, "DUPLICATE_VALUE", e.ValidationError),
        (400, "DUPLICATES_DETECTED", e.DuplicatesDetectedError),
        (400, "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", e.ValidationError),
        (400, "INVALID_REPLICATION_DATE", e.ValidationError),
        (400, "UNABLE_TO_LOCK_ROW", e.RowLockError),
        (401, "INVALID_SESSION_ID", e.SessionExpiredError),
        (403, "REQUEST_LIMIT_EXCEEDED", e.ConcurrentLimitError),
        (403, "INSUFFICIENT_ACCESS", e.AccessDeniedError),
        (403, "API_DISABLED_FOR_ORG", e.AccessDeniedError),
        (403, "INSUFFICIENT_ACCESS_OR_READONLY", e.AccessDeniedError),
        (404, "NOT_FOUND", e.NotFoundError),
        (404, "ENTITY_IS_DELETED", e.EntityDeletedError),
        (405, "METHOD_NOT_ALLOWED", e.UnexpectedResponseError),
        (409, "CONFLICT", e.UnexpectedResponseError),
        (412, "PRECONDITION_FAILED", e.ConflictError),
        (415, "UNSUPPORTED_MEDIA_TYPE", e.UnexpectedResponseError),
        (500, "UNKNOWN_EXCEPTION", e.PlatformError),
        (503, "SERVER_UNAVAILABLE", e.ServerUnavailableError),
    ],
)
def test_error_code_table(status: int, code: str, expected: type[e.SalesforceError]) -> None:
    error = e.error_from_response(
        _response(status, [{"message": "m", "errorCode": code, "fields": ["Name"]}])
    )
    assert type(error) is expected
    assert error.status == status
    assert error.error_code == code
    assert error.fields == ("Name",)
    assert code in str(error)


def test_kinds_sort_errors_by_what_to_do() -> None:
    assert e.RowLockError("x").kind == "retriable"
    assert e.ConflictError("x").kind == "conflict"
    assert e.ValidationError("x").kind == "terminal"
    # A 401 after a refresh did nothing: the engine retries it, the deal is not parked.
    assert e.SessionExpiredError("x").kind == "retriable"
    assert not issubclass(e.SessionExpiredError, e.TerminalError)
    assert issubclass(e.DailyLimitExceededError, e.TerminalError)


def test_daily_limit_is_terminal_and_says_what_to_do() -> None:
    by_message = e.error_from_response(
        _response(
            403,
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
        )
    )
    assert isinstance(by_message, e.DailyLimitExceededError)
    assert "Company Information" in str(by_message)
    by_usage = e.error_from_response(
        _response(
            403,
            [{"message": "limit", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            **{"Sforce-Limit-Info": "api-usage=15000/15000"},
        )
    )
    assert isinstance(by_usage, e.DailyLimitExceededError)
    concurrent = e.error_from_response(
        _response(
            403,
            [
                {
                    "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                    "errorCode": "REQUEST_LIMIT_EXCEEDED",
                }
            ],
            **{"Sforce-Limit-Info": "api-usage=20/15000"},
        )
    )
    assert isinstance(concurrent, e.ConcurrentLimitError)
    header_wins = e.error_from_response(
        _response(
            403,
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            **{"Sforce-Limit-Info": "api-usage=20/15000"},
        )
    )
    assert isinstance(header_wins, e.ConcurrentLimitError)


def test_multiple_records_carries_the_urls() -> None:
    urls = [
        "/services/data/v62.0/sobjects/Opportunity/006A",
        "/services/data/v62.0/sobjects/Opportunity/006B",
    ]
    error = e.error_from_response(_response(300, urls))
    assert isinstance(error, e.MultipleRecordsError)
    assert error.urls == tuple(urls)
    assert "2 records" in str(error)


def test_retry_after_seconds_and_http_date() -> None:
    error = e.error_from_response(
        _response(
            503, [{"message": "busy", "errorCode": "SERVER_UNAVAILABLE"}], **{"Retry-After": "12"}
        )
    )
    assert isinstance(error, e.RetriableError)
    assert error.retry_after == 12
    dated = e.error_from_response(
        _response(
            503,
            [{"message": "busy", "errorCode": "SERVER_UNAVAILABLE"}],
            **{
                "Retry-After": "Mon, 05 Jan 2026 09:01:00 GMT",
                "Date": "Mon, 05 Jan 2026 09:00:30 GMT",
            },
        )
    )
    assert isinstance(dated, e.RetriableError)
    assert dated.retry_after == 30
    garbage = e.error_from_response(_response(503, [], **{"Retry-After": "soon"}))
    assert isinstance(garbage, e.ServerUnavailableError)
    assert garbage.retry_after is None


def test_oauth_body_and_unreadable_bodies() -> None:
    oauth = e.error_from_response(
        _response(400, {"error": "invalid_grant", "error_description": "authentication failure"})
    )
    assert oauth.error_code == "invalid_grant"
    assert oauth.message == "authentication failure"
    request = httpx.Request(
        "GET", "https://acme.my.salesforce.com/services/data/v62.0/query/?q=SELECT+secret"
    )
    html = e.error_from_response(
        httpx.Response(
            502,
            text="<html>bad gateway</html>",
            request=request,
            headers={"content-type": "text/html"},
        )
    )
    assert isinstance(html, e.PlatformError)
    assert "GET /services/data/v62.0/query/" in str(html)
    assert "secret" not in str(html)
    weird = e.error_from_response(httpx.Response(418, text="teapot", request=request))
    assert isinstance(weird, e.UnexpectedResponseError)


def test_several_errors_are_all_in_the_message() -> None:
    error = e.error_from_response(
        _response(
            400,
            [
                {
                    "message": "Required fields are missing: [Name]",
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "fields": ["Name"],
                },
                {
                    "message": "Stage: bad value",
                    "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                },
            ],
        )
    )
    assert isinstance(error, e.ValidationError)
    assert "Required fields are missing" in error.message
    assert "Stage: bad value" in error.message


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("REQUIRED_FIELD_MISSING", e.RequiredFieldMissingError),
        ("ALL_OR_NONE_OPERATION_ROLLED_BACK", e.RolledBackError),
        ("PROCESSING_HALTED", e.RolledBackError),
        ("UNABLE_TO_LOCK_ROW", e.RowLockError),
        ("ENTITY_IS_DELETED", e.EntityDeletedError),
        ("DUPLICATE_VALUE", e.ValidationError),
        ("INVALID_CROSS_REFERENCE_KEY", e.ValidationError),
    ],
)
def test_collections_item_shape(code: str, expected: type[e.SalesforceError]) -> None:
    error = e.error_from_item({"statusCode": code, "message": "m", "fields": ["StageName"]})
    assert type(error) is expected
    assert error.status is None
    assert error.fields == ("StageName",)


def test_repr_is_plain() -> None:
    assert repr(e.NotFoundError("gone", status=404, error_code="NOT_FOUND")) == (
        "NotFoundError(status=404, error_code='NOT_FOUND', message='gone', fields=())"
    )


def test_errors_survive_pickling() -> None:
    import pickle

    originals = [
        e.RowLockError("locked", status=400, error_code="UNABLE_TO_LOCK_ROW", retry_after=3.0),
        e.MultipleRecordsError("two", urls=["/a", "/b"], status=300),
        e.ValidationError("bad", status=400, error_code="STRING_TOO_LONG", fields=["Name"]),
        e.ApiBudgetExceededError("spent"),
    ]
    for original in originals:
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original)
        assert copy.__dict__ == original.__dict__
        assert str(copy) == str(original)
    locked = pickle.loads(pickle.dumps(originals[0]))
    assert isinstance(locked, e.RowLockError)
    assert locked.retry_after == 3.0


def test_duplicate_result_gives_the_matched_ids_and_tolerates_odd_shapes() -> None:
    body = [
        {
            "duplicateResult": {
                "allowSave": False,
                "duplicateRule": "Acct_Rule",
                "matchResults": [
                    {"matchRecords": [{"record": {"Id": "001A"}}, {"record": {"Id": "001B"}}]},
                    {"matchRecords": [{"record": {"Id": "001A"}}, "junk", {"record": None}]},
                    "junk",
                ],
            },
            "errorCode": "DUPLICATES_DETECTED",
            "message": "Use one of these records?",
        }
    ]
    error = e.error_from_response(_response(400, body))
    assert isinstance(error, e.DuplicatesDetectedError)
    assert error.matched_ids == ("001A", "001B")
    assert error.duplicate_rule == "Acct_Rule"
    assert error.allow_save is False
    bare = e.error_from_item({"statusCode": "DUPLICATES_DETECTED", "message": "m"})
    assert isinstance(bare, e.DuplicatesDetectedError)
    assert bare.matched_ids == ()
    assert bare.duplicate_rule is None


def test_validation_subclasses_expose_their_fields() -> None:
    rule = e.error_from_item(
        {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "m", "fields": []}
    )
    assert isinstance(rule, e.CustomValidationError)
    assert rule.field is None
    missing = e.error_from_item(
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "m", "fields": ["A__c", "B__c"]}
    )
    assert isinstance(missing, e.RequiredFieldMissingError)
    assert missing.missing == ("A__c", "B__c")
