"""Errors of the Salesforce client, sorted by what the caller must do.

Salesforce answers a failed REST call with a JSON array `[{"message", "errorCode", "fields"?}]`
(spec §2.7), an upsert that matches several records with 300 and an array of record URLs, the
OAuth token endpoint with `{"error", "error_description"}` (spec §1.4), and one item of an sObject
Collections result with `{"statusCode", "message", "fields"}`. `error_from_response` (or
`error_from_body`, for a composite subrequest's answer) and `error_from_item` turn each of these
into exactly one class of this tree, through `classify`; nothing else in the client decides what
an error means::

    SalesforceError                      status, error_code, message, fields, hint
    ├── RetriableError                   try again later (retry_after: seconds, if known)
    │   ├── ServerUnavailableError       503 SERVER_UNAVAILABLE
    │   ├── RowLockError                 400 UNABLE_TO_LOCK_ROW
    │   ├── ConcurrentLimitError         403 REQUEST_LIMIT_EXCEEDED, concurrent long-running calls
    │   ├── PlatformError                500 UNKNOWN_EXCEPTION (retried only when idempotent)
    │   ├── TransportError               no usable HTTP answer (connection, timeout)
    │   └── SessionExpiredError          401 INVALID_SESSION_ID, still after one refresh
    ├── ConflictError                    412 PRECONDITION_FAILED: re-read, re-merge, write again
    └── TerminalError                    retrying the same call cannot help
        ├── ValidationError              400 field and value errors (STRING_TOO_LONG, ...)
        │   ├── CustomValidationError    FIELD_CUSTOM_VALIDATION_EXCEPTION: an org's rule (field)
        │   ├── RequiredFieldMissingError REQUIRED_FIELD_MISSING (missing: the field names)
        │   ├── FieldNotWritableError    INVALID_FIELD_FOR_INSERT_UPDATE: read-only to this user
        │   └── DuplicatesDetectedError  DUPLICATES_DETECTED: a duplicate rule (matched_ids, ...)
        ├── QueryError                   400 MALFORMED_QUERY, INVALID_TYPE, INVALID_QUERY_LOCATOR
        ├── NotFoundError                404 NOT_FOUND
        ├── EntityDeletedError           404 ENTITY_IS_DELETED (in the recycle bin)
        ├── MultipleRecordsError         300: an external id matched several records (urls)
        ├── AccessDeniedError            403 INSUFFICIENT_ACCESS, API_DISABLED_FOR_ORG, ...
        ├── DailyLimitExceededError      403 REQUEST_LIMIT_EXCEEDED, the daily allocation
        ├── ApiBudgetExceededError       cosell's own configured budget is spent (no call made)
        ├── RolledBackError              collections/composite item rolled back by allOrNone
        ├── AuthenticationError          the token endpoint refused the credentials
        │   └── SignInRefusedError       refused sign-in, repeated while the RefusalGate is shut
        └── UnexpectedResponseError      anything else (405, 409, 415, a body we cannot read)

Invariants: every error's `str()` says what happened and what to do; no error carries a
token, password or secret (the response bodies Salesforce sends back do not contain them, and
request bodies are never copied into errors). `REQUEST_LIMIT_EXCEEDED` is one code for two
situations: the concurrent long-running request limit (transient) and the rolling 24-hour
allocation (terminal until usage falls). They are told apart by the `Sforce-Limit-Info` header
of the same response (usage at or above the limit is the daily one, below it the concurrent
one) and, when that header is missing, by the message ("TotalRequests Limit exceeded." is the
daily one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

import httpx

Kind = Literal["retriable", "conflict", "terminal"]

_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class SalesforceError(Exception):
    """Root of every error the Salesforce client raises.

    Attributes:
        status: The HTTP status, or None when there was no response (or for a collections item).
        error_code: Salesforce's `errorCode` / `statusCode`, e.g. `REQUIRED_FIELD_MISSING`.
        message: Salesforce's message, or ours when the error is ours.
        fields: The fields the error is about, when Salesforce names them.
        hint: What to do about it, in a sentence.
    """

    kind: ClassVar[Kind] = "terminal"
    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        fields: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.error_code = error_code
        self.fields = tuple(fields)
        self.hint = self.default_hint if hint is None else hint
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.error_code:
            parts.append(f"{self.error_code}: ")
        parts.append(self.message)
        if self.fields:
            parts.append(f" (fields: {', '.join(self.fields)})")
        if self.status is not None:
            parts.append(f" [HTTP {self.status}]")
        if self.hint:
            parts.append(f" -- {self.hint}")
        return "".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_code={self.error_code!r}, "
            f"message={self.message!r}, fields={self.fields!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Durable workflow engines pickle a step's exception; keep every attribute across that.
        return (_restore, (type(self), dict(self.__dict__), str(self)))


def _restore(cls: type[SalesforceError], state: dict[str, Any], text: str) -> SalesforceError:
    error = cls.__new__(cls)
    Exception.__init__(error, text)
    error.__dict__.update(state)
    return error


class RetriableError(SalesforceError):
    """The call failed for a reason that passes; try again after `retry_after` seconds if set."""

    kind: ClassVar[Kind] = "retriable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerUnavailableError(RetriableError):
    """503 SERVER_UNAVAILABLE: Salesforce is overloaded or in maintenance."""

    default_hint = "Salesforce is busy or in maintenance; the call is retried with backoff"


class RowLockError(RetriableError):
    """UNABLE_TO_LOCK_ROW: another transaction holds a lock on the record."""

    default_hint = "another transaction holds the record's lock; the call is retried with backoff"


class ConcurrentLimitError(RetriableError):
    """REQUEST_LIMIT_EXCEEDED for too many concurrent long-running requests."""

    default_hint = (
        "too many long-running requests run at once in the org; the call is retried with backoff"
    )


class PlatformError(RetriableError):
    """500 UNKNOWN_EXCEPTION: an internal Salesforce error."""

    default_hint = (
        "an internal Salesforce error; idempotent calls are retried, and if it persists "
        "quote the error id in the message to Salesforce support"
    )


class TransportError(RetriableError):
    """No usable HTTP answer: the connection failed, timed out or broke."""

    default_hint = "check the network path to the Salesforce instance; the call is retried"


class ConflictError(SalesforceError):
    """412: the record changed since the time given in If-Unmodified-Since."""

    kind: ClassVar[Kind] = "conflict"
    default_hint = "the record changed since it was read: re-read it, merge again and retry"


class TerminalError(SalesforceError):
    """Retrying the same call cannot succeed; the data, configuration or org must change."""


class ValidationError(TerminalError):
    """400: Salesforce rejected a field or value (required, read-only, picklist, length...)."""

    default_hint = "fix the value or the field mapping named here; retrying the same data fails"


class CustomValidationError(ValidationError):
    """FIELD_CUSTOM_VALIDATION_EXCEPTION: one of the org's validation rules refused the record.

    Attributes:
        field: The field the rule shows its message on, or None (top of the page).
    """

    default_hint = (
        "an admin's validation rule in the org refused the record; change the data so the rule "
        "passes (its message says how) or ask the Salesforce admin to exempt the integration user"
    )

    @property
    def field(self) -> str | None:
        """The field the rule's message is shown on, if the rule names one."""
        return self.fields[0] if self.fields else None


class RequiredFieldMissingError(ValidationError):
    """REQUIRED_FIELD_MISSING: the record lacks fields the org requires (`missing`)."""

    default_hint = (
        "map the field, or give it a value under `defaults` in the mapping "
        "(`cosell mapping check` lists required fields the mapping does not fill)"
    )

    @property
    def missing(self) -> tuple[str, ...]:
        """The required fields without a value."""
        return tuple(self.fields)


class FieldNotWritableError(ValidationError):
    """INVALID_FIELD_FOR_INSERT_UPDATE: a field read-only to this user (FLS, or a system field)."""

    default_hint = (
        "grant the integration user edit access to the field (field-level security), or map it "
        "to_partner_center only"
    )


class DuplicatesDetectedError(ValidationError):
    """DUPLICATES_DETECTED: a duplicate rule matched existing records.

    Carried as a refusal (`allow_save` False, the record was not saved) or, in a successful
    collections result's `errors`, as an alert (`allow_save` True, the record was saved).

    Attributes:
        matched_ids: The ids of the records the rule matched, in the order Salesforce gave them.
        duplicate_rule: The rule's developer name, if given.
        allow_save: Whether the rule lets the record be saved (alert) or blocks it.
    """

    default_hint = (
        "the org already has this record (see matched_ids); link the existing record instead of "
        "creating another, or ask the Salesforce admin about the duplicate rule"
    )

    def __init__(
        self,
        message: str,
        *,
        matched_ids: Sequence[str] = (),
        duplicate_rule: str | None = None,
        allow_save: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.matched_ids = tuple(matched_ids)
        self.duplicate_rule = duplicate_rule
        self.allow_save = allow_save


def duplicate_details(result: Any) -> dict[str, Any]:
    """`matched_ids`, `duplicate_rule` and `allow_save` from a `duplicateResult` object.

    Unreadable parts are skipped (an empty tuple of ids when nothing matches the documented
    shape `matchResults[].matchRecords[].record.Id`).
    """
    if not isinstance(result, Mapping):
        return {}
    ids: list[str] = []
    for match in result.get("matchResults") or ():
        if not isinstance(match, Mapping):
            continue
        for record in match.get("matchRecords") or ():
            inner = record.get("record") if isinstance(record, Mapping) else None
            rid = inner.get("Id") if isinstance(inner, Mapping) else None
            if isinstance(rid, str) and rid and rid not in ids:
                ids.append(rid)
    rule = result.get("duplicateRule")
    return {
        "matched_ids": tuple(ids),
        "duplicate_rule": rule if isinstance(rule, str) else None,
        "allow_save": result.get("allowSave") is True,
    }


class QueryError(TerminalError):
    """400: a SOQL problem (syntax, unknown object, expired query locator)."""

    default_hint = "fix the SOQL, or start the query again if its locator expired"


class NotFoundError(TerminalError):
    """404 NOT_FOUND: no such record, object, external id field or resource."""

    default_hint = "check the object name, record id or external id field"


class EntityDeletedError(TerminalError):
    """404 ENTITY_IS_DELETED: the record is in the recycle bin."""

    default_hint = "the record was deleted in Salesforce; undelete it or unlink it"


class MultipleRecordsError(TerminalError):
    """300: the external id value matched several records.

    Attributes:
        urls: The record URLs Salesforce listed.
    """

    default_hint = (
        "the external id value is not unique in Salesforce: merge or clear the duplicates, "
        "and mark the field Unique"
    )

    def __init__(self, message: str, *, urls: Sequence[str] = (), **kw: Any) -> None:
        self.urls = tuple(urls)
        super().__init__(message, **kw)


class AccessDeniedError(TerminalError):
    """403: the integration user lacks a permission, or the API is off for the org."""

    default_hint = (
        "grant the integration user the cosell permission set (object and field access, "
        "API Enabled)"
    )


class DailyLimitExceededError(TerminalError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's rolling 24-hour API allocation is used up."""

    default_hint = (
        "the org's daily API allocation is used up: calls resume as the rolling 24-hour usage "
        "falls; check Setup > Company Information > API Requests, lower cosell's polling "
        "frequency or buy more API capacity"
    )


class ApiBudgetExceededError(TerminalError):
    """cosell's configured API budget is spent; the call was not sent."""

    default_hint = (
        "raise the `api_budget` setting, or wait until the org's rolling 24-hour usage falls "
        "(client.limits() re-reads it)"
    )


class RolledBackError(TerminalError):
    """An item that was valid but rolled back, or not processed, because another failed.

    Codes ALL_OR_NONE_OPERATION_ROLLED_BACK and PROCESSING_HALTED: resend the item without the
    failing ones.
    """

    default_hint = "this item was rolled back because another item failed; resend it alone"


class AuthenticationError(TerminalError):
    """The token endpoint refused the credentials, or the session cannot be renewed."""

    default_hint = "check the connected app and the integration user's credentials"


class SignInRefusedError(AuthenticationError):
    """The token endpoint refuses cosell's sign-in (an expired or revoked refresh token...).

    Raised for every call while the refusal lasts, without calling Salesforce: the session's
    `RefusalGate` lets one probe through a minute, or at once when `cosell connect salesforce`
    stored a new refresh token. The message is what each affected record shows.
    """

    default_hint = ""


class SessionExpiredError(RetriableError):
    """401 INVALID_SESSION_ID, still after refreshing the token once.

    Retriable, not terminal: under load a session can expire between the refresh and the
    resent call (or the org ends sessions early); a 401 means nothing was done, so the engine
    tries the reconcile again later with a fresh session instead of parking the deal. A
    refused sign-in (the token endpoint says no) is `SignInRefusedError`, not this.
    """

    default_hint = (
        "the new session was rejected too: check the session timeout and IP restrictions "
        "of the connected app and the integration user's profile"
    )


class UnexpectedResponseError(TerminalError):
    """An answer the client does not know how to read (405, 409, 415, odd bodies...)."""

    default_hint = "this is likely a cosell bug or an API version mismatch; please report it"


_QUERY_CODES = frozenset(
    {"MALFORMED_QUERY", "INVALID_TYPE", "INVALID_QUERY_LOCATOR", "QUERY_TIMEOUT", "INVALID_QUERY"}
)
_ACCESS_CODES = frozenset(
    {
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "API_DISABLED_FOR_ORG",
        "API_CURRENTLY_DISABLED",
        "FUNCTIONALITY_NOT_ENABLED",
    }
)
_ROLLBACK_CODES = frozenset({"ALL_OR_NONE_OPERATION_ROLLED_BACK", "PROCESSING_HALTED"})


def classify(
    *,
    status: int | None,
    error_code: str | None,
    message: str,
    fields: Sequence[str] = (),
    retry_after: float | None = None,
    usage_exhausted: bool | None = None,
    duplicate_result: Any = None,
) -> SalesforceError:
    """Build the error of this tree that a status and error code mean.

    Args:
        status: The HTTP status, or None for a collections item.
        error_code: `errorCode` / `statusCode` from the body.
        message: The message from the body.
        fields: Field names from the body.
        retry_after: A delay the server asked for, in seconds.
        usage_exhausted: Whether `Sforce-Limit-Info` showed the daily allocation used up; None
            when the response had no such header.
        duplicate_result: The error's `duplicateResult` object (DUPLICATES_DETECTED), if any.

    Returns:
        The error (not raised).
    """
    code = (error_code or "").upper()
    kw: dict[str, Any] = {"status": status, "error_code": error_code, "fields": fields}
    retry: dict[str, Any] = {**kw, "retry_after": retry_after}
    if code == "INVALID_SESSION_ID" or status == 401:
        return SessionExpiredError(message, **kw)
    if code == "REQUEST_LIMIT_EXCEEDED":
        daily = usage_exhausted
        if daily is None:
            daily = "totalrequests" in message.lower()
        if daily:
            return DailyLimitExceededError(message, **kw)
        return ConcurrentLimitError(message, **retry)
    if code == "UNABLE_TO_LOCK_ROW":
        return RowLockError(message, **retry)
    if code == "SERVER_UNAVAILABLE" or status == 503:
        return ServerUnavailableError(message, **retry)
    if code == "PRECONDITION_FAILED" or status == 412:
        return ConflictError(message, **kw)
    if code == "ENTITY_IS_DELETED":
        return EntityDeletedError(message, **kw)
    if code in _ROLLBACK_CODES:
        return RolledBackError(message, **kw)
    if code in _QUERY_CODES:
        return QueryError(message, **kw)
    if code in _ACCESS_CODES:
        return AccessDeniedError(message, **kw)
    if code == "NOT_FOUND" or status == 404:
        return NotFoundError(message, **kw)
    if code == "UNKNOWN_EXCEPTION" or (status is not None and status >= 500):
        return PlatformError(message, **retry)
    if status == 403:
        return AccessDeniedError(message, **kw)
    if status == 400 or (status is None and code):
        if code == "FIELD_CUSTOM_VALIDATION_EXCEPTION":
            return CustomValidationError(message, **kw)
        if code == "REQUIRED_FIELD_MISSING":
            return RequiredFieldMissingError(message, **kw)
        if code == "INVALID_FIELD_FOR_INSERT_UPDATE":
            return FieldNotWritableError(message, **kw)
        if code == "DUPLICATES_DETECTED":
            return DuplicatesDetectedError(message, **kw, **duplicate_details(duplicate_result))
        return ValidationError(message, **kw)
    return UnexpectedResponseError(message, **kw)


def error_from_item(item: Mapping[str, Any]) -> SalesforceError:
    """The error one sObject Collections result item carries.

    Args:
        item: One element of an item's `errors` list: `{"statusCode", "message", "fields"}`.
            The REST array shape (`errorCode`) is accepted too, as composite bodies use it.

    Returns:
        The error (not raised), with `status` None.
    """
    code = item.get("statusCode") or item.get("errorCode")
    return classify(
        status=None,
        error_code=str(code) if code is not None else None,
        message=str(item.get("message") or "no message"),
        fields=_field_names(item.get("fields")),
        duplicate_result=item.get("duplicateResult"),
    )


def error_from_response(response: httpx.Response) -> SalesforceError:
    """The error a failed Salesforce response means.

    Reads the REST array body, the 300 list of record URLs and the OAuth error object, honours
    `Retry-After` (seconds or an HTTP date, measured against the response's `Date`) and reads
    `Sforce-Limit-Info` to tell the daily request limit from the concurrent one.

    Args:
        response: A response with status 300 or above.

    Returns:
        The error (not raised).
    """
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    # The query string can carry SOQL with customer data; the path is enough to locate it.
    where = f"{response.request.method} {response.request.url.path}"
    return error_from_body(response.status_code, body, response.headers, where=where)


def error_from_body(
    status: int, body: Any, headers: Mapping[str, str], *, where: str = "the request"
) -> SalesforceError:
    """The error a status, parsed body and headers mean (a response, or a composite result).

    Args:
        status: The HTTP status (300 or above).
        body: The parsed JSON body, or None when it was not JSON.
        headers: The response headers (case-insensitive mappings welcome).
        where: What was called, for messages about unreadable bodies.

    Returns:
        The error (not raised).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if status == 300:
        urls = [u for u in body if isinstance(u, str)] if isinstance(body, list) else []
        return MultipleRecordsError(
            f"the external id matched {len(urls)} records", urls=urls, status=status
        )
    retry_after = _retry_after(lowered)
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
        messages = [str(i.get("message") or "") for i in body if isinstance(i, Mapping)]
        code = first.get("errorCode") or first.get("statusCode")
        return classify(
            status=status,
            error_code=str(code) if code is not None else None,
            message="; ".join(m for m in messages if m) or "no message",
            fields=_field_names(first.get("fields")),
            retry_after=retry_after,
            usage_exhausted=_usage_exhausted(lowered),
            duplicate_result=first.get("duplicateResult"),
        )
    if isinstance(body, Mapping) and "error" in body:
        return classify(
            status=status,
            error_code=str(body["error"]),
            message=str(body.get("error_description") or body["error"]),
            retry_after=retry_after,
        )
    kind = lowered.get("content-type", "no content type")
    return classify(
        status=status,
        error_code=None,
        message=f"HTTP {status} from {where} ({kind})",
        retry_after=retry_after,
    )


def _field_names(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, list):
        return tuple(str(f) for f in raw)
    return ()


def _usage_exhausted(headers: Mapping[str, str]) -> bool | None:
    match = _LIMIT_INFO.search(headers.get("sforce-limit-info", ""))
    if match is None:
        return None
    return int(match.group(1)) >= int(match.group(2))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
        sent: datetime = parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None or sent.tzinfo is None:
        return None
    return max(0.0, (when - sent).total_seconds())
