"""The async Salesforce REST client.

One `SalesforceClient` wraps an `httpx.AsyncClient` (whose transport tests point at the sandbox
or a mock) and an `AuthFlow`. Every call goes through `_send`, which is the whole mechanism:

1. Refuse the call with `ApiBudgetExceededError` when the org's last reported API usage is at
   or above the configured budget (a call is let through every `BUDGET_RECHECK` seconds to
   learn whether the rolling 24-hour usage has fallen; `limits()` always goes through).
2. Build the URL on the token's `instance_url`, add `Authorization: Bearer`, and on every write
   (POST, PATCH, PUT, DELETE, including composite and collections) `Sforce-Call-Options:
   client=<call_options_client>`, so that our own changes can be recognised in change events.
3. Send. Read `Sforce-Limit-Info: api-usage=N/M` into `usage`, warning once when usage crosses
   `USAGE_WARNING` of the budget (or of the org's limit).
4. On 401 `INVALID_SESSION_ID`, refresh the token once (shared with concurrent callers, see
   `auth.Session`) and resend; a second 401 raises `SessionExpiredError` at once (retriable:
   the engine tries the reconcile again later, with a fresh session).
5. Map any other status >= 300 to the error tree of `errors.py`. A `RetriableError` is retried
   after a capped exponential backoff with full jitter (or the server's `Retry-After`), slept on
   the injected clock, at most `RetryPolicy.max_attempts` times. 500s and broken connections
   are retried only for idempotent calls (GET, PATCH, DELETE), since a POST may have committed.

sObject Collections items can fail alone for a transient reason (UNABLE_TO_LOCK_ROW) while the
call succeeds; those items are resent on the same backoff schedule (all-or-none chunks whole),
since a failed item was not saved.

Bounds: query iteration follows `nextRecordsUrl` for at most `max_pages` pages and only to paths
on the same instance (a token is never sent elsewhere); sObject Collections are chunked by 200
records (2,000 ids to retrieve); composite refuses more than 25 subrequests.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime as http_date
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import structlog

from cosell.clock import Clock, SystemClock
from cosell.salesforce import soap
from cosell.salesforce.auth import AuthFlow, Session, Token
from cosell.salesforce.defaults import DEFAULT_API_VERSION
from cosell.salesforce.errors import (
    ApiBudgetExceededError,
    PlatformError,
    QueryError,
    RetriableError,
    RolledBackError,
    SalesforceError,
    SessionExpiredError,
    TransportError,
    UnexpectedResponseError,
    error_from_body,
    error_from_item,
    error_from_response,
)
from cosell.salesforce.schema import (
    DEFAULT_TTL,
    DescribeCache,
    GlobalDescription,
    ObjectDescription,
)
from cosell.salesforce.soap import LeadConvert, LeadConvertResult
from cosell.salesforce.values import SalesforceId, parse_datetime

log = structlog.get_logger(__name__)

MIN_API_VERSION = (46, 0)  # upsert's `created` flag and collections upsert need v46.0+.
COLLECTION_LIMIT = 200  # records per sObject Collections create/update/upsert/delete call
RETRIEVE_LIMIT = 2000  # ids per sObject Collections retrieve call
COMPOSITE_LIMIT = 25  # subrequests per composite call
BATCH_SIZE_RANGE = (200, 2000)  # legal Sforce-Query-Options batchSize values
DEFAULT_MAX_PAGES = 10_000  # 20 million rows at 2,000 a page: beyond that, narrow the query
USAGE_WARNING = 0.8  # warn when API usage reaches 80% of the budget or of the org's limit
BUDGET_RECHECK = 300.0  # seconds between probe calls once the budget is spent

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# A record id is 15 (case-sensitive) or 18 (case-safe) letters and digits; shorter ones are
# let through (to be refused by Salesforce), only what could leave the path segment is not.
_RECORD_ID = re.compile(r"[A-Za-z0-9]{1,18}")
_VERSION = re.compile(r"^(\d+)\.(\d+)$")
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE"})
# Connection failures before any byte was sent: retrying cannot duplicate a write.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How retriable errors are retried: capped exponential backoff with full jitter.

    The n-th retry (n = 1, 2, ...) waits a uniformly random time in
    `[0, min(max_delay, base_delay * 2 ** (n - 1))]`, or the server's `Retry-After` when it
    sent one (up to `max_retry_after`).

    Attributes:
        max_attempts: Tries in all, the first included (1 disables retries).
        base_delay: Upper bound of the first wait, in seconds.
        max_delay: Cap of the backoff, in seconds.
        max_retry_after: Longest `Retry-After` honoured; longer waits surface the error.
        random: Source of jitter; seed it in tests.
    """

    max_attempts: int = 5  # four retries span up to ~7.5 s at the defaults
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0  # a five-minute wait is the longest worth holding a call for
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1 (1 means no retries)")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays cannot be negative")

    def delay(self, retry: int, error: RetriableError) -> float | None:
        """Seconds to wait before retry number `retry` (1-based), or None to give up.

        Args:
            retry: Which retry this would be.
            error: The error that would be retried.

        Returns:
            The wait, or None when attempts are exhausted or the server asked for too long.
        """
        if retry >= self.max_attempts:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return self.random.uniform(0, ceiling)  # jitter, not security: any PRNG will do


@dataclass(frozen=True)
class ApiUsage:
    """The org's API usage as Salesforce last reported it.

    Attributes:
        used: Requests made in the rolling 24 hours (all clients of the org).
        limit: The org's allocation for 24 hours.
        budget: cosell's own cap on `used`, if configured.
        observed_at: When it was reported.
    """

    used: int
    limit: int
    budget: int | None
    observed_at: datetime

    @property
    def remaining(self) -> int:
        """Requests left before the org's limit."""
        return max(0, self.limit - self.used)

    @property
    def budget_spent(self) -> bool:
        """Whether usage is at or above cosell's budget."""
        return self.budget is not None and self.used >= self.budget


@dataclass(frozen=True)
class SaveResult:
    """The outcome of one record of a collections call, in request order.

    Attributes:
        id: The record id (None when creating failed).
        success: Whether this record was saved.
        errors: Why not; `RolledBackError` for valid records undone by all-or-none.
        created: For upserts, whether the record was created (None otherwise).
    """

    id: SalesforceId | None
    success: bool
    errors: tuple[SalesforceError, ...] = ()
    created: bool | None = None


@dataclass(frozen=True)
class UpsertResult:
    """The outcome of an upsert by external id."""

    id: SalesforceId
    created: bool


@dataclass(frozen=True)
class CompositeSubrequest:
    """One subrequest of a composite call.

    Attributes:
        method: GET, POST, PATCH or DELETE.
        url: A path relative to the versioned root (`sobjects/Account`) or absolute
            (`/services/data/v62.0/sobjects/Account`).
        reference_id: A name later subrequests refer to as `@{reference_id.field}`.
        body: The JSON body, if any.
        headers: Extra headers for this subrequest (e.g. `If-Unmodified-Since`).
    """

    method: str
    url: str
    reference_id: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class CompositeResult:
    """One subrequest's answer.

    Attributes:
        reference_id: The subrequest's reference id.
        status: Its HTTP status.
        body: Its parsed body (a record, a save result, an error array or None).
        headers: Its response headers (e.g. `Location`).
    """

    reference_id: str
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        """Whether the subrequest succeeded."""
        return self.status < 300

    @property
    def error(self) -> SalesforceError | None:
        """The error this subrequest failed with, or None."""
        if self.ok:
            return None
        return error_from_body(
            self.status, self.body, self.headers, where=f"subrequest {self.reference_id}"
        )


@dataclass(frozen=True)
class QueryPage:
    """One page of a SOQL result."""

    total_size: int
    done: bool
    records: tuple[dict[str, Any], ...]
    next_records_url: str | None


@dataclass(frozen=True)
class UpdatedResult:
    """The result of getUpdated: ids changed in a window."""

    ids: tuple[SalesforceId, ...]
    latest_date_covered: datetime | None


@dataclass(frozen=True)
class DeletedRecord:
    """One deleted record of getDeleted."""

    id: SalesforceId
    deleted_date: datetime


@dataclass(frozen=True)
class DeletedResult:
    """The result of getDeleted."""

    records: tuple[DeletedRecord, ...]
    earliest_date_available: datetime | None
    latest_date_covered: datetime | None


def _name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} is not a Salesforce API name (letters, digits, _)")
    return value


def _record_id(value: str) -> str:
    if not isinstance(value, str) or not _RECORD_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Salesforce record id: expected 15 or 18 letters and digits, "
            "e.g. 006000000000001AAA"
        )
    return value


def _segment(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} cannot be empty")
    if value in (".", ".."):  # one path segment that URL resolution would drop or climb
        raise ValueError(f"{what} {value!r} would name another URL; it cannot be '.' or '..'")
    try:
        return quote(value, safe="")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} holds an unpaired surrogate: it cannot be sent") from exc


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _http_date(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("if_unmodified_since needs a timezone-aware datetime")
    return http_date(value.astimezone(UTC), usegmt=True)


def _window(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("getUpdated/getDeleted windows need timezone-aware datetimes")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _optional_datetime(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


class SalesforceClient:
    """Async client of the Salesforce REST API.

    Args:
        http: The HTTP client (its transport decides where requests go).
        auth: How to obtain access tokens.
        api_version: The REST API version, `NN.N`, at least 46.0.
        clock: Time for backoff sleeps, usage timestamps and the describe cache.
        retry: How retriable errors are retried.
        call_options_client: The `client=` sent in `Sforce-Call-Options` on every write.
        api_budget: Stop calling when the org's 24-hour API usage reaches this many requests.
        describe_ttl: How long describe results are cached.
        max_pages: The most query pages one query may return.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: AuthFlow,
        *,
        api_version: str = DEFAULT_API_VERSION,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        call_options_client: str = "cosell",
        api_budget: int | None = None,
        describe_ttl: timedelta = DEFAULT_TTL,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        match = _VERSION.match(api_version.removeprefix("v"))
        if not match:
            raise ValueError(f"api_version {api_version!r} must look like '62.0'")
        if (int(match.group(1)), int(match.group(2))) < MIN_API_VERSION:
            raise ValueError(f"api_version {api_version} is too old: cosell needs 46.0 or later")
        if not re.match(r"^[A-Za-z0-9_.-]+$", call_options_client):
            raise ValueError("call_options_client may only hold letters, digits, '_', '.', '-'")
        if api_budget is not None and api_budget < 1:
            raise ValueError("api_budget must be a positive number of requests, or None")
        self._http = http
        self._session = Session(http, auth)
        self.api_version = api_version.removeprefix("v")
        self._clock = clock or SystemClock()
        self._retry = retry or RetryPolicy()
        self._call_options = f"client={call_options_client}"
        self._budget = api_budget
        self._max_pages = max_pages
        self._usage: ApiUsage | None = None
        self._usage_seen_at = 0.0
        self._warned = False
        self.describe_cache = DescribeCache(
            self._load_description, clock=self._clock, ttl=describe_ttl
        )

    # -- plumbing -------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The auth session (current token, refresh count)."""
        return self._session

    @property
    def usage(self) -> ApiUsage | None:
        """The org's API usage as last reported, or None before the first response."""
        return self._usage

    @property
    def base_path(self) -> str:
        """The versioned REST root, e.g. `/services/data/v62.0/`."""
        return f"/services/data/v{self.api_version}/"

    def _url(self, token: Token, path: str) -> str:
        if path.startswith("/"):
            return token.instance_url + path
        return token.instance_url + self.base_path + path

    def _check_budget(self) -> None:
        usage = self._usage
        if usage is None or not usage.budget_spent:
            return
        if self._clock.monotonic() - self._usage_seen_at >= BUDGET_RECHECK:
            return  # let this call through: its answer tells whether usage has fallen
        raise ApiBudgetExceededError(
            f"the org has used {usage.used} of its {usage.limit} API requests in the last 24 "
            f"hours, at or above cosell's budget of {usage.budget}; the call was not sent"
        )

    def _observe(self, response: httpx.Response) -> None:
        match = _LIMIT_INFO.search(response.headers.get("sforce-limit-info", ""))
        if match:
            self._record_usage(int(match.group(1)), int(match.group(2)))

    def _record_usage(self, used: int, limit: int) -> None:
        self._usage = ApiUsage(used, limit, self._budget, self._clock.now())
        self._usage_seen_at = self._clock.monotonic()
        cap = self._budget if self._budget is not None else limit
        high = cap > 0 and used >= USAGE_WARNING * cap
        if high and not self._warned:
            log.warning("salesforce.api_usage_high", used=used, limit=limit, budget=self._budget)
        self._warned = high

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        budgeted: bool = True,
    ) -> httpx.Response:
        refreshed = False
        stale: Token | None = None
        attempt = 1
        where = path.split("?")[0]
        while True:
            if budgeted:
                self._check_budget()
            try:
                token = await (self._session.refresh(stale) if stale else self._session.token())
            except RetriableError as down:  # the token endpoint is down: nothing was sent
                await self._backoff(attempt, down, method, where)
                attempt += 1
                continue
            stale = None
            sent = {"Authorization": f"Bearer {token.access_token}", "Accept": "application/json"}
            if method in _WRITES:
                sent["Sforce-Call-Options"] = self._call_options
            sent.update(headers or {})
            try:
                response = await self._http.request(
                    method, self._url(token, path), params=params, json=json, headers=sent
                )
            except httpx.HTTPError as exc:
                broken = TransportError(f"{method} {where} failed: {type(exc).__name__}")
                if not (isinstance(exc, _NOT_SENT) or method in _IDEMPOTENT):
                    raise broken from exc  # a write may have committed: retrying could repeat it
                await self._backoff(attempt, broken, method, where, cause=exc)
                attempt += 1
                continue
            self._observe(response)
            if response.status_code < 300:
                return response
            error = error_from_response(response)
            if isinstance(error, SessionExpiredError):
                if not refreshed:
                    refreshed = True
                    stale = token
                    continue
                raise error  # the engine retries it later, with a session fresh by then
            if not isinstance(error, RetriableError):
                raise error
            if isinstance(error, PlatformError) and method not in _IDEMPOTENT:
                raise error
            await self._backoff(attempt, error, method, where)
            attempt += 1

    async def _backoff(
        self,
        attempt: int,
        error: RetriableError,
        method: str,
        where: str,
        *,
        cause: BaseException | None = None,
    ) -> None:
        wait = self._retry.delay(attempt, error)
        if wait is None:
            raise error from cause
        log.info(
            "salesforce.retry",
            method=method,
            path=where,
            attempt=attempt,
            wait=round(wait, 3),
            error_code=error.error_code or type(error).__name__,
        )
        await self._clock.sleep(wait)

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._send(method, path, **kw)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise UnexpectedResponseError(
                f"{method} {path.split('?')[0]} answered {response.status_code} without JSON"
            ) from exc

    # -- sObject rows -----------------------------------------------------------------------

    async def create(self, sobject: str, fields: Mapping[str, Any]) -> SalesforceId:
        """Create one record.

        Args:
            sobject: The object's API name, e.g. `Opportunity`.
            fields: Field values.

        Returns:
            The new record's id.

        Raises:
            ValidationError: When Salesforce rejects a field or value.
        """
        body = await self._json("POST", f"sobjects/{_name(sobject, 'sObject')}/", json=dict(fields))
        if not isinstance(body, dict) or not body.get("id"):
            raise UnexpectedResponseError(f"creating a {sobject} returned no id")
        return SalesforceId(str(body["id"]))

    async def get(
        self, sobject: str, record_id: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Read one record by id.

        Args:
            sobject: The object's API name.
            record_id: The record id.
            fields: Only these fields (all fields when None).

        Returns:
            The record, with `attributes`.

        Raises:
            NotFoundError: No such record (or it is deleted).
        """
        params = {"fields": ",".join(_name(f, "field") for f in fields)} if fields else None
        path = f"sobjects/{_name(sobject, 'sObject')}/{_record_id(record_id)}"
        body = await self._json("GET", path, params=params)
        if not isinstance(body, dict):
            raise UnexpectedResponseError(f"reading {sobject} {record_id} returned no record")
        return body

    async def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        if_unmodified_since: datetime | None = None,
    ) -> None:
        """Update fields of one record, optionally only if unchanged since a time.

        Args:
            sobject: The object's API name.
            record_id: The record id.
            fields: The fields to change.
            if_unmodified_since: Send `If-Unmodified-Since` (second precision, as Salesforce
                compares): the update is refused if the record changed after it.

        Raises:
            ConflictError: The record changed after `if_unmodified_since` (412).
            ValidationError: Salesforce rejected a field or value.
            NotFoundError / EntityDeletedError: No such record.
        """
        headers = {}
        if if_unmodified_since is not None:
            headers["If-Unmodified-Since"] = _http_date(if_unmodified_since)
        path = f"sobjects/{_name(sobject, 'sObject')}/{_record_id(record_id)}"
        await self._send("PATCH", path, json=dict(fields), headers=headers)

    async def delete(self, sobject: str, record_id: str) -> None:
        """Delete one record (it goes to the recycle bin).

        Raises:
            EntityDeletedError: It was already deleted.
            NotFoundError: No such record.
        """
        path = f"sobjects/{_name(sobject, 'sObject')}/{_record_id(record_id)}"
        await self._send("DELETE", path)

    async def upsert(
        self,
        sobject: str,
        external_id_field: str,
        value: str,
        fields: Mapping[str, Any],
        *,
        update_only: bool = False,
    ) -> UpsertResult:
        """Create or update the record whose external id field equals `value`.

        Args:
            sobject: The object's API name.
            external_id_field: A field marked External ID.
            value: Its value (any characters; it is URL-encoded as one path segment).
            fields: The other fields; they must not include the external id field or Id.
            update_only: Never create (`?updateOnly=true`): no match is a NotFoundError.

        Returns:
            The record's id and whether it was created.

        Raises:
            MultipleRecordsError: Several records have this value (300).
            NotFoundError: No match with `update_only`.
            ValidationError: Salesforce rejected a field or value.
        """
        ext = _name(external_id_field, "external id field")
        clash = [k for k in fields if k.lower() in (ext.lower(), "id")]
        if clash:
            raise ValueError(
                f"upsert body must not contain {clash[0]!r}: the external id goes in the URL"
            )
        path = f"sobjects/{_name(sobject, 'sObject')}/{ext}/{_segment(value, 'external id')}"
        params = {"updateOnly": "true"} if update_only else None
        response = await self._send("PATCH", path, params=params, json=dict(fields))
        body = response.json() if response.content else {}
        if not isinstance(body, dict) or not body.get("id"):
            raise UnexpectedResponseError(f"upserting a {sobject} returned no id")
        created = bool(body.get("created", response.status_code == 201))
        return UpsertResult(SalesforceId(str(body["id"])), created)

    async def get_by_external_id(
        self, sobject: str, external_id_field: str, value: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Read the record whose external id field equals `value`.

        Raises:
            NotFoundError: None has it.
            MultipleRecordsError: Several have it (300).
        """
        ext = _name(external_id_field, "external id field")
        params = {"fields": ",".join(_name(f, "field") for f in fields)} if fields else None
        path = f"sobjects/{_name(sobject, 'sObject')}/{ext}/{_segment(value, 'external id')}"
        body = await self._json("GET", path, params=params)
        if not isinstance(body, dict):
            raise UnexpectedResponseError(f"reading {sobject} by {ext} returned no record")
        return body

    # -- SOQL -------------------------------------------------------------------------------

    async def query_pages(
        self, soql: str, *, batch_size: int | None = None, include_deleted: bool = False
    ) -> AsyncGenerator[QueryPage, None]:
        """Run a SOQL query and yield its pages, following `nextRecordsUrl`.

        Args:
            soql: The query; build literals with `values.soql_quote` and friends.
            batch_size: Rows per page, 200 to 2000 (`Sforce-Query-Options`); Salesforce may
                return fewer.
            include_deleted: Use queryAll (deleted and archived rows too).

        Yields:
            Each page.

        Raises:
            QueryError: Bad SOQL, an expired locator, or more than `max_pages` pages.
        """
        headers = {}
        if batch_size is not None:
            low, high = BATCH_SIZE_RANGE
            if not low <= batch_size <= high:
                raise ValueError(f"batch_size must be between {low} and {high}")
            headers["Sforce-Query-Options"] = f"batchSize={batch_size}"
        path: str | None = "queryAll/" if include_deleted else "query/"
        params: dict[str, str] | None = {"q": soql}
        pages = 0
        while path is not None:
            if pages >= self._max_pages:
                raise QueryError(
                    f"the query returned more than {self._max_pages} pages",
                    hint="narrow it with a WHERE clause, or raise max_pages",
                )
            body = await self._json("GET", path, params=params, headers=headers)
            pages += 1
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                raise UnexpectedResponseError("a query page had no records list")
            next_url = body.get("nextRecordsUrl")
            done = bool(body.get("done", True)) or not next_url
            page = QueryPage(
                total_size=int(body.get("totalSize", 0)),
                done=done,
                records=tuple(body["records"]),
                next_records_url=None if done else str(next_url),
            )
            yield page
            path = None if done else self._locator_path(str(next_url))
            params = None

    def _locator_path(self, next_url: str) -> str:
        url = httpx.URL(next_url)
        token = self._session.current
        if url.is_absolute_url:
            own = httpx.URL(token.instance_url) if token else None
            if own is None or (url.scheme, url.host, url.port) != (own.scheme, own.host, own.port):
                raise UnexpectedResponseError(
                    "nextRecordsUrl points to another host; refusing to send the token there"
                )
            next_url = url.raw_path.decode("ascii")
        if not next_url.startswith("/services/data/"):
            raise UnexpectedResponseError(f"unexpected nextRecordsUrl {next_url.split('?')[0]!r}")
        return next_url

    async def query(
        self, soql: str, *, batch_size: int | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield every record a SOQL query returns, page after page.

        Args:
            soql: The query.
            batch_size: Rows per page (200 to 2000).

        Yields:
            Each record, with `attributes`.
        """
        async for page in self.query_pages(soql, batch_size=batch_size):
            for record in page.records:
                yield record

    async def query_all(
        self, soql: str, *, batch_size: int | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Like `query`, but through queryAll: deleted and archived rows are included."""
        async for page in self.query_pages(soql, batch_size=batch_size, include_deleted=True):
            for record in page.records:
                yield record

    async def count(self, soql: str, *, include_deleted: bool = False) -> int:
        """The `totalSize` of a query, e.g. `SELECT COUNT() FROM Opportunity WHERE ...`.

        Reads only the first page.
        """
        async with aclosing(self.query_pages(soql, include_deleted=include_deleted)) as pages:
            async for page in pages:
                return page.total_size
        raise UnexpectedResponseError("a query returned no page")  # pragma: no cover

    # -- sObject Collections ----------------------------------------------------------------

    async def _collection_writes(
        self,
        method: str,
        path: str,
        records: Sequence[dict[str, Any]],
        *,
        all_or_none: bool,
    ) -> list[SaveResult]:
        async def send(chunk: Sequence[dict[str, Any]]) -> list[SaveResult]:
            body = await self._json(
                method, path, json={"allOrNone": all_or_none, "records": list(chunk)}
            )
            return _save_results(body, len(chunk))

        return await self._in_chunks(records, send, all_or_none=all_or_none)

    async def _in_chunks(
        self,
        items: Sequence[T],
        send: Callable[[Sequence[T]], Awaitable[list[SaveResult]]],
        *,
        all_or_none: bool,
    ) -> list[SaveResult]:
        """Send `items` 200 at a time; after a failed all-or-none chunk, halt the rest."""
        results: list[SaveResult] = []
        failed = False
        for chunk in _chunks(items, COLLECTION_LIMIT):
            if failed and all_or_none:
                results.extend(_halted() for _ in chunk)
                continue
            saved = await self._retrying_items(chunk, send, all_or_none=all_or_none)
            failed = failed or not all(r.success for r in saved)
            results.extend(saved)
        return results

    async def _retrying_items(
        self,
        chunk: Sequence[T],
        send: Callable[[Sequence[T]], Awaitable[list[SaveResult]]],
        *,
        all_or_none: bool,
    ) -> list[SaveResult]:
        """One chunk, resending the items that failed only for a transient reason.

        A record can fail alone with UNABLE_TO_LOCK_ROW while the call succeeds. Such items (or,
        with all-or-none, the whole chunk when every failure is transient or a rollback) are
        sent again after the same backoff as whole calls; a failed item was not saved, so
        resending it cannot duplicate it. When attempts run out, the last results stand.
        """
        results: list[SaveResult | None] = [None] * len(chunk)
        pending = list(range(len(chunk)))
        attempt = 1
        while True:
            saved = await send([chunk[i] for i in pending])
            transient: list[int] = []
            first: RetriableError | None = None
            for index, result in zip(pending, saved, strict=True):
                results[index] = result
                retriable = [x for x in result.errors if isinstance(x, RetriableError)]
                if not result.success and retriable:
                    first = first or retriable[0]
                    transient.append(index)
            if all_or_none and first is not None:
                only_transient = all(
                    r.success
                    or all(isinstance(x, RetriableError | RolledBackError) for x in r.errors)
                    for r in saved
                )
                transient = list(pending) if only_transient else []
            if not transient or first is None:
                break
            wait = self._retry.delay(attempt, first)
            if wait is None:
                break
            log.warning(
                "salesforce.retry_items",
                items=len(transient),
                attempt=attempt,
                wait=round(wait, 3),
                error_code=first.error_code,
            )
            attempt += 1
            await self._clock.sleep(wait)
            pending = transient
        return [r for r in results if r is not None]

    async def create_many(
        self, sobject: str, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[SaveResult]:
        """Create records of one type, 200 per call, results in request order.

        Args:
            sobject: The object's API name.
            records: Field maps, without Id.
            all_or_none: Roll back every record of a call when one fails. Atomicity is per call
                of 200: when a call fails, later calls are not sent (their results carry
                PROCESSING_HALTED) but earlier ones stay committed.

        Returns:
            One result per record.

        Raises:
            SalesforceError: A call failed as a whole (after retries); the records of earlier
                calls stay created, so prefer `upsert_many` where a retry must not duplicate.
        """
        typed = [{"attributes": {"type": _name(sobject, "sObject")}, **r} for r in records]
        return await self._collection_writes(
            "POST", "composite/sobjects", typed, all_or_none=all_or_none
        )

    async def update_many(
        self, sobject: str, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[SaveResult]:
        """Update records of one type by id, 200 per call, results in request order.

        Args:
            sobject: The object's API name.
            records: Field maps, each with `Id`.
            all_or_none: As for `create_many`.

        Returns:
            One result per record.
        """
        typed = []
        for record in records:
            record_id = record.get("Id") or record.get("id")
            if not record_id:
                raise ValueError("every record given to update_many needs an Id")
            rest = {k: v for k, v in record.items() if k not in ("Id", "id")}
            typed.append(
                {"attributes": {"type": _name(sobject, "sObject")}, "id": record_id, **rest}
            )
        return await self._collection_writes(
            "PATCH", "composite/sobjects", typed, all_or_none=all_or_none
        )

    async def upsert_many(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[SaveResult]:
        """Upsert records of one type on an external id field, 200 per call.

        Args:
            sobject: The object's API name.
            external_id_field: The field to match on; every record must set it.
            records: Field maps.
            all_or_none: As for `create_many`.

        Returns:
            One result per record, with `created`.
        """
        ext = _name(external_id_field, "external id field")
        for record in records:
            if not any(k.lower() == ext.lower() for k in record):
                raise ValueError(f"every record given to upsert_many needs {ext}")
        typed = [{"attributes": {"type": _name(sobject, "sObject")}, **r} for r in records]
        path = f"composite/sobjects/{_name(sobject, 'sObject')}/{ext}"
        return await self._collection_writes("PATCH", path, typed, all_or_none=all_or_none)

    async def delete_many(
        self, ids: Sequence[str], *, all_or_none: bool = False
    ) -> list[SaveResult]:
        """Delete records by id, 200 per call, results in request order.

        Args:
            ids: Record ids (any types).
            all_or_none: As for `create_many`.

        Returns:
            One result per id.
        """

        async def send(chunk: Sequence[str]) -> list[SaveResult]:
            params = {"ids": ",".join(chunk), "allOrNone": "true" if all_or_none else "false"}
            body = await self._json("DELETE", "composite/sobjects", params=params)
            return _save_results(body, len(chunk))

        return await self._in_chunks(ids, send, all_or_none=all_or_none)

    async def retrieve_many(
        self, sobject: str, ids: Sequence[str], fields: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        """Read records of one type by id, 2000 per call.

        Args:
            sobject: The object's API name.
            ids: Record ids.
            fields: The fields to read (at least one).

        Returns:
            One record per id in order, None where it does not exist.
        """
        if not fields:
            raise ValueError("retrieve_many needs at least one field")
        names = ",".join(_name(f, "field") for f in fields)
        out: list[dict[str, Any] | None] = []
        for chunk in _chunks(ids, RETRIEVE_LIMIT):
            body = await self._json(
                "GET",
                f"composite/sobjects/{_name(sobject, 'sObject')}",
                params={"ids": ",".join(chunk), "fields": names},
            )
            if not isinstance(body, list) or len(body) != len(chunk):
                raise UnexpectedResponseError(
                    f"retrieving {len(chunk)} {sobject} records returned a different count"
                )
            out.extend(r if isinstance(r, dict) else None for r in body)
        return out

    # -- composite --------------------------------------------------------------------------

    async def composite(
        self,
        subrequests: Sequence[CompositeSubrequest],
        *,
        all_or_none: bool = False,
        collate: bool = False,
    ) -> list[CompositeResult]:
        """Run up to 25 subrequests in one call; later ones may refer to earlier results.

        Args:
            subrequests: The subrequests, in order.
            all_or_none: Roll everything back if one fails.
            collate: Let Salesforce group subrequests (`collateSubrequests`).

        Returns:
            One result per subrequest, in order; check `ok` / `error` on each.

        Raises:
            ValueError: More than 25 subrequests, or none.
        """
        if not subrequests:
            raise ValueError("composite needs at least one subrequest")
        if len(subrequests) > COMPOSITE_LIMIT:
            raise ValueError(
                f"composite takes at most {COMPOSITE_LIMIT} subrequests, got {len(subrequests)}: "
                "split them into several calls, or use the *_many collection methods"
            )
        items = []
        for sub in subrequests:
            item: dict[str, Any] = {
                "method": sub.method.upper(),
                "url": sub.url if sub.url.startswith("/") else self.base_path + sub.url,
                "referenceId": sub.reference_id,
            }
            if sub.body is not None:
                item["body"] = dict(sub.body)
            if sub.headers:
                item["httpHeaders"] = dict(sub.headers)
            items.append(item)
        body = await self._json(
            "POST",
            "composite",
            json={
                "allOrNone": all_or_none,
                "collateSubrequests": collate,
                "compositeRequest": items,
            },
        )
        answers = body.get("compositeResponse") if isinstance(body, dict) else None
        if not isinstance(answers, list) or len(answers) != len(subrequests):
            raise UnexpectedResponseError("the composite response had a different count")
        return [
            CompositeResult(
                reference_id=str(a.get("referenceId", "")),
                status=int(a.get("httpStatusCode", 0)),
                body=a.get("body"),
                headers=dict(a.get("httpHeaders") or {}),
            )
            for a in answers
        ]

    # -- schema, limits, replication ----------------------------------------------------------

    async def describe(self, sobject: str) -> ObjectDescription:
        """The description of `sobject`, cached for `describe_ttl`.

        Raises:
            NotFoundError: No such object.
        """
        return await self.describe_cache.get(_name(sobject, "sObject"))

    async def _load_description(self, sobject: str) -> ObjectDescription:
        body = await self._json("GET", f"sobjects/{sobject}/describe")
        return ObjectDescription.model_validate(body)

    async def picklist_values(
        self, sobject: str, record_type_id: str
    ) -> dict[str, tuple[str, ...]]:
        """The picklist values a record type allows, per picklist field of `sobject`.

        Reads the UI API's `ui-api/object-info/{sobject}/picklist-values/{recordTypeId}` (the
        documented per-record-type resource; describe lists every value of every record type).

        Returns:
            Field API name -> its values for that record type, in the org's order.

        Raises:
            NotFoundError: No such object, or the record type is not one of its record types.
            UnexpectedResponseError: The answer is not the documented shape.
        """
        path = (
            f"ui-api/object-info/{_name(sobject, 'sObject')}/picklist-values/"
            f"{_record_id(record_type_id)}"
        )
        body = await self._json("GET", path)
        fields = body.get("picklistFieldValues") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise UnexpectedResponseError(f"{path} answered without picklistFieldValues")
        values: dict[str, tuple[str, ...]] = {}
        for name, answer in fields.items():
            entries = answer.get("values") if isinstance(answer, dict) else None
            values[str(name)] = tuple(
                str(v["value"]) for v in entries or () if isinstance(v, dict) and "value" in v
            )
        return values

    async def describe_global(self) -> GlobalDescription:
        """Every object of the org (`GET /sobjects`)."""
        return GlobalDescription.model_validate(await self._json("GET", "sobjects"))

    async def limits(self) -> dict[str, Any]:
        """The org's limits (`GET /limits/`); also refreshes `usage`.

        This call is sent even when the API budget is spent, so usage can be re-read.

        Returns:
            The limits by name, each `{"Max": ..., "Remaining": ...}`.
        """
        body = await self._json("GET", "limits/", budgeted=False)
        if not isinstance(body, dict):
            raise UnexpectedResponseError("limits returned no object")
        daily = body.get("DailyApiRequests")
        if isinstance(daily, dict) and "Max" in daily and "Remaining" in daily:
            self._record_usage(int(daily["Max"]) - int(daily["Remaining"]), int(daily["Max"]))
        return body

    async def versions(self) -> list[dict[str, Any]]:
        """The API versions the instance serves (`GET /services/data/`)."""
        body = await self._json("GET", "/services/data/")
        if not isinstance(body, list):
            raise UnexpectedResponseError("the versions list was not a list")
        return body

    # -- SOAP ---------------------------------------------------------------------------------

    async def convert_lead(self, convert: LeadConvert) -> LeadConvertResult:
        """Convert one lead with the SOAP partner API's `convertLead()` (see `soap.py`).

        Args:
            convert: the lead, the converted status, and the records to convert into.

        Returns:
            The result, with the account, contact and opportunity ids.

        Raises:
            SalesforceError: the conversion failed (its error: `ValidationError` for
                CANNOT_UPDATE_CONVERTED_LEAD, INVALID_CROSS_REFERENCE_KEY, INVALID_STATUS, ...),
                or the call did (as `convert_leads`).
        """
        result = (await self.convert_leads([convert]))[0]
        if not result.success:
            raise (
                result.errors[0]
                if result.errors
                else UnexpectedResponseError(
                    f"convertLead() did not convert lead {convert.lead_id} and gave no reason"
                )
            )
        return result

    async def convert_leads(self, converts: Sequence[LeadConvert]) -> list[LeadConvertResult]:
        """Convert up to 100 leads in one `convertLead()` call; each succeeds or fails alone.

        The session's access token is the SOAP `SessionHeader`; an expired one is refreshed
        once, as for REST calls. The call is not retried otherwise: it is not idempotent (a
        retried conversion meets CANNOT_UPDATE_CONVERTED_LEAD), so retriable errors are raised
        for the caller to retry after reading the lead.

        Args:
            converts: 1 to 100 conversions.

        Returns:
            One result per conversion, in order.

        Raises:
            ValueError: no conversions, or more than 100.
            SessionExpiredError: the session was refused again after a refresh.
            TransportError: the call broke (it may have committed).
            SalesforceError: the call failed as a whole (a SOAP fault).
        """
        if not 1 <= len(converts) <= soap.MAX_CONVERTS:
            raise ValueError(
                f"convert 1 to {soap.MAX_CONVERTS} leads per call, not {len(converts)}"
            )
        self._check_budget()
        stale: Token | None = None
        while True:
            token = await (self._session.refresh(stale) if stale else self._session.token())
            envelope = soap.convert_lead_envelope(
                token.access_token, converts, self._call_options.partition("=")[2]
            )
            try:
                response = await self._http.post(
                    f"{token.instance_url}/services/Soap/u/{self.api_version}",
                    content=envelope,
                    headers={"Content-Type": soap.CONTENT_TYPE, "SOAPAction": "convertLead"},
                )
            except httpx.HTTPError as exc:
                raise TransportError(f"convertLead() failed: {type(exc).__name__}") from exc
            self._observe(response)
            if response.status_code == 200:
                return soap.parse_convert_response(response.content, len(converts))
            error = soap.fault_error(response.status_code, response.content)
            if isinstance(error, SessionExpiredError) and stale is None:
                stale = token
                continue
            raise error

    async def get_updated(self, sobject: str, start: datetime, end: datetime) -> UpdatedResult:
        """Ids of `sobject` records changed between `start` and `end` (getUpdated, 30 days).

        Raises:
            ValidationError: INVALID_REPLICATION_DATE for a bad window.
        """
        body = await self._json(
            "GET",
            f"sobjects/{_name(sobject, 'sObject')}/updated/",
            params={"start": _window(start), "end": _window(end)},
        )
        if not isinstance(body, dict):
            raise UnexpectedResponseError("getUpdated returned no object")
        return UpdatedResult(
            ids=tuple(SalesforceId(str(i)) for i in body.get("ids") or ()),
            latest_date_covered=_optional_datetime(body.get("latestDateCovered")),
        )

    async def get_deleted(self, sobject: str, start: datetime, end: datetime) -> DeletedResult:
        """Records of `sobject` deleted between `start` and `end` (getDeleted, 15 days).

        Raises:
            ValidationError: INVALID_REPLICATION_DATE for a bad window.
        """
        body = await self._json(
            "GET",
            f"sobjects/{_name(sobject, 'sObject')}/deleted/",
            params={"start": _window(start), "end": _window(end)},
        )
        if not isinstance(body, dict):
            raise UnexpectedResponseError("getDeleted returned no object")
        records = tuple(
            DeletedRecord(SalesforceId(str(r["id"])), parse_datetime(str(r["deletedDate"])))
            for r in body.get("deletedRecords") or ()
        )
        return DeletedResult(
            records=records,
            earliest_date_available=_optional_datetime(body.get("earliestDateAvailable")),
            latest_date_covered=_optional_datetime(body.get("latestDateCovered")),
        )


def _halted() -> SaveResult:
    return SaveResult(
        None,
        False,
        (
            RolledBackError(
                "not sent: an earlier call of this all-or-none batch failed",
                error_code="PROCESSING_HALTED",
            ),
        ),
    )


def _save_results(body: Any, expected: int) -> list[SaveResult]:
    if not isinstance(body, list) or len(body) != expected:
        raise UnexpectedResponseError(
            f"a collections call for {expected} records returned a different number of results"
        )
    results = []
    for item in body:
        if not isinstance(item, dict):
            raise UnexpectedResponseError("a collections result item was not an object")
        errors = tuple(error_from_item(e) for e in item.get("errors") or () if isinstance(e, dict))
        created = item.get("created")
        results.append(
            SaveResult(
                id=SalesforceId(str(item["id"])) if item.get("id") else None,
                success=bool(item.get("success")),
                errors=errors,
                created=bool(created) if created is not None else None,
            )
        )
    return results
