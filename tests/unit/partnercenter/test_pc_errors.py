from datetime import UTC, datetime

import httpx
import pytest

from cosell.partnercenter.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PartnerCenterError,
    RetriableError,
    ServiceUnavailableError,
    TerminalError,
    ThrottledError,
    UnexpectedResponseError,
    error_from_response,
    parse_retry_after,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

PRECONDITION_BODY = {
    "error": {
        "code": "preconditionFailed",
        "message": "A precondition provided in the request (such as an if-match header) does not match the resource's current state.",
        "target": "ETag",
        "innerError": {
            "code": "99918",
            "message": "One of the specified pre-condition is not met. Etag value did not Match",
            "details": None,
        },
    }
}


def _error(
    status: int, body: object = None, headers: dict[str, str] | None = None, text: str | None = None
) -> PartnerCenterError:
    if text is not None:
        response = httpx.Response(status, text=text, headers=headers)
    else:
        response = httpx.Response(status, json=body, headers=headers)
    return error_from_response(response, now=NOW)


@pytest.mark.parametrize(
    ("status", "code", "kind", "family"),
    [
        (400, "invalidRequest", InvalidRequestError, TerminalError),
        (401, "unauthenticated", AuthenticationError, TerminalError),
        (403, "accessDenied", AccessDeniedError, TerminalError),
        (404, "itemNotFound", NotFoundError, TerminalError),
        (409, "conflict", UnexpectedResponseError, TerminalError),
        (410, "itemNotFound", NotFoundError, TerminalError),
        (412, "preconditionFailed", ConflictError, ConflictError),
        (429, "tooManyRequests", ThrottledError, RetriableError),
        (500, "generalException", ServiceUnavailableError, RetriableError),
        (502, None, ServiceUnavailableError, RetriableError),
        (503, "serviceNotAvailable", ServiceUnavailableError, RetriableError),
        (504, None, ServiceUnavailableError, RetriableError),
        (405, "invalidRequest", UnexpectedResponseError, TerminalError),
        (501, None, UnexpectedResponseError, TerminalError),
    ],
)
def test_status_table(
    status: int, code: str | None, kind: type[PartnerCenterError], family: type[PartnerCenterError]
) -> None:
    body = {"error": {"code": code, "message": "m", "target": None, "innerError": None}}
    error = _error(status, body)
    assert type(error) is kind
    assert isinstance(error, family)
    assert error.status == status
    assert error.code == code


def test_precondition_body_is_read_in_full() -> None:
    error = _error(412, PRECONDITION_BODY, {"request-id": "rid-1"})
    assert isinstance(error, ConflictError)
    assert error.code == "preconditionFailed"
    assert error.target == "ETag"
    assert error.request_id == "rid-1"
    assert "Etag value did not Match" in error.message
    assert "re-read it and apply the change again" in error.message


def test_validation_error_names_its_target() -> None:
    error = _error(
        400,
        {
            "error": {
                "code": "invalidRequest",
                "message": "Country must be ISO-2",
                "target": "customerProfile.address.country",
            }
        },
    )
    assert isinstance(error, InvalidRequestError)
    assert error.target == "customerProfile.address.country"
    assert "Country must be ISO-2" in str(error)
    assert "[target: customerProfile.address.country]" in str(error)


def test_throttling_body_and_retry_after_seconds() -> None:
    error = _error(
        429,
        {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."},
        {"Retry-After": "57"},
    )
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 57
    assert "Rate limit is exceeded" in error.message


def test_retry_after_http_date_uses_the_response_date_first() -> None:
    headers = {
        "Retry-After": "Mon, 05 Jan 2026 09:00:30 GMT",
        "Date": "Mon, 05 Jan 2026 09:00:10 GMT",
    }
    error = _error(503, {"error": {"code": "serviceNotAvailable", "message": "busy"}}, headers)
    assert isinstance(error, ServiceUnavailableError)
    assert error.retry_after == 20
    without_date = _error(503, None, {"Retry-After": "Mon, 05 Jan 2026 09:00:30 GMT"})
    assert isinstance(without_date, RetriableError)
    assert without_date.retry_after == 30


def test_non_json_body_is_excerpted() -> None:
    error = _error(502, text="<html>Bad gateway</html>" + "x" * 1000)
    assert "Bad gateway" in error.message
    assert len(error.message) < 500


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("Mon, 05 Jan 2026 09:01:00 GMT", 60.0),
        ("Mon, 05 Jan 2026 08:00:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_http_date_without_reference_is_unusable() -> None:
    assert parse_retry_after("Mon, 05 Jan 2026 09:01:00 GMT") is None
