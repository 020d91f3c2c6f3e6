"""The REST API under `/services/data/vNN.N/`: routing and every resource but Composite.

Requests reach `RestApi.dispatch` as plain `ApiRequest`s (method, decoded path segments after
the version, query parameters, headers, body bytes), not as HTTP requests, for two reasons: the
same dispatcher serves HTTP and Composite subrequests, and the routing that simple-salesforce
needs (spec §2.1: `sobjects` without and `sobjects/Opportunity/` with a trailing slash,
`query/` and `query`, `updated/?start=`, ...) is decided in one readable place rather than by a
web framework's slash redirects. Every error becomes Salesforce's array body; no exception
escapes `dispatch`.

Routes (segments after `vNN.N`; a trailing slash is always optional):

| Segments                                  | Methods                | Resource                  |
|-------------------------------------------|------------------------|---------------------------|
| (none)                                    | GET                    | resources of the version  |
| sobjects                                  | GET                    | describeGlobal (IMS→304)  |
| sobjects/{T}                              | GET, POST              | basic info, create        |
| sobjects/{T}/describe                     | GET                    | describe (IMS→304)        |
| sobjects/{T}/updated, sobjects/{T}/deleted| GET                    | getUpdated, getDeleted    |
| sobjects/{T}/{id}                         | GET, PATCH, DELETE     | row (conditional headers) |
| sobjects/{T}/{id}/{blobField}             | GET                    | raw bytes, e.g. Content   |
| sobjects/{T}/{ExtField}/{value}           | GET, PATCH, DELETE     | by external id; upsert    |
| sobjects/{T}/Id                           | POST                   | create                    |
| query, queryAll (?q=)                     | GET                    | first page                |
| query/{locator}, queryAll/{locator}       | GET                    | next page                 |
| limits                                    | GET                    | DailyApiRequests, ...     |
| composite, composite/sobjects[/...]       | see `composite`        |                           |
| ui-api/object-info/{T}/picklist-values/{rt}| GET                   | picklists of a record type|

Every call runs in a store `Transaction` owned by the caller (`CallContext.tx`): the HTTP entry
commits it when the response is a success and rolls it back otherwise; Composite shares one
transaction across its subrequests.

Query paging: the SOQL engine returns every matching record; the first page is answered at
once and the rest is kept behind a cursor whose locator (`01g...-<offset>`) is handed out in
`nextRecordsUrl`. A cursor expires after 15 minutes without use (INVALID_QUERY_LOCATOR), and
at most `_MAX_CURSORS` are kept (the oldest is dropped), as Salesforce limits open cursors.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any
from urllib.parse import quote, unquote_plus

from cosell.clock import Clock
from cosell_sandbox.salesforce import describe, soql
from cosell_sandbox.salesforce.errors import SalesforceSandboxError
from cosell_sandbox.salesforce.ids import IdFactory, looks_like_id, to_18
from cosell_sandbox.salesforce.limits import ApiUsage
from cosell_sandbox.salesforce.schema import Schema, SObjectSchema
from cosell_sandbox.salesforce.soql.errors import SoqlError
from cosell_sandbox.salesforce.store import (
    RECYCLE_BIN_RETENTION,
    Actor,
    MultipleMatchesError,
    RecordStore,
    Transaction,
    error,
    not_found,
)
from cosell_sandbox.salesforce.values import (
    format_datetime,
    format_http_date,
    parse_datetime,
    parse_http_date,
)

MIN_VERSION = 31  # the oldest REST API version the sandbox serves (issue 3)
MAX_VERSION = 66  # the newest (Spring '26)
DEFAULT_BATCH_SIZE = 2000  # records per query page unless Sforce-Query-Options says otherwise
MIN_BATCH_SIZE = 200  # Salesforce's floor for batchSize
CURSOR_IDLE = timedelta(minutes=15)  # a query locator dies after 15 minutes without use
_MAX_CURSORS = 100  # open query cursors kept; the oldest goes first
_UPDATED_WINDOW = timedelta(days=30)  # getUpdated looks back at most 30 days (spec §2.1 #14)
_MAX_UPDATED_IDS = 600_000  # getUpdated refuses windows with more ids (spec §2.1 #14)
_UPSERT_CREATED_VERSION = 46  # `created` in upsert results, and 200 instead of 204, from v46.0
_RETRIEVE_MAX_IDS = 2000  # sObject Collections retrieve takes at most 2000 ids
_SEASONS = ("Winter", "Spring", "Summer")


def supported_versions() -> list[str]:
    """Every API version served, oldest first, as `NN.0`."""
    return [f"{v}.0" for v in range(MIN_VERSION, MAX_VERSION + 1)]


def release_label(version: str) -> str:
    """The release name of an API version, e.g. `59.0` -> `Winter '24`."""
    major = int(float(version))
    # v32.0 was Winter '15; three releases a year, each one version.
    season = _SEASONS[(major - 32) % 3]
    year = 15 + (major - 32) // 3
    return f"{season} '{year:02d}"


def versions_list() -> list[dict[str, str]]:
    """The body of `GET /services/data/`."""
    return [
        {"label": release_label(v), "url": f"/services/data/v{v}", "version": v}
        for v in supported_versions()
    ]


def parse_version(segment: str) -> str | None:
    """`vNN.N` -> `NN.N` when served, else None."""
    if segment == "latest":
        return f"{MAX_VERSION}.0"
    if not segment.startswith("v"):
        return None
    text = segment[1:]
    return text if text in supported_versions() else None


@dataclass(frozen=True)
class ApiRequest:
    """One call to a data resource, decoded."""

    method: str
    segments: tuple[str, ...]  # after vNN.N, each percent-decoded, no empty trailing segment
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""
    raw_segments: tuple[str, ...] = ()  # the same segments still percent-encoded

    def header(self, name: str) -> str | None:
        """A request header, by case-insensitive name."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            SalesforceSandboxError: 400 JSON_PARSER_ERROR.
        """
        if not self.body.strip():
            raise error(
                "JSON_PARSER_ERROR", "The request body is empty; send a JSON object or array"
            )
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise error("JSON_PARSER_ERROR", f"The request body is not valid JSON: {exc}") from None


@dataclass
class ApiResponse:
    """What a data resource answers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a binary body (blob fields)
    media_type: str = "application/json;charset=UTF-8"
    route: str = ""  # the resource template, for stats

    @classmethod
    def from_error(cls, exc: SalesforceSandboxError, version: str, route: str) -> ApiResponse:
        """The response for a raised error (300 answers the list of matching record URLs)."""
        if isinstance(exc, MultipleMatchesError):
            urls = [f"/services/data/v{version}/sobjects/{exc.object_name}/{i}" for i in exc.ids]
            return cls(300, urls, route=route)
        return cls(exc.status, [exc.item()], dict(exc.headers), route=route)


@dataclass
class CallContext:
    """Who calls, in which version, inside which transaction."""

    actor: Actor
    tx: Transaction
    version: str
    in_composite: bool = False


@dataclass
class _Cursor:
    records: list[dict[str, Any]]
    total_size: int
    batch_size: int
    last_used: datetime


Handler = Callable[[ApiRequest, CallContext], ApiResponse]


class RestApi:
    """The data resources of one sandbox org."""

    def __init__(
        self,
        store: RecordStore,
        *,
        clock: Clock,
        ids: IdFactory,
        usage: ApiUsage,
        schema_changed_at: datetime,
    ) -> None:
        self.store = store
        self.schema: Schema = store.schema
        self.clock = clock
        self.ids = ids
        self.usage = usage
        self.schema_changed_at = schema_changed_at
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self.composite_handler: Handler | None = None  # set by the composite module

    # ----------------------------------------------------------------- routing

    def dispatch(self, req: ApiRequest, ctx: CallContext) -> ApiResponse:
        """Answer one data call; errors are rendered, never raised."""
        route = self.route_name(req)
        try:
            response = self._route(req, ctx)
        except SalesforceSandboxError as exc:
            return ApiResponse.from_error(exc, ctx.version, route)
        response.route = response.route or route
        return response

    def route_name(self, req: ApiRequest) -> str:
        """The resource template a request addresses (for stats), e.g. `sobjects/{T}/{id}`."""
        seg = req.segments
        if not seg:
            return "/"
        if seg[0] == "sobjects":
            names = ["sobjects", "{T}", "{id}", "{field}"]
            if len(seg) >= 3 and seg[2] in ("describe", "updated", "deleted"):
                return f"sobjects/{{T}}/{seg[2]}"
            if len(seg) == 4:
                return "sobjects/{T}/{field}/{value}"
            return "/".join(names[: len(seg)])
        if seg[0] in ("query", "queryAll"):
            return seg[0] + ("/{locator}" if len(seg) > 1 else "")
        if seg[:2] == ("ui-api", "object-info") and len(seg) == 5:
            return "ui-api/object-info/{T}/picklist-values/{recordTypeId}"
        if seg[0] == "composite":
            return "/".join(["composite", "sobjects", "{T}", "{field}"][: len(seg)])
        return "/".join(seg)

    def _route(self, req: ApiRequest, ctx: CallContext) -> ApiResponse:
        seg = req.segments
        method = req.method
        if not seg:
            self._allow(method, "GET")
            return ApiResponse(200, self._resources(ctx.version))
        head = seg[0]
        if head == "sobjects":
            return self._sobjects(req, ctx)
        if head in ("query", "queryAll") and len(seg) <= 2:
            self._allow(method, "GET")
            include_deleted = head == "queryAll"
            if len(seg) == 1:
                return self._query(req, ctx, include_deleted=include_deleted)
            return self._query_more(seg[1], ctx, include_deleted=include_deleted)
        if head == "limits" and len(seg) == 1:
            self._allow(method, "GET")
            return ApiResponse(200, self._limits())
        if head == "composite" and self.composite_handler is not None:
            return self.composite_handler(req, ctx)
        if seg[:2] == ("ui-api", "object-info") and len(seg) == 5 and seg[3] == "picklist-values":
            self._allow(method, "GET")
            obj = self.schema.sobject(seg[2])
            if obj is None:
                raise not_found()
            try:
                record_type_id = to_18(seg[4])
            except ValueError:
                raise not_found() from None
            body = describe.picklist_values(obj, record_type_id, api_version=ctx.version)
            return ApiResponse(200, body)
        raise not_found()

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise SalesforceSandboxError(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}",
            )

    def _resources(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}"
        return {
            name: f"{base}/{name}"
            for name in ("sobjects", "query", "queryAll", "composite", "limits")
        }

    # ----------------------------------------------------------------- sobjects

    def _sobjects(self, req: ApiRequest, ctx: CallContext) -> ApiResponse:
        seg = req.segments
        method = req.method
        if len(seg) == 1:
            self._allow(method, "GET")
            return self._describe_global(req, ctx)
        obj = self.store.sobject(seg[1])
        if len(seg) == 2:
            self._allow(method, "GET", "POST")
            if method == "GET":
                return ApiResponse(200, describe.sobject_basic_info(obj, api_version=ctx.version))
            return self._create(req, ctx, obj)
        third = seg[2]
        if len(seg) == 3 and third == "describe":
            self._allow(method, "GET")
            return self._describe(req, ctx, obj)
        if len(seg) == 3 and third in ("updated", "deleted"):
            self._allow(method, "GET")
            if third == "updated":
                return self._updated(req, obj)
            return self._deleted(req, obj)
        if len(seg) == 3:
            if third.lower() == "id" and method == "POST":
                return self._create(req, ctx, obj)
            return self._row(req, ctx, obj, third)
        if len(seg) == 4:
            spec = obj.field(third)
            if spec is not None and (spec.external_id or spec.name == "Id"):
                value = self._external_value(req)
                return self._by_external(req, ctx, obj, spec.name, value)
            if looks_like_id(third) and spec is None:
                blob = obj.field(seg[3])
                if blob is not None and blob.type == "base64":
                    self._allow(method, "GET")
                    return self._blob(obj, third, blob.name)
            if spec is None and not looks_like_id(third):
                self.store.external_id_field(obj, third)  # raises the external-id 404
        raise not_found()

    def _external_value(self, req: ApiRequest) -> str:
        # simple-salesforce's get_by_custom_id sends quote_plus(value): '+' means a space there
        # (spec §6.1); a literal plus arrives as %2B and survives.
        raw = req.raw_segments[3] if len(req.raw_segments) > 3 else quote(req.segments[3])
        return unquote_plus(raw)

    def _describe_global(self, req: ApiRequest, ctx: CallContext) -> ApiResponse:
        not_modified = self._not_modified_since(req, self.schema_changed_at)
        if not_modified:
            return ApiResponse(304)
        body = describe.describe_global(self.schema, api_version=ctx.version)
        return ApiResponse(200, body, {"Last-Modified": format_http_date(self.schema_changed_at)})

    def _describe(self, req: ApiRequest, ctx: CallContext, obj: SObjectSchema) -> ApiResponse:
        if self._not_modified_since(req, self.schema_changed_at):
            return ApiResponse(304)
        body = describe.describe_sobject(obj, api_version=ctx.version)
        return ApiResponse(200, body, {"Last-Modified": format_http_date(self.schema_changed_at)})

    def _not_modified_since(self, req: ApiRequest, changed: datetime) -> bool:
        text = req.header("If-Modified-Since")
        if not text:
            return False
        try:
            since = parse_http_date(text)
        except ValueError:
            return False  # GET ignores a malformed If-Modified-Since, as HTTP says
        return changed.replace(microsecond=0) <= since

    def _create(self, req: ApiRequest, ctx: CallContext, obj: SObjectSchema) -> ApiResponse:
        self._check_conditional_syntax(req)
        body = req.json()
        new_id = self.store.create(ctx.tx, obj, body)
        location = f"/services/data/v{ctx.version}/sobjects/{obj.name}/{new_id}"
        alerts = ctx.tx.alerts.get(new_id, [])
        return ApiResponse(
            201, {"id": new_id, "success": True, "errors": alerts}, {"Location": location}
        )

    def _row(
        self, req: ApiRequest, ctx: CallContext, obj: SObjectSchema, value: str
    ) -> ApiResponse:
        if not looks_like_id(value):
            # Salesforce reads a non-id second segment as an external-id field name.
            self.store.external_id_field(obj, value)
        method = req.method
        self._allow(method, "GET", "PATCH", "DELETE", "HEAD")
        if method == "DELETE":
            self.store.delete(ctx.tx, obj, value)
            return ApiResponse(204)
        row = self.store.get(obj, value)
        if method == "PATCH":
            self._check_conditional_syntax(req)
            self._preconditions(req, obj, row, write=True)
            body = req.json()
            self.store.update(ctx.tx, obj, row["Id"], body)
            return ApiResponse(204)
        early = self._preconditions(req, obj, row, write=False)
        if early is not None:
            return early
        return ApiResponse(200, self._record(req, ctx, obj, row), self._row_headers(obj, row))

    def _record(
        self, req: ApiRequest, ctx: CallContext, obj: SObjectSchema, row: Mapping[str, Any]
    ) -> dict[str, Any]:
        names = self._field_list(req.query.get("fields"), obj)
        return self.render(obj, row, ctx.version, names)

    def _field_list(self, text: str | None, obj: SObjectSchema) -> list[str] | None:
        if text is None or not text.strip():
            return None
        names = []
        for raw in text.split(","):
            name = raw.strip()
            spec = obj.field(name)
            if spec is None:
                raise error(
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{obj.name}'. If you are attempting to "
                    "use a custom field, be sure to append the '__c' after the custom field "
                    "name. Please reference your WSDL or the describe call for the appropriate "
                    "names.",
                )
            names.append(spec.name)
        return names

    def render(
        self,
        obj: SObjectSchema,
        row: Mapping[str, Any],
        version: str,
        names: list[str] | None = None,
    ) -> dict[str, Any]:
        """A row as the REST API returns it: attributes first, then the fields."""
        record: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}",
            }
        }
        for name in names if names is not None else [f.name for f in obj.iter_fields()]:
            value = row.get(name)
            if isinstance(value, str) and value.startswith("/services/data/v"):
                spec = obj.field(name)
                if spec is not None and spec.type == "base64":
                    value = f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}/{name}"
            record[name] = value
        return record

    def _row_headers(self, obj: SObjectSchema, row: Mapping[str, Any]) -> dict[str, str]:
        headers = {"Last-Modified": format_http_date(parse_datetime(row["LastModifiedDate"]))}
        if obj.name == "Account":
            headers["ETag"] = etag(row)
        return headers

    def _blob(self, obj: SObjectSchema, value: str, field_name: str) -> ApiResponse:
        row = self.store.get(obj, value)
        data = self.store.blob(row["Id"], field_name)
        if data is None:
            raise not_found()
        return ApiResponse(200, raw=data, media_type="application/octetstream")

    def _by_external(
        self, req: ApiRequest, ctx: CallContext, obj: SObjectSchema, field_name: str, value: str
    ) -> ApiResponse:
        method = req.method
        self._allow(method, "GET", "PATCH", "DELETE", "POST", "HEAD")
        spec = self.store.external_id_field(obj, field_name)
        if method == "PATCH":
            self._check_conditional_syntax(req)
            update_only = req.query.get("updateOnly", "").lower() == "true"
            result = self.store.upsert(
                ctx.tx, obj, spec.name, value, req.json(), update_only=update_only
            )
            modern = int(float(ctx.version)) >= _UPSERT_CREATED_VERSION
            location = f"/services/data/v{ctx.version}/sobjects/{obj.name}/{result.id}"
            body: dict[str, Any] = {"id": result.id, "success": True, "errors": []}
            if modern:
                body["created"] = result.created
            if result.created:
                return ApiResponse(201, body, {"Location": location})
            if modern:
                return ApiResponse(200, body, {"Location": location})
            return ApiResponse(204)
        if method == "POST":
            raise error(
                "METHOD_NOT_ALLOWED",
                "POST creates through sobjects/{T}/ or sobjects/{T}/Id; use PATCH to upsert by "
                "an external id",
                status=405,
            )
        matches = self.store.find_external(obj, spec, value)
        if not matches:
            raise not_found()
        if len(matches) > 1:
            raise MultipleMatchesError(obj.name, spec.name, matches)
        if method == "DELETE":
            self.store.delete(ctx.tx, obj, matches[0])
            return ApiResponse(204)
        row = self.store.get(obj, matches[0])
        return ApiResponse(200, self._record(req, ctx, obj, row), self._row_headers(obj, row))

    # ----------------------------------------------------------------- conditional requests

    def _check_conditional_syntax(self, req: ApiRequest) -> None:
        """A malformed conditional header on a write is a 400 (spec §2.5)."""
        for name in ("If-Match", "If-None-Match"):
            text = req.header(name)
            if text is not None and parse_etags(text) is None:
                raise error(
                    "MALFORMED_HEADER",
                    f"{name} must be '*' or a list of quoted ETags like \"abc--gzip\"; got "
                    f"{text[:100]!r}",
                )
        for name in ("If-Unmodified-Since", "If-Modified-Since"):
            text = req.header(name)
            if text is not None:
                try:
                    parse_http_date(text)
                except ValueError:
                    raise error(
                        "MALFORMED_HEADER",
                        f"{name} must be an HTTP date like 'Tue, 05 Jan 2026 09:00:00 GMT'; got "
                        f"{text[:100]!r}",
                    ) from None

    def _preconditions(
        self, req: ApiRequest, obj: SObjectSchema, row: Mapping[str, Any], *, write: bool
    ) -> ApiResponse | None:
        modified = parse_datetime(row["LastModifiedDate"]).replace(microsecond=0)
        if obj.name == "Account":
            tag = etag(row)
            match = req.header("If-Match")
            if match is not None:
                tags = parse_etags(match)
                if tags is not None and "*" not in tags and tag not in tags:
                    raise precondition_failed("If-Match", "the record's ETag differs")
            none_match = req.header("If-None-Match")
            if none_match is not None:
                tags = parse_etags(none_match)
                if tags is not None and ("*" in tags or tag in tags):
                    if write:
                        raise precondition_failed("If-None-Match", "the record's ETag matches")
                    return ApiResponse(304, headers={"ETag": tag})
        unmodified = req.header("If-Unmodified-Since")
        if unmodified is not None:
            try:
                since = parse_http_date(unmodified)
            except ValueError:
                since = None
            if since is not None and modified > since:
                raise precondition_failed(
                    "If-Unmodified-Since",
                    f"the record was modified at {row['LastModifiedDate']}",
                )
        if not write and self._not_modified_since(req, modified):
            return ApiResponse(304)
        return None

    # ----------------------------------------------------------------- getUpdated / getDeleted

    def _window(self, req: ApiRequest) -> tuple[datetime, datetime]:
        values = []
        for name in ("start", "end"):
            text = req.query.get(name)
            if not text:
                raise error(
                    "MISSING_ARGUMENT",
                    f"'{name}' is required: pass ?start=<ISO datetime>&end=<ISO datetime> in UTC",
                )
            try:
                # '+' may arrive decoded as a space; simple-salesforce leaves a dangling ':' after
                # a naive datetime (spec §5.5), read as UTC.
                moment = parse_datetime(text.replace(" ", "+").rstrip(":"))
            except ValueError:
                raise error(
                    "INVALID_REPLICATION_DATE",
                    f"'{name}' is not an ISO 8601 datetime: {text[:100]!r}; use e.g. "
                    "2026-01-05T09:00:00+00:00",
                ) from None
            # Salesforce ignores the seconds of both bounds.
            values.append(moment.replace(second=0, microsecond=0))
        start, end = values
        if start >= end:
            raise error(
                "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate"
            )
        return start, end

    def _updated(self, req: ApiRequest, obj: SObjectSchema) -> ApiResponse:
        start, end = self._window(req)
        now = self.clock.now()
        if start < now - _UPDATED_WINDOW:
            raise error(
                "INVALID_REPLICATION_DATE",
                "startDate cannot be more than 30 days ago; use a later start or query by "
                "SystemModstamp",
            )
        latest = min(end, now.replace(second=0, microsecond=0))
        ids = [
            row["Id"]
            for row in self.store.rows(obj.name, include_deleted=False)
            if start <= parse_datetime(row["SystemModstamp"]) < latest
        ]
        if len(ids) > _MAX_UPDATED_IDS:
            raise error(
                "EXCEEDED_ID_LIMIT",
                f"{len(ids)} records changed in the window; more than {_MAX_UPDATED_IDS} ids "
                "cannot be returned: use a shorter window",
            )
        return ApiResponse(200, {"ids": ids, "latestDateCovered": format_datetime(latest)})

    def _deleted(self, req: ApiRequest, obj: SObjectSchema) -> ApiResponse:
        start, end = self._window(req)
        now = self.clock.now()
        earliest = (now - RECYCLE_BIN_RETENTION).replace(second=0, microsecond=0)
        if start < earliest:
            raise error(
                "INVALID_REPLICATION_DATE",
                f"startDate is before the earliest date available ({format_datetime(earliest)}"
                "): deleted records stay in the recycle bin for 15 days",
            )
        latest = min(end, now.replace(second=0, microsecond=0))
        deleted = self.store.deleted_since(obj.name, start, latest)
        return ApiResponse(
            200,
            {
                "deletedRecords": [
                    {"id": rid, "deletedDate": format_datetime(at)} for rid, at in deleted
                ],
                "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(latest),
            },
        )

    # ----------------------------------------------------------------- query

    def run_query(
        self, text: str, ctx: CallContext, *, include_deleted: bool
    ) -> tuple[int, list[dict[str, Any]]]:
        """Every record of a SOQL query (no paging), in wire shape.

        Raises:
            SalesforceSandboxError: 400 with the engine's error code.
        """
        try:
            parsed = soql.parse(text)
            result = soql.execute(
                parsed,
                self.schema,
                self.store,
                api_version=ctx.version,
                include_deleted=include_deleted,
                now=self.clock.now(),
            )
        except SoqlError as exc:
            raise error(exc.error_code, exc.message) from None
        return result.total_size, list(result.records)

    def _batch_size(self, req: ApiRequest) -> int:
        options = req.header("Sforce-Query-Options") or ""
        for part in options.split(","):
            key, _, value = part.partition("=")
            if key.strip().lower() == "batchsize":
                try:
                    size = int(value.strip())
                except ValueError:
                    return DEFAULT_BATCH_SIZE
                return max(MIN_BATCH_SIZE, min(DEFAULT_BATCH_SIZE, size))
        return DEFAULT_BATCH_SIZE

    def _query(self, req: ApiRequest, ctx: CallContext, *, include_deleted: bool) -> ApiResponse:
        text = req.query.get("q")
        if not text or not text.strip():
            raise error(
                "MALFORMED_QUERY", "A query string is required: pass ?q=SELECT ... FROM ..."
            )
        total, records = self.run_query(text, ctx, include_deleted=include_deleted)
        return ApiResponse(
            200,
            self._page(
                records,
                total,
                0,
                self._batch_size(req),
                ctx.version,
                "queryAll" if include_deleted else "query",
                None,
            ),
        )

    def _page(
        self,
        records: list[dict[str, Any]],
        total: int,
        offset: int,
        batch: int,
        version: str,
        resource: str,
        cursor_id: str | None,
    ) -> dict[str, Any]:
        end = offset + batch
        page = records[offset:end]
        body: dict[str, Any] = {"totalSize": total, "done": end >= len(records)}
        if end < len(records):
            now = self.clock.now()
            if cursor_id is None:
                cursor_id = self.ids.new("01g")
                self._cursors[cursor_id] = _Cursor(records, total, batch, now)
                while len(self._cursors) > _MAX_CURSORS:
                    self._cursors.popitem(last=False)
            body["nextRecordsUrl"] = f"/services/data/v{version}/{resource}/{cursor_id}-{end}"
        body["records"] = page
        return body

    def _query_more(self, locator: str, ctx: CallContext, *, include_deleted: bool) -> ApiResponse:
        cursor_id, _, offset_text = locator.rpartition("-")
        now = self.clock.now()
        for key in [k for k, c in self._cursors.items() if now - c.last_used > CURSOR_IDLE]:
            del self._cursors[key]
        cursor = self._cursors.get(cursor_id)
        if cursor is None or not offset_text.isdigit() or int(offset_text) >= len(cursor.records):
            raise error(
                "INVALID_QUERY_LOCATOR",
                "invalid query locator: it is unknown, or expired after 15 minutes without use; "
                "run the query again",
            )
        cursor.last_used = now
        self._cursors.move_to_end(cursor_id)
        body = self._page(
            cursor.records,
            cursor.total_size,
            int(offset_text),
            cursor.batch_size,
            ctx.version,
            "queryAll" if include_deleted else "query",
            cursor_id,
        )
        return ApiResponse(200, body)

    # ----------------------------------------------------------------- limits

    def _limits(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "DailyApiRequests": {
                "Max": self.usage.daily_max,
                "Remaining": self.usage.remaining(now),
            },
            "DataStorageMB": {"Max": 5, "Remaining": 5},  # a Developer Edition's 5 MB
            "FileStorageMB": {"Max": 20, "Remaining": 20},  # and its 20 MB of files
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},  # not emulated: unused
        }


def etag(row: Mapping[str, Any]) -> str:
    """The Account row's ETag: a hash of its content, as Salesforce forms it (`"...--gzip"`)."""
    digest = sha256(json.dumps(row, sort_keys=True, default=str).encode()).digest()
    return '"' + base64.b64encode(digest[:24]).decode() + '--gzip"'


def parse_etags(text: str) -> list[str] | None:
    """The entity tags of an If-Match / If-None-Match header, or None when malformed."""
    text = text.strip()
    if text == "*":
        return ["*"]
    tags = []
    for part in text.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) < 2 or not (tag.startswith('"') and tag.endswith('"')):
            return None
        tags.append(tag)
    return tags or None


def precondition_failed(header: str, reason: str) -> SalesforceSandboxError:
    """The 412 of a failed conditional request."""
    return SalesforceSandboxError(
        412,
        "PRECONDITION_FAILED",
        f"The {header} precondition failed: {reason}. Read the record again and retry.",
    )
