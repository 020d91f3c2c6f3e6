"""HTTP routes of the Referrals API: `/v1.0/engagements/referrals` (spec §2).

| Method | Path | Answer |
|---|---|---|
| GET | `/v1.0/engagements/referrals` | 200 OData collection (`$filter`, `$orderby`, `$top`, `$skip`, `$count`, `$select`, `$skiptoken`) |
| GET | `/v1.0/engagements/referrals/{id}` | 200 the referral with `@odata.context` `...#Referrals/$entity`, `ETag` |
| POST | `/v1.0/engagements/referrals` | 201 the created referral, `ETag`, `Location` |
| PATCH | `/v1.0/engagements/referrals/{id}` | 204 (or 200 and the referral with `Prefer: return=representation`), `ETag` |
| PUT | `/v1.0/engagements/referrals/{id}` | legacy full replace, `If-Match` required: 200 and the referral, `ETag` |

Every route first checks the bearer token: audience `https://api.partner.microsoft.com`, App+User
only. Errors are rendered by `errors.install_error_handlers`; `request-id` and the echo of
`client-request-id` are added to every answer by `faults.ApiMiddleware`.

Paging. A page holds `$top` referrals when given (at most `MAX_PAGE_SIZE`), else the sandbox's
page size (100 by default), the convention of Microsoft's Graph-style APIs. When more match,
`@odata.nextLink` is an absolute URL on the sandbox's base URL whose only parameter is an
opaque `$skiptoken`: base64url JSON holding the query and the sort key of the last referral
served. The next page starts strictly after that key (keyset paging), so referrals created
while a client pages are neither skipped nor served twice. The order is `$orderby` (on
`createdDateTime` / `updatedDateTime`, default `createdDateTime asc`) and then creation order.
`@odata.count` (with `$count=true`) is the number of referrals that match the filter, on every
page.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import json
from dataclasses import dataclass
from functools import total_ordering
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError
from cosell_sandbox.partnercenter.identity import REFERRALS_AUDIENCE, Identity
from cosell_sandbox.partnercenter.odata import (
    ODataError,
    OrderBy,
    compile_filter,
    parse_count,
    parse_non_negative,
    parse_orderby,
    parse_select,
    select_fields,
)
from cosell_sandbox.partnercenter.store import REFERRALS_PATH, ReferralStore

MAX_PAGE_SIZE: Final = 1000  # spec §6: "honour $top up to 1000"
DEFAULT_ORDER: Final = (OrderBy("createdDateTime", descending=False),)


@total_ordering
@dataclass(frozen=True)
class _Descending:
    value: str

    def __lt__(self, other: object) -> bool:
        assert isinstance(other, _Descending)
        return self.value > other.value


@dataclass(frozen=True)
class _Query:
    filter: str | None
    orderby: str | None
    select: str | None
    count: bool
    page_size: int
    skip: int = 0  # $skip, on the first page only
    after: list[Any] | None = None  # sort key of the last referral served

    def encode(self, after: list[Any]) -> str:
        data = {
            "f": self.filter,
            "o": self.orderby,
            "s": self.select,
            "c": self.count,
            "t": self.page_size,
            "k": after,
        }
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> _Query:
        invalid = PartnerCenterSandboxError(
            400,
            "invalidRequest",
            "$skiptoken is not one this service issued; follow @odata.nextLink exactly as "
            "received, or start again from the first page",
            target="$skiptoken",
        )
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            query = cls(
                filter=data["f"],
                orderby=data["o"],
                select=data["s"],
                count=bool(data["c"]),
                page_size=int(data["t"]),
                after=list(data["k"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise invalid from None
        if not 1 <= query.page_size <= MAX_PAGE_SIZE:
            raise invalid
        return query


def _odata_error(exc: ODataError) -> PartnerCenterSandboxError:
    return PartnerCenterSandboxError(400, "invalidRequest", str(exc), target=exc.option)


def _sort_key(
    referral: dict[str, Any], order: tuple[OrderBy, ...], sequence: int
) -> tuple[Any, ...]:
    parts: list[Any] = []
    for key in order:
        value = str(referral.get(key.field) or "")
        parts.append(_Descending(value) if key.descending else value)
    parts.append(sequence)
    return tuple(parts)


def _raw_key(key: tuple[Any, ...]) -> list[Any]:
    return [part.value if isinstance(part, _Descending) else part for part in key]


def _rebuild_key(raw: list[Any], order: tuple[OrderBy, ...]) -> tuple[Any, ...]:
    if len(raw) != len(order) + 1 or not isinstance(raw[-1], int):
        raise PartnerCenterSandboxError(
            400,
            "invalidRequest",
            "$skiptoken does not match its query; start again from the first page",
            target="$skiptoken",
        )
    parts: list[Any] = [
        _Descending(str(value)) if key.descending else str(value)
        for value, key in zip(raw, order, strict=False)
    ]
    parts.append(int(raw[-1]))
    return tuple(parts)


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        raise PartnerCenterSandboxError(400, "invalidRequest", "the request body is empty")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PartnerCenterSandboxError(
            400, "invalidRequest", f"the request body is not valid JSON: {exc}"
        ) from None
    try:
        # An escaped lone surrogate (`"\\ud800"`) parses, but is no text the service can store
        # or send back; like the real service, refuse it instead of failing every later list.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise PartnerCenterSandboxError(
            400, "invalidRequest", "the request body holds an unpaired UTF-16 surrogate"
        ) from None
    return body


def _etag_headers(referral: dict[str, Any]) -> dict[str, str]:
    return {"ETag": str(referral["eTag"])}


def build_referrals_router(
    store: ReferralStore, identity: Identity, *, base_url: str, page_size: int = 100
) -> APIRouter:
    """The Referrals API routes over `store`, authenticated by `identity`.

    Args:
        store: the sandbox's referrals.
        identity: checks every request's bearer token.
        base_url: the sandbox's base URL, for `@odata.context` and `@odata.nextLink`.
        page_size: referrals per page when the client gives no `$top`.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    base = base_url.rstrip("/")
    collection_url = f"{base}{REFERRALS_PATH}"
    context = f"{base}/v1.0/$metadata#Referrals"
    router = APIRouter()

    def authenticate(request: Request) -> None:
        identity.authenticate(request, audience=REFERRALS_AUDIENCE, user_required=True)

    def read_query(request: Request) -> _Query:
        params = request.query_params
        token = params.get("$skiptoken")
        if token is not None:
            return _Query.decode(token)
        try:
            top = params.get("$top")
            size = (
                parse_non_negative("$top", top, minimum=1, maximum=MAX_PAGE_SIZE)
                if top is not None
                else page_size
            )
            query = _Query(
                filter=params.get("$filter"),
                orderby=params.get("$orderby"),
                select=params.get("$select"),
                count=parse_count(params["$count"]) if "$count" in params else False,
                page_size=size,
            )
            skip = params.get("$skip")
            if skip is not None:
                skipped = parse_non_negative("$skip", skip)
                return dataclasses.replace(query, skip=skipped)
        except ODataError as exc:
            raise _odata_error(exc) from None
        return query

    @router.get(REFERRALS_PATH)
    async def list_referrals(request: Request) -> Response:
        authenticate(request)
        query = read_query(request)
        try:
            matches = compile_filter(query.filter) if query.filter else None
            order = parse_orderby(query.orderby) if query.orderby else DEFAULT_ORDER
            select = parse_select(query.select) if query.select else None
        except ODataError as exc:
            raise _odata_error(exc) from None
        keyed = sorted(
            (_sort_key(referral, order, sequence), referral)
            for sequence, referral in enumerate(store.referrals())
            if matches is None or matches(referral)
        )
        keys = [key for key, _ in keyed]
        start = query.skip
        if query.after is not None:
            start = bisect.bisect_right(keys, _rebuild_key(query.after, order))
        page = keyed[start : start + query.page_size]
        body: dict[str, Any] = {"@odata.context": context}
        if query.count:
            body["@odata.count"] = len(keyed)
        body["value"] = [
            select_fields(referral, select) if select else referral for _, referral in page
        ]
        if start + query.page_size < len(keyed):
            token = query.encode(_raw_key(page[-1][0]))
            body["@odata.nextLink"] = f"{collection_url}?$skiptoken={token}"
        return JSONResponse(body)

    @router.get(REFERRALS_PATH + "/{referral_id}")
    async def get_referral(referral_id: str, request: Request) -> Response:
        authenticate(request)
        referral = store.get(referral_id)
        body = {"@odata.context": f"{context}/$entity", **referral}
        return JSONResponse(body, headers=_etag_headers(referral))

    @router.post(REFERRALS_PATH)
    async def create_referral(request: Request) -> Response:
        authenticate(request)
        referral = store.create(_json_body(await request.body()))
        headers = _etag_headers(referral) | {"Location": f"{collection_url}/{referral['id']}"}
        return JSONResponse(referral, status_code=201, headers=headers)

    @router.patch(REFERRALS_PATH + "/{referral_id}")
    async def patch_referral(referral_id: str, request: Request) -> Response:
        authenticate(request)
        operations = _json_body(await request.body())
        referral = store.patch(referral_id, operations, if_match=request.headers.get("if-match"))
        prefer = request.headers.get("prefer", "").replace(" ", "").lower()
        if "return=representation" in prefer.split(","):
            return JSONResponse(referral, headers=_etag_headers(referral))
        return Response(status_code=204, headers=_etag_headers(referral))

    @router.put(REFERRALS_PATH + "/{referral_id}")
    async def replace_referral(referral_id: str, request: Request) -> Response:
        authenticate(request)
        body = _json_body(await request.body())
        referral = store.replace(referral_id, body, if_match=request.headers.get("if-match"))
        return JSONResponse(referral, headers=_etag_headers(referral))

    return router
