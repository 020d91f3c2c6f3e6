"""sObject Collections and Composite (spec §2.3, §2.4).

**sObject Collections** (`composite/sobjects`): create (POST), update (PATCH), upsert by external
id (PATCH `composite/sobjects/{T}/{ExtField}`, v46.0+), delete (DELETE `?ids=&allOrNone=`) and
retrieve (GET `composite/sobjects/{T}?ids=&fields=`). At most 200 records (2000 ids for a
retrieve). A well-formed request answers 200 with one result per record in request order; a
failed item carries `{"statusCode", "message", "fields"}` errors (not `errorCode`). With
`allOrNone`, one failure rolls back every write of the call (to a savepoint, so a collection
inside a Composite request only undoes its own writes) and every other item reports
ALL_OR_NONE_OPERATION_ROLLED_BACK.

**Composite** (`POST composite`): up to 25 subrequests (at most 5 of them queries or
collections), executed in order in one transaction. A subrequest may refer to an earlier
result with `@{referenceId.path}` (`@{acct.id}`, `@{q.records[0].Id}`) in its url or body.
The answer is always 200 with `compositeResponse[]` (`body`, `httpHeaders`, `httpStatusCode`,
`referenceId`). With `allOrNone`, the first failure rolls back everything: earlier
subrequests report 400 ALL_OR_NONE_OPERATION_ROLLED_BACK, later ones 400 PROCESSING_HALTED.
Without it, a subrequest that refers to a failed one reports PROCESSING_HALTED and the rest
run on. All writes of one Composite or Collections call share one CDC transactionKey.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cosell_sandbox.salesforce.errors import SalesforceSandboxError
from cosell_sandbox.salesforce.ids import to_18
from cosell_sandbox.salesforce.rest import (
    _UPSERT_CREATED_VERSION,
    ApiRequest,
    ApiResponse,
    CallContext,
    RestApi,
    parse_version,
)
from cosell_sandbox.salesforce.schema import SObjectSchema
from cosell_sandbox.salesforce.store import MultipleMatchesError, error, not_found

MAX_COLLECTION = 200  # records per sObject Collections call
MAX_RETRIEVE = 2000  # ids per sObject Collections retrieve
MAX_SUBREQUESTS = 25  # subrequests per Composite call
MAX_QUERY_OR_COLLECTION_SUBREQUESTS = 5  # of which queries or collections
_ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
_ROLLED_BACK_MESSAGE = (
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header"
)
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]{1,80}$")


def install(api: RestApi) -> None:
    """Route `composite` and `composite/sobjects...` of `api` to this module."""
    api.composite_handler = lambda req, ctx: _handle(api, req, ctx)


def _handle(api: RestApi, req: ApiRequest, ctx: CallContext) -> ApiResponse:
    seg = req.segments
    if seg == ("composite",):
        RestApi._allow(req.method, "POST")
        if ctx.in_composite:
            raise error("INVALID_INPUT", "A Composite request cannot contain another Composite")
        return _composite(api, req, ctx)
    if len(seg) >= 2 and seg[1] == "sobjects":
        if len(seg) == 2:
            RestApi._allow(req.method, "POST", "PATCH", "DELETE")
            if req.method == "DELETE":
                return _collection_delete(api, req, ctx)
            return _collection_write(api, req, ctx, upsert_field=None, type_name=None)
        obj = api.store.sobject(seg[2])
        if len(seg) == 3:
            RestApi._allow(req.method, "GET", "POST")
            if req.method == "GET":
                return _collection_retrieve(api, req, ctx, obj)
            return _collection_retrieve(api, req, ctx, obj, from_body=True)
        if len(seg) == 4:
            RestApi._allow(req.method, "PATCH")
            if int(float(ctx.version)) < _UPSERT_CREATED_VERSION:
                raise not_found()
            spec = api.store.external_id_field(obj, seg[3])
            return _collection_write(api, req, ctx, upsert_field=spec.name, type_name=obj.name)
    raise not_found()


# --------------------------------------------------------------------- collections


def _item_error(exc: SalesforceSandboxError) -> dict[str, Any]:
    return {
        **exc.extra,
        "statusCode": exc.error_code,
        "message": exc.message,
        "fields": exc.fields or [],
    }


def _all_or_none(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    return False


def _collection_write(
    api: RestApi,
    req: ApiRequest,
    ctx: CallContext,
    *,
    upsert_field: str | None,
    type_name: str | None,
) -> ApiResponse:
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise error(
            "JSON_PARSER_ERROR",
            'The body must be {"allOrNone": bool, "records": [{"attributes": {"type": "..."}, '
            "...}]}",
        )
    records: list[Any] = body["records"]
    if len(records) > MAX_COLLECTION:
        raise error(
            "EXCEEDED_ID_LIMIT",
            f"Record limit exceeded: {len(records)} records; send at most {MAX_COLLECTION} per "
            "request",
        )
    all_or_none = _all_or_none(body.get("allOrNone", False))
    store = api.store
    mark = store.savepoint(ctx.tx)
    results: list[dict[str, Any]] = []
    failed = False
    for record in records:
        try:
            result = _write_one(api, ctx, record, req.method, upsert_field, type_name)
        except SalesforceSandboxError as exc:
            failed = True
            result = {"success": False, "errors": [_item_error(exc)]}
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                result = {"id": record["id"], **result}
            if upsert_field is not None:
                result["created"] = False
        results.append(result)
    if failed and all_or_none:
        store.rollback_to(ctx.tx, mark)
        rolled: list[dict[str, Any]] = []
        for result in results:
            if result["success"]:
                item = {
                    **(
                        {"id": result["id"]}
                        if req.method == "PATCH" and upsert_field is None
                        else {}
                    ),
                    "success": False,
                    "errors": [
                        {"statusCode": _ROLLED_BACK, "message": _ROLLED_BACK_MESSAGE, "fields": []}
                    ],
                }
                if upsert_field is not None:
                    item["created"] = False
                rolled.append(item)
            else:
                rolled.append(result)
        results = rolled
    return ApiResponse(200, results)


def _record_type(api: RestApi, record: dict[str, Any], type_name: str | None) -> SObjectSchema:
    attributes = record.get("attributes")
    declared = attributes.get("type") if isinstance(attributes, dict) else None
    if declared is None and type_name is not None:
        declared = type_name
    if not isinstance(declared, str) or not declared:
        raise error(
            "INVALID_TYPE",
            'Each record needs its sObject type in "attributes": {"type": "Opportunity"}',
        )
    obj = api.schema.sobject(declared)
    if obj is None:
        raise error("INVALID_TYPE", f"sObject type '{declared}' is not supported.")
    if type_name is not None and obj.name != type_name:
        raise error(
            "INVALID_TYPE",
            f"Every record of this upsert must be a {type_name}, not {obj.name}",
        )
    return obj


def _write_one(
    api: RestApi,
    ctx: CallContext,
    record: Any,
    method: str,
    upsert_field: str | None,
    type_name: str | None,
) -> dict[str, Any]:
    store = api.store
    if not isinstance(record, dict):
        raise error("JSON_PARSER_ERROR", "Each record must be a JSON object")
    obj = _record_type(api, record, type_name)
    fields = {k: v for k, v in record.items() if k != "attributes"}
    if upsert_field is not None:
        key = next((k for k in fields if k.lower() == upsert_field.lower()), None)
        if key is None or fields[key] in (None, ""):
            raise error(
                "MISSING_ARGUMENT",
                f"{upsert_field} not specified: each record of an upsert carries its external id",
                fields=[upsert_field],
            )
        value = str(fields.pop(key))
        try:
            result = store.upsert(ctx.tx, obj, upsert_field, value, fields)
        except MultipleMatchesError as exc:
            raise error("DUPLICATE_EXTERNAL_ID", exc.message, fields=[upsert_field]) from None
        except SalesforceSandboxError as exc:
            if exc.status == 404:
                raise error("NOT_FOUND", exc.message) from None
            raise
        return {"id": result.id, "success": True, "errors": [], "created": result.created}
    id_key = next((k for k in fields if k.lower() == "id"), None)
    if method == "POST":
        if id_key is not None:
            raise error("INVALID_FIELD", "cannot specify Id in an insert call", fields=["Id"])
        new_id = store.create(ctx.tx, obj, fields)
        return {"id": new_id, "success": True, "errors": _alerts(ctx, new_id)}
    if id_key is None or not isinstance(fields[id_key], str):
        raise error("MISSING_ARGUMENT", "Id not specified in an update call", fields=["Id"])
    rid = store.update(ctx.tx, obj, fields.pop(id_key), fields)
    return {"id": rid, "success": True, "errors": _alerts(ctx, rid)}


def _alerts(ctx: CallContext, record_id: str) -> list[dict[str, Any]]:
    """Duplicate alerts of a successful save, as collections items report errors."""
    return [
        {
            **{k: v for k, v in alert.items() if k != "errorCode"},
            "statusCode": alert["errorCode"],
            "fields": [],
        }
        for alert in ctx.tx.alerts.get(record_id, [])
    ]


def _collection_delete(api: RestApi, req: ApiRequest, ctx: CallContext) -> ApiResponse:
    ids = [i for i in (req.query.get("ids") or "").split(",") if i.strip()]
    if not ids:
        raise error("MISSING_ARGUMENT", "ids is required: ?ids=<id>,<id>,...&allOrNone=false")
    if len(ids) > MAX_COLLECTION:
        raise error(
            "EXCEEDED_ID_LIMIT", f"{len(ids)} ids: delete at most {MAX_COLLECTION} per request"
        )
    all_or_none = _all_or_none(req.query.get("allOrNone", "false"))
    store = api.store
    mark = store.savepoint(ctx.tx)
    results: list[dict[str, Any]] = []
    failed = False
    for raw in ids:
        raw = raw.strip()
        try:
            try:
                rid = to_18(raw)
            except ValueError:
                raise error("MALFORMED_ID", f"malformed id {raw}") from None
            table = store.object_of(rid)
            obj = api.schema.sobject(table) if table else None
            if obj is None:
                raise error("INVALID_ID_FIELD", f"invalid record id: {raw}")
            store.delete(ctx.tx, obj, rid)
            results.append({"id": rid, "success": True, "errors": []})
        except SalesforceSandboxError as exc:
            failed = True
            results.append({"id": raw, "success": False, "errors": [_item_error(exc)]})
    if failed and all_or_none:
        store.rollback_to(ctx.tx, mark)
        results = [
            r
            if not r["success"]
            else {
                "id": r["id"],
                "success": False,
                "errors": [
                    {"statusCode": _ROLLED_BACK, "message": _ROLLED_BACK_MESSAGE, "fields": []}
                ],
            }
            for r in results
        ]
    return ApiResponse(200, results)


def _collection_retrieve(
    api: RestApi, req: ApiRequest, ctx: CallContext, obj: SObjectSchema, *, from_body: bool = False
) -> ApiResponse:
    if from_body:
        body = req.json()
        if not isinstance(body, dict):
            raise error("JSON_PARSER_ERROR", 'The body must be {"ids": [...], "fields": [...]}')
        ids = [str(i) for i in body.get("ids") or []]
        names = ",".join(str(f) for f in body.get("fields") or [])
    else:
        ids = [i.strip() for i in (req.query.get("ids") or "").split(",") if i.strip()]
        names = req.query.get("fields") or ""
    if not ids or not names.strip():
        raise error(
            "MISSING_ARGUMENT",
            "ids and fields are required: ?ids=<id>,<id>&fields=<Field>,<Field>",
        )
    if len(ids) > MAX_RETRIEVE:
        raise error("EXCEEDED_ID_LIMIT", f"{len(ids)} ids: retrieve at most {MAX_RETRIEVE}")
    field_names = api._field_list(names, obj)
    records: list[dict[str, Any] | None] = []
    for raw in ids:
        try:
            row = api.store.get(obj, raw)
        except SalesforceSandboxError as exc:
            if exc.error_code == "MALFORMED_ID":
                raise
            records.append(None)
            continue
        records.append(api.render(obj, row, ctx.version, field_names))
    return ApiResponse(200, records)


# --------------------------------------------------------------------- composite


def _composite(api: RestApi, req: ApiRequest, ctx: CallContext) -> ApiResponse:
    body = req.json()
    subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subrequests, list) or not subrequests:
        raise error(
            "JSON_PARSER_ERROR",
            'The body must be {"allOrNone": bool, "compositeRequest": [{"method", "url", '
            '"referenceId", "body"?}, ...]}',
        )
    if len(subrequests) > MAX_SUBREQUESTS:
        raise error(
            "INVALID_INPUT",
            f"{len(subrequests)} subrequests: a Composite request holds at most {MAX_SUBREQUESTS}",
        )
    parsed = [_parse_subrequest(sub, index) for index, sub in enumerate(subrequests)]
    seen: set[str] = set()
    heavy = 0
    for _, _, ref, _, _ in parsed:
        if ref in seen:
            raise error("INVALID_INPUT", f"Duplicate referenceId provided in the request: {ref}")
        seen.add(ref)
    for _, url, _, _, _ in parsed:
        path = urlsplit(url).path
        if "/query" in path or "/composite/sobjects" in path:
            heavy += 1
    if heavy > MAX_QUERY_OR_COLLECTION_SUBREQUESTS:
        raise error(
            "INVALID_INPUT",
            f"{heavy} query or collection subrequests: at most "
            f"{MAX_QUERY_OR_COLLECTION_SUBREQUESTS} are allowed in one Composite request",
        )
    all_or_none = _all_or_none(body.get("allOrNone", False))
    store = api.store
    mark = store.savepoint(ctx.tx)
    results: dict[str, Any] = {}  # referenceId -> body of a successful subrequest
    answers: list[dict[str, Any]] = []
    failed_at: int | None = None
    sub_ctx = replace(ctx, in_composite=True)
    for index, (method, url, ref, sub_body, sub_headers) in enumerate(parsed):
        try:
            resolved_url = _substitute_text(url, results)
            resolved_body = _substitute(sub_body, results)
        except _UnresolvedReferenceError as exc:
            answers.append(_halted(ref, str(exc)))
            if all_or_none:
                failed_at = index
                break
            continue
        response = _run_subrequest(
            api, req, sub_ctx, method, resolved_url, resolved_body, sub_headers
        )
        answer = {
            "body": response.body if response.raw is None else None,
            "httpHeaders": {
                k: v
                for k, v in response.headers.items()
                if k in ("Location", "ETag", "Last-Modified")
            },
            "httpStatusCode": response.status,
            "referenceId": ref,
        }
        answers.append(answer)
        if response.status < 300:
            results[ref] = response.body
        elif all_or_none:
            failed_at = index
            break
    if failed_at is not None:
        store.rollback_to(ctx.tx, mark)
        final = []
        for index, answer in enumerate(answers):
            if index < failed_at and answer["httpStatusCode"] < 300:
                final.append(
                    {
                        "body": [
                            {
                                "errorCode": _ROLLED_BACK,
                                "message": "The transaction was rolled back since another "
                                "operation in the same transaction failed.",
                            }
                        ],
                        "httpHeaders": {},
                        "httpStatusCode": 400,
                        "referenceId": answer["referenceId"],
                    }
                )
            else:
                final.append(answer)
        for _, _, ref, _, _ in parsed[failed_at + 1 :]:
            final.append(
                _halted(
                    ref,
                    "The transaction was rolled back since another operation in the same "
                    "transaction failed.",
                )
            )
        answers = final
    return ApiResponse(200, {"compositeResponse": answers})


def _halted(ref: str, message: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": ref,
    }


def _parse_subrequest(sub: Any, index: int) -> tuple[str, str, str, Any, dict[str, str]]:
    if not isinstance(sub, dict):
        raise error("JSON_PARSER_ERROR", f"compositeRequest[{index}] must be a JSON object")
    method = sub.get("method")
    url = sub.get("url")
    ref = sub.get("referenceId")
    if not isinstance(method, str) or method.upper() not in (
        "GET",
        "POST",
        "PATCH",
        "DELETE",
        "PUT",
    ):
        raise error(
            "INVALID_INPUT",
            f"compositeRequest[{index}].method must be GET, POST, PATCH, PUT or DELETE",
        )
    if not isinstance(url, str) or not url.startswith("/services/data/"):
        raise error(
            "INVALID_INPUT",
            f"compositeRequest[{index}].url must start with /services/data/vNN.N/",
        )
    if not isinstance(ref, str) or not _REFERENCE_ID.match(ref):
        raise error(
            "INVALID_INPUT",
            f"compositeRequest[{index}].referenceId must be letters, digits and underscores",
        )
    headers = sub.get("httpHeaders") or {}
    if not isinstance(headers, dict):
        raise error("INVALID_INPUT", f"compositeRequest[{index}].httpHeaders must be an object")
    return method.upper(), url, ref, sub.get("body"), {str(k): str(v) for k, v in headers.items()}


class _UnresolvedReferenceError(ValueError):
    pass


def _lookup(reference: str, path: str, results: dict[str, Any]) -> Any:
    if reference not in results:
        raise _UnresolvedReferenceError(
            f"Invalid reference specified. No value for {reference}{path} found in {reference}. "
            "Provided referenceId ('" + reference + "') must refer to an earlier subrequest "
            "that succeeded."
        )
    value = results[reference]
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, position = step
        try:
            if name:
                value = value[name] if isinstance(value, dict) else {}[name]
            else:
                value = value[int(position)]
        except (KeyError, IndexError, TypeError):
            raise _UnresolvedReferenceError(
                f"Invalid reference specified. No value for {reference}{path} found in {reference}."
            ) from None
    return value


def _substitute_text(text: str, results: dict[str, Any]) -> str:
    return _REFERENCE.sub(lambda m: str(_lookup(m[1], m[2], results)), text)


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(whole[1], whole[2], results)
        return _substitute_text(value, results)
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    return value


def _run_subrequest(
    api: RestApi,
    parent: ApiRequest,
    ctx: CallContext,
    method: str,
    url: str,
    body: Any,
    headers: dict[str, str],
) -> ApiResponse:
    parts = urlsplit(url)
    raw_segments = [s for s in parts.path.split("/") if s][2:]  # drop services, data
    if not raw_segments or parse_version(raw_segments[0]) is None:
        return ApiResponse.from_error(
            error("NOT_FOUND", f"Unknown API version in {parts.path}", status=404), ctx.version, ""
        )
    version = parse_version(raw_segments[0]) or ctx.version
    raw = tuple(raw_segments[1:])
    merged = {
        k: v
        for k, v in parent.headers.items()
        if not k.startswith("if-") and k not in ("content-length", "content-type")
    }
    merged.update({k.lower(): v for k, v in headers.items()})
    sub = ApiRequest(
        method=method,
        segments=tuple(unquote(s) for s in raw),
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=merged,
        body=b"" if body is None else json.dumps(body).encode(),
        raw_segments=raw,
    )
    return api.dispatch(sub, replace(ctx, version=version))
