"""The Referrals API client: OData queries, paging, create, JSON Patch updates, retries.

`ReferralsClient` speaks to `https://api.partner.microsoft.com/v1.0/engagements/referrals`
over an injected `httpx.AsyncClient`, so tests point it at the sandbox in process.

One logical call (a get, a create, one page of a list, an update) is one `ApiRequester.send`:

1. It picks an `MS-RequestId` once; every HTTP attempt of the call carries the same one, so a
   server that deduplicates on it sees a retried write as the same write. Each attempt gets
   a fresh `client-request-id` (spec §1.2: "new value per call").
2. Each attempt sends `Authorization: Bearer <token>` from the `TokenProvider`. A 401 drops
   the cached token and retries once with a new one; a second 401 is terminal.
3. 429, 500, 502, 503, 504 and transport errors are retried up to `RetryPolicy.max_attempts`
   attempts in all. The wait is the server's `Retry-After` when given (plus a little jitter
   so that throttled workers do not return in lockstep), else capped exponential backoff
   with full jitter: uniform(0, min(max_delay, base_delay * 2**(n-1))). A `Retry-After`
   longer than `max_retry_after` is not waited for: the `RetriableError` goes to the caller,
   whose queue can wait without holding a worker. All waits are `clock.sleep`.
4. Anything else that is not 2xx becomes the error `error_from_response` picks.

Retrying a create after an ambiguous failure (a 5xx or a lost connection) could create the
referral twice if the server does not deduplicate on `MS-RequestId`; the sync layer guards
against that by matching `externalReferenceId` before creating again (DESIGN.md, Identity).

Paging follows `@odata.nextLink`, but only its query string is used, against the configured
base URL: the documented links point at other hosts and paths (spec §2.1, §3.14), and a
bearer token must never follow a link to a host it was not configured for. Paging stops
after `max_pages` pages or when a link repeats.
"""

from __future__ import annotations

import builtins
import json
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pydantic
import structlog

from cosell.clock import Clock, SystemClock
from cosell.partnercenter.auth import TokenProvider
from cosell.partnercenter.defaults import REFERRALS_BASE_URL
from cosell.partnercenter.errors import (
    AuthenticationError,
    MfaRequiredError,
    PartnerCenterTransportError,
    RetriableError,
    UnexpectedResponseError,
    error_from_response,
)
from cosell.partnercenter.models import (
    EngagementId,
    NewReferral,
    Referral,
    ReferralChanges,
    ReferralId,
    check_referral_id,
)

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = REFERRALS_BASE_URL
# A backfill of 10,000 referrals at the sandbox's 100 per page is 100 pages; 10,000 pages
# bounds a runaway server without ever cutting a real tenant's list short.
DEFAULT_MAX_PAGES = 10_000
# Generous for Partner Center's slowest calls, short enough that a hung connection is retried.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a call that failed in a retriable way.

    Attributes:
        max_attempts: attempts per logical call, the first included (5: about 15 s of
            backoff in all before giving up, with the defaults below).
        base_delay: the first backoff's upper bound, seconds.
        max_delay: the cap on one backoff, seconds.
        max_retry_after: the longest `Retry-After` waited for in place, seconds; longer ones
            go to the caller as a `RetriableError` (2 minutes: a worker should not sit idle longer).
        retry_after_jitter: at most this many seconds are added to a `Retry-After` wait.
        rng: the source of jitter; seed it for reproducible schedules.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    retry_after_jitter: float = 1.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        Args:
            attempt: how many attempts have been made.
            retry_after: the server's `Retry-After` in seconds, if any.

        Returns:
            The wait: at least `retry_after` when given, else full-jitter exponential backoff.
        """
        if retry_after is not None:
            return retry_after + self.rng.uniform(0.0, self.retry_after_jitter)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return self.rng.uniform(0.0, ceiling)


HeaderFactory = Callable[[], dict[str, str]]


class ApiRequester:
    """Sends one logical call with auth, ids, retries and error mapping (see the module docstring).

    Shared by the Referrals and Webhooks clients; they differ only in the headers they add.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        *,
        clock: Clock,
        retry: RetryPolicy,
        call_headers: HeaderFactory,
        attempt_headers: HeaderFactory,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._clock = clock
        self._retry = retry
        self._call_headers = call_headers
        self._attempt_headers = attempt_headers

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: frozenset[int] = frozenset({200, 201, 204}),
    ) -> httpx.Response:
        """Send one logical call and return its successful response.

        Args:
            method: the HTTP method.
            url: the absolute URL.
            params: query parameters.
            json_body: the JSON body, if any.
            headers: extra headers for every attempt.
            ok: the statuses that count as success.

        Raises:
            PartnerCenterError: the call failed for good (see `errors`).
        """
        call_headers = self._call_headers()
        content = None if json_body is None else json.dumps(json_body).encode("utf-8")
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            request_headers = {
                "Accept": "application/json",
                **call_headers,
                **self._attempt_headers(),
                **(headers or {}),
                "Authorization": f"Bearer {await self._tokens.token()}",
            }
            if content is not None:
                request_headers["Content-Type"] = "application/json"
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers=request_headers,
                    timeout=DEFAULT_TIMEOUT,
                )
            except httpx.TransportError as exc:
                if attempt >= self._retry.max_attempts:
                    raise PartnerCenterTransportError(
                        f"{method} {_path(url)} got no answer in {attempt} attempts "
                        f"({type(exc).__name__}): check the network and that Partner Center is "
                        "reachable; the call can be retried later"
                    ) from exc
                wait = self._retry.backoff(attempt, None)
                log.info(
                    "partnercenter.retry",
                    method=method,
                    path=_path(url),
                    attempt=attempt,
                    wait=round(wait, 3),
                    reason=type(exc).__name__,
                )
                await self._clock.sleep(wait)
                continue
            if response.status_code in ok:
                return response
            failure = error_from_response(response, now=self._clock.now())
            retry_with_new_token = not isinstance(failure, MfaRequiredError)
            if response.status_code == 401 and not reauthenticated and retry_with_new_token:
                log.info("partnercenter.token_refused", method=method, path=_path(url))
                self._tokens.invalidate()
                reauthenticated = True
                attempt -= 1  # a stale token is not a failed attempt of the call
                continue
            if isinstance(failure, MfaRequiredError):
                # The sign-in itself is refused (no MFA): the token provider repeats the
                # refusal without calling until a probe succeeds or cosell connect runs.
                raise self._tokens.refuse(failure) from failure
            if isinstance(failure, AuthenticationError):
                raise failure
            if (
                not isinstance(failure, RetriableError)
                or response.status_code not in RETRY_STATUSES
            ):
                raise failure
            too_long = (
                failure.retry_after is not None
                and failure.retry_after > self._retry.max_retry_after
            )
            if attempt >= self._retry.max_attempts or too_long:
                raise failure
            wait = self._retry.backoff(attempt, failure.retry_after)
            log.info(
                "partnercenter.retry",
                method=method,
                path=_path(url),
                attempt=attempt,
                wait=round(wait, 3),
                status=response.status_code,
                retry_after=failure.retry_after,
            )
            await self._clock.sleep(wait)


def _path(url: str) -> str:
    return urlsplit(url).path


def response_json(response: httpx.Response) -> Any:
    """The JSON body of a response, or an `UnexpectedResponseError` saying it is not JSON."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnexpectedResponseError(
            f"Partner Center answered {response.status_code} with a body that is not JSON "
            f"({response.headers.get('content-type', 'no content type')}); report it with the "
            f"request id {response.headers.get('request-id', 'unknown')}",
            status=response.status_code,
        ) from exc


def _referral(response: httpx.Response) -> Referral:
    body = response_json(response)
    try:
        referral = Referral.model_validate(body)
    except pydantic.ValidationError as exc:
        raise UnexpectedResponseError(
            f"Partner Center returned a referral this client cannot read: {exc.errors()[0]['msg']}",
            status=response.status_code,
        ) from exc
    if referral.e_tag is None and response.headers.get("etag"):
        referral = referral.model_copy(update={"e_tag": response.headers["etag"]})
    return referral


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def odata_string(value: str) -> str:
    """`value` as an OData string literal: single-quoted, inner quotes doubled.

    Use it for every value put into a `$filter`, so that data cannot change the query.
    """
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class ReferralPage:
    """One page of a referral list.

    Attributes:
        referrals: the referrals on this page.
        next_link: the server's `@odata.nextLink`, or None on the last page.
        count: `@odata.count`, when `$count=true` was asked for.
    """

    referrals: tuple[Referral, ...]
    next_link: str | None
    count: int | None


class ReferralsClient:
    """Async client of the Referrals API (App+User tokens only).

    Args:
        http: the HTTP client; its transport decides where requests really go.
        tokens: bearer tokens for `https://api.partner.microsoft.com`.
        base_url: the engagements base; `/referrals` is appended.
        clock: what retries sleep on.
        retry: the retry policy.
        max_pages: the most pages one `list` follows.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._max_pages = max_pages
        self.tokens = tokens
        """The token provider the client signs its calls with (readiness checks reuse it)."""
        self._requester = ApiRequester(
            http,
            tokens,
            clock=clock or SystemClock(),
            retry=retry or RetryPolicy(),
            call_headers=lambda: {"MS-RequestId": str(uuid.uuid4())},
            attempt_headers=lambda: {"client-request-id": str(uuid.uuid4())},
        )

    @property
    def referrals_url(self) -> str:
        """The collection URL."""
        return f"{self._base}/referrals"

    def referral_url(self, referral_id: str) -> str:
        """The URL of one referral.

        Raises:
            ValueError: `referral_id` is not a referral id (`.`, `..`, `/`, `%2F`, empty, ...):
                put in the URL it would name another resource, e.g. the list.
        """
        return f"{self.referrals_url}/{quote(check_referral_id(referral_id), safe='')}"

    async def list_page(
        self,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        skip: int | None = None,
        select: str | None = None,
        count: bool = False,
        next_link: str | None = None,
    ) -> ReferralPage:
        """Fetch one page of referrals.

        Args:
            filter: an OData `$filter`, e.g. `status eq 'Active' and direction eq 'Incoming'`.
            orderby: `createdDateTime` or `updatedDateTime`, with `asc` or `desc`.
            top: `$top`.
            skip: `$skip`.
            select: `$select`, comma-separated field names.
            count: ask for `@odata.count`.
            next_link: a previous page's `next_link`; the other arguments are then ignored.

        Returns:
            The page.
        """
        if next_link is not None:
            params = dict(parse_qsl(urlsplit(next_link).query, keep_blank_values=True))
            if not params:
                raise UnexpectedResponseError(
                    f"Partner Center sent a nextLink without a query ({next_link!r}); "
                    "cannot continue paging"
                )
        else:
            params = {}
            if filter is not None:
                params["$filter"] = filter
            if orderby is not None:
                params["$orderby"] = orderby
            if top is not None:
                params["$top"] = str(top)
            if skip is not None:
                params["$skip"] = str(skip)
            if select is not None:
                params["$select"] = select
            if count:
                params["$count"] = "true"
        response = await self._requester.send("GET", self.referrals_url, params=params)
        body = response_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise UnexpectedResponseError(
                "Partner Center answered a list request without a `value` array",
                status=response.status_code,
            )
        try:
            referrals = tuple(Referral.model_validate(item) for item in body["value"])
        except pydantic.ValidationError as exc:
            raise UnexpectedResponseError(
                f"Partner Center listed a referral this client cannot read: {exc.errors()[0]['msg']}"
            ) from exc
        link = body.get("@odata.nextLink")
        raw_count = body.get("@odata.count")
        return ReferralPage(
            referrals=referrals,
            next_link=link if isinstance(link, str) and link else None,
            count=raw_count if isinstance(raw_count, int) else None,
        )

    async def list(
        self,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        select: str | None = None,
    ) -> AsyncIterator[Referral]:
        """Iterate over every referral matching the query, following `@odata.nextLink`.

        Args:
            filter: an OData `$filter`; quote values with `odata_string`.
            orderby: `createdDateTime` or `updatedDateTime`, with `asc` or `desc`.
            top: `$top`. Whether Partner Center reads it as the page size or as a limit on
                the whole result is not documented (spec §8.4; the sandbox pages by it); the
                iterator follows `@odata.nextLink` either way.
            select: `$select`.

        Yields:
            Referrals, page by page.

        Raises:
            UnexpectedResponseError: more than `max_pages` pages, or a nextLink that repeats.
        """
        page = await self.list_page(filter=filter, orderby=orderby, top=top, select=select)
        seen: set[str] = set()
        pages = 1
        while True:
            for referral in page.referrals:
                yield referral
            if page.next_link is None:
                return
            if page.next_link in seen:
                raise UnexpectedResponseError(
                    "Partner Center sent the same nextLink twice; stopped paging to avoid a loop"
                )
            if pages >= self._max_pages:
                raise UnexpectedResponseError(
                    f"stopped after {pages} pages (max_pages); narrow the $filter or raise the limit"
                )
            seen.add(page.next_link)
            page = await self.list_page(next_link=page.next_link)
            pages += 1

    async def engagement(self, engagement_id: EngagementId) -> builtins.list[Referral]:
        """Every referral of an engagement visible to us: ours and, for a co-sell, Microsoft's.

        Raises:
            ValueError: `engagement_id` is not a GUID.
        """
        if not _GUID.match(engagement_id):
            raise ValueError(f"not an engagement id (a GUID): {engagement_id!r}")
        return [r async for r in self.list(filter=f"engagementId eq {odata_string(engagement_id)}")]

    async def find_by_external_reference(
        self, external_reference_id: str
    ) -> builtins.list[Referral]:
        """Our referrals carrying `externalReferenceId` (the CRM id), to recover an interrupted create."""
        query = f"externalReferenceId eq {odata_string(external_reference_id)}"
        return [r async for r in self.list(filter=query)]

    async def get(self, referral_id: ReferralId) -> Referral:
        """Fetch one referral, its eTag as received.

        Raises:
            NotFoundError: no such referral, or not visible to this user.
        """
        response = await self._requester.send("GET", self.referral_url(referral_id))
        return _referral(response)

    async def create(self, new: NewReferral) -> Referral:
        """Create a referral; Partner Center stores a partner's own as Active/Accepted, Outgoing.

        Returns:
            The created referral, with its id, engagement id and eTag.
        """
        response = await self._requester.send(
            "POST", self.referrals_url, json_body=new.to_json(), ok=frozenset({200, 201})
        )
        return _referral(response)

    async def update(
        self,
        referral_id: ReferralId,
        changes: ReferralChanges,
        *,
        etag: str | None,
        return_representation: bool = True,
        current: Referral | None = None,
    ) -> Referral | None:
        """Apply `changes` with one JSON Patch request.

        Args:
            referral_id: the referral to change.
            changes: what to change.
            etag: the eTag read with the referral, sent verbatim in `If-Match`; None sends
                no `If-Match` (last writer wins, avoid it).
            return_representation: ask for the updated referral (`Prefer: return=representation`).
            current: the referral as read; lets a change under an absent object (no
                `inviteContext` yet, no `details.requirements`) be sent as an `add` of it.

        Returns:
            The updated referral, or None when not asked for (or the server sent 204).

        Raises:
            ValueError: `changes` is empty.
            ConflictError: the referral changed since `etag` was read; re-read and re-merge.
            InvalidRequestError: a rule refused the change (transition, read-only field ...).
        """
        patch = changes.to_json_patch(current)
        if not patch:
            raise ValueError("the change set is empty; check ReferralChanges.is_empty first")
        return await self.patch(
            referral_id, patch, etag=etag, return_representation=return_representation
        )

    async def patch(
        self,
        referral_id: ReferralId,
        operations: Sequence[Mapping[str, Any]],
        *,
        etag: str | None,
        return_representation: bool = True,
    ) -> Referral | None:
        """Send JSON Patch `operations` as they are (the mapping builds them; `update` uses it too).

        Args:
            referral_id: the referral to change.
            operations: RFC 6902 operations; Partner Center accepts `replace` and `add` only.
            etag: the eTag read with the referral, sent verbatim in `If-Match`; None sends
                no `If-Match` (last writer wins, avoid it).
            return_representation: ask for the updated referral (`Prefer: return=representation`).

        Returns:
            The updated referral, or None when not asked for (or the server sent 204).

        Raises:
            ValueError: `operations` is empty, or holds an operation other than add/replace.
            ConflictError: the referral changed since `etag` was read; re-read and re-merge.
            InvalidRequestError: a rule refused the change (transition, read-only field ...).
        """
        if not operations:
            raise ValueError("no JSON Patch operations to send")
        for operation in operations:
            if operation.get("op") not in ("add", "replace") or not isinstance(
                operation.get("path"), str
            ):
                raise ValueError(
                    f"Partner Center accepts only add and replace operations with a path; got {dict(operation)!r}"
                )
        patch = [dict(operation) for operation in operations]
        headers: dict[str, str] = {}
        if etag is not None:
            headers["If-Match"] = etag
        if return_representation:
            headers["Prefer"] = "return=representation"
        response = await self._requester.send(
            "PATCH",
            self.referral_url(referral_id),
            json_body=patch,
            headers=headers,
            ok=frozenset({200, 204}),
        )
        if response.status_code == 204 or not response.content:
            return None
        return _referral(response)
