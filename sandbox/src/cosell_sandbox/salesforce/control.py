"""The sandbox's control API (no authentication; loopback test tooling, not Salesforce's API).

Routes, all under `/control`:

| Method + path                                   | What it does                                   |
|-------------------------------------------------|------------------------------------------------|
| GET    /control                                 | this list                                      |
| GET    /control/info                            | URLs and credentials (as the start-up line)    |
| GET    /control/users                           | the org's users (id, username, name)           |
| POST   /control/records/{T}?as=&client=         | create a record as a user -> 201 {"id"}         |
| GET    /control/records/{T}/{id}                | a record, deleted or not                       |
| PATCH  /control/records/{T}/{id}?as=&client=    | update it as a user -> 204                     |
| DELETE /control/records/{T}/{id}?as=&client=    | delete it as a user -> 204                     |
| POST   /control/records/{T}/{id}/undelete?as=   | undelete it -> 204                             |
| GET    /control/changes?after=&limit=&entity=   | change events after a replay id (CDC-shaped)   |
| POST   /control/sessions/expire                 | every access token issued so far stops working |
| POST   /control/clock/advance {"seconds": n}    | move the sandbox clock forward                 |
| GET/PUT /control/cdc {entities, permission, view_all_records, down, duplicate} | the Pub/Sub API's CDC settings and faults |
| POST   /control/cdc/drop                         | end every open Subscribe stream (UNAVAILABLE)  |
| POST   /control/cdc/gap {entity, changeType, recordIds} | append a GAP_* or GAP_OVERFLOW event   |
| GET    /control/faults                          | the injected faults                            |
| PUT    /control/faults {name: value, ...}       | change some of them (validated, all or none)   |
| GET    /control/stats                           | calls served per method, route and status      |
| DELETE /control/stats                           | zero the counters                              |
| PUT    /control/org-profile {profile}           | customise the org (orgprofile; {} = clean), reset|
| POST   /control/reset                           | back to a fresh org (records, change log, usage)|

`as` names the user a write runs as: `seller` (the default: someone other than the integration
user, so LastModifiedById and the change events' commitUser differ from the connector's own
writes), `integration`, or a User id. `client` sets the Sforce-Call-Options client of the write
(its changeOrigin is then `com/salesforce/api/rest/<ver>;client=<client>`); without it the
write looks like a user's edit in the UI (empty changeOrigin). Validation errors come back in
Salesforce's array shape, as the REST API would answer them.

`/control/changes` answers `{"events": [{"replayId", "payload": {"ChangeEventHeader": {...},
...fields}}], "latestReplayId", "earliestReplayId"}`; `after` omitted means from the earliest
retained event, `entity` (comma-separated) keeps only those objects' events, `limit` caps the
page (default 1000). A replay id older than the 72-hour retention answers 400
REPLAY_ID_EXPIRED: re-sync, then continue from `latestReplayId`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cosell_sandbox.salesforce.changelog import ReplayIdExpiredError
from cosell_sandbox.salesforce.errors import SalesforceSandboxError
from cosell_sandbox.salesforce.ids import to_18
from cosell_sandbox.salesforce.orgprofile import OrgProfileError, parse_profile
from cosell_sandbox.salesforce.store import Actor, error

if TYPE_CHECKING:
    from cosell_sandbox.salesforce.app import SalesforceSandbox

_DEFAULT_CHANGES_LIMIT = 1000  # events per /control/changes page unless `limit` says otherwise
_MAX_CHANGES_LIMIT = 10000  # and never more than this
_MAX_RETAINED = 2**31  # "every retained event", before filtering by entity


def _bad_request(message: str) -> SalesforceSandboxError:
    return error("INVALID_INPUT", message)


def control_router(sandbox: SalesforceSandbox) -> APIRouter:
    """The `/control` routes of `sandbox`."""
    router = APIRouter(prefix="/control")

    def actor_for(request: Request) -> Actor:
        who = request.query_params.get("as", "seller")
        if who == "seller":
            user_id = sandbox.seller_user_id
        elif who == "integration":
            user_id = sandbox.integration_user_id
        else:
            try:
                user_id = to_18(who)
            except ValueError:
                raise _bad_request(
                    f"as={who!r}: use seller, integration or the id of a User"
                ) from None
            if sandbox.store.row("User", user_id) is None:
                raise _bad_request(f"as={who!r}: no such User; see GET /control/users")
        client = request.query_params.get("client")
        origin = ""
        if client:
            origin = f"com/salesforce/api/rest/{sandbox.actor(user_id).api_version};client={client}"
        return sandbox.actor(user_id, origin=origin)

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise error("JSON_PARSER_ERROR", "The body must be a JSON object") from None

    def write(request: Request, action: Any) -> Any:
        store = sandbox.store
        tx = store.begin(actor_for(request))
        tx.allow_duplicate_save = True  # a user who saves past a duplicate alert, as in the UI
        try:
            result = action(tx)
        except BaseException:
            store.rollback(tx)
            raise
        store.commit(tx)
        return result

    @router.get("")
    async def index() -> dict[str, Any]:
        doc = __doc__ or ""
        rows = [line for line in doc.splitlines() if line.startswith("| ") and "/control" in line]
        return {"routes": [" ".join(r.strip("| ").split("|")[0].split()) for r in rows]}

    @router.get("/info")
    async def info() -> dict[str, Any]:
        return sandbox.info()

    @router.get("/users")
    async def users() -> list[dict[str, Any]]:
        return [
            {"id": row["Id"], "username": row.get("Username"), "name": row.get("Name")}
            for row in sandbox.store.rows("User", include_deleted=False)
        ]

    @router.post("/records/{type_name}", status_code=201)
    async def create(type_name: str, request: Request) -> dict[str, Any]:
        obj = sandbox.store.sobject(type_name)
        body = await body_of(request)
        new_id = write(request, lambda tx: sandbox.store.create(tx, obj, body))
        return {"id": new_id, "success": True, "errors": []}

    @router.get("/records/{type_name}/{record_id}")
    async def read(type_name: str, record_id: str) -> dict[str, Any]:
        obj = sandbox.store.sobject(type_name)
        row = sandbox.store.row(obj.name, sandbox.store.check_id(obj, record_id))
        if row is None:
            raise error("NOT_FOUND", "The requested resource does not exist", status=404)
        return sandbox.api.render(obj, row, sandbox.actor(record_id).api_version)

    @router.patch("/records/{type_name}/{record_id}", status_code=204)
    async def update(type_name: str, record_id: str, request: Request) -> Response:
        obj = sandbox.store.sobject(type_name)
        body = await body_of(request)
        write(request, lambda tx: sandbox.store.update(tx, obj, record_id, body))
        return Response(status_code=204)

    @router.delete("/records/{type_name}/{record_id}", status_code=204)
    async def delete(type_name: str, record_id: str, request: Request) -> Response:
        obj = sandbox.store.sobject(type_name)
        write(request, lambda tx: sandbox.store.delete(tx, obj, record_id))
        return Response(status_code=204)

    @router.post("/records/{type_name}/{record_id}/undelete", status_code=204)
    async def undelete(type_name: str, record_id: str, request: Request) -> Response:
        obj = sandbox.store.sobject(type_name)
        write(request, lambda tx: sandbox.store.undelete(tx, obj, record_id))
        return Response(status_code=204)

    @router.get("/changes")
    async def changes(request: Request) -> JSONResponse:
        params = request.query_params
        try:
            after = int(params["after"]) if params.get("after") else None
            limit = int(params.get("limit", _DEFAULT_CHANGES_LIMIT))
        except ValueError:
            raise _bad_request(
                "after and limit must be integers (replay ids are numbers)"
            ) from None
        if not 1 <= limit <= _MAX_CHANGES_LIMIT:
            raise _bad_request(f"limit must be between 1 and {_MAX_CHANGES_LIMIT}")
        entities = {e.strip().lower() for e in params.get("entity", "").split(",") if e.strip()}
        log = sandbox.change_log
        try:
            events = log.read(
                after=after,
                limit=_MAX_RETAINED if entities else limit,
                now=sandbox.clock.now(),
            )
        except ReplayIdExpiredError as exc:
            raise error("REPLAY_ID_EXPIRED", str(exc)) from None
        if entities:
            events = [
                e
                for e in events
                if str(e.payload["ChangeEventHeader"]["entityName"]).lower() in entities
            ][:limit]
        return JSONResponse(
            {
                "events": [event.wire() for event in events],
                "latestReplayId": log.latest_replay_id,
                "earliestReplayId": log.earliest_replay_id,
            }
        )

    @router.post("/sessions/expire", status_code=204)
    async def expire_sessions() -> Response:
        sandbox.identity.expire_sessions()
        sandbox.save_identity()
        return Response(status_code=204)

    @router.post("/clock/advance")
    async def advance(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise _bad_request('send {"seconds": <a number of seconds, 0 or more>}')
        clock_advance = getattr(sandbox.clock, "advance", None)
        if clock_advance is None:
            raise _bad_request("this sandbox's clock cannot be advanced")
        clock_advance(float(seconds))
        return {"now": sandbox.clock.now().isoformat()}

    @router.get("/faults")
    async def get_faults() -> dict[str, float]:
        return _faults(sandbox)

    @router.put("/faults")
    async def put_faults(request: Request) -> dict[str, float]:
        body = await body_of(request)
        if not isinstance(body, dict):
            raise _bad_request("send a JSON object of fault names and values")
        try:
            sandbox.faults.update(body)
        except (TypeError, ValueError) as exc:
            raise _bad_request(str(exc)) from None
        return _faults(sandbox)

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        calls = [
            {"method": method, "route": route, "status": status, "count": count}
            for (method, route, status), count in sorted(sandbox.stats.items())
        ]
        return {
            "calls": calls,
            "total": sum(sandbox.stats.values()),
            "records": sandbox.store.count(),
            "api_usage": sandbox.usage.used(sandbox.clock.now()),
        }

    @router.delete("/stats", status_code=204)
    async def reset_stats() -> Response:
        sandbox.stats.clear()
        return Response(status_code=204)

    @router.put("/org-profile", status_code=204)
    async def put_org_profile(request: Request) -> Response:
        body = await body_of(request)
        try:
            profile = parse_profile(body, source="the org profile") if body else None
            sandbox.set_profile(profile)
        except OrgProfileError as exc:
            raise _bad_request(str(exc)) from None
        return Response(status_code=204)

    @router.get("/cdc")
    async def get_cdc() -> dict[str, Any]:
        return sandbox.pubsub.settings.wire()

    @router.put("/cdc")
    async def put_cdc(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        settings = sandbox.pubsub.settings
        if not isinstance(body, dict) or set(body) - {
            "entities",
            "permission",
            "view_all_records",
            "down",
            "duplicate",
        }:
            raise _bad_request(
                "send a JSON object with any of entities (object names), permission, "
                'view_all_records ({"Opportunity": false}), down, duplicate'
            )
        view_all = body.get("view_all_records", {})
        if not isinstance(view_all, dict) or not all(
            isinstance(v, bool) for v in view_all.values()
        ):
            raise _bad_request(
                'view_all_records must map object names to true or false, e.g. {"Lead": false}'
            )
        unknown_view_all = [e for e in view_all if sandbox.schema.sobject(e) is None]
        if unknown_view_all:
            raise _bad_request(f"no such object: {', '.join(unknown_view_all)}")
        entities = body.get("entities", sorted(settings.entities))
        if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
            raise _bad_request('entities must be a list of object names, e.g. ["Opportunity"]')
        unknown = [e for e in entities if sandbox.schema.sobject(e) is None]
        if unknown:
            raise _bad_request(f"no such object: {', '.join(unknown)}")
        for flag in ("permission", "down", "duplicate"):
            if flag in body and not isinstance(body[flag], bool):
                raise _bad_request(f"{flag} must be true or false")
        settings.entities = set(entities)
        settings.permission = body.get("permission", settings.permission)
        for name, granted in view_all.items():
            if granted:
                settings.no_view_all.discard(name.lower())
            else:
                settings.no_view_all.add(name.lower())
        sandbox.sync_permissions()  # ObjectPermissions shows what delivery enforces
        settings.down = body.get("down", settings.down)
        settings.duplicate = body.get("duplicate", settings.duplicate)
        if settings.down:
            sandbox.pubsub.drop_streams()
        return settings.wire()

    @router.post("/cdc/drop")
    async def drop_streams() -> dict[str, int]:
        return {"dropped": sandbox.pubsub.drop_streams()}

    @router.post("/cdc/gap", status_code=201)
    async def gap(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        if not isinstance(body, dict):
            raise _bad_request("send a JSON object: entity, changeType, recordIds")
        entity = body.get("entity")
        change_type = body.get("changeType", "GAP_UPDATE")
        record_ids = body.get("recordIds", [])
        if not isinstance(entity, str) or sandbox.schema.sobject(entity) is None:
            raise _bad_request("entity must name an object, e.g. Opportunity")
        if not isinstance(record_ids, list) or not all(isinstance(r, str) for r in record_ids):
            raise _bad_request("recordIds must be a list of record ids")
        try:
            event = sandbox.pubsub.inject_gap(entity, str(change_type), record_ids)
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
        return event.wire()

    @router.post("/reset", status_code=204)
    async def reset() -> Response:
        sandbox.reset()
        return Response(status_code=204)

    return router


def _faults(sandbox: SalesforceSandbox) -> dict[str, float]:
    faults = sandbox.faults
    return {
        "latency_seconds": faults.latency_seconds,
        "error_503_fraction": faults.error_503_fraction,
        "request_limit_fraction": faults.request_limit_fraction,
        "lock_row_fraction": faults.lock_row_fraction,
        "expire_sessions_fraction": faults.expire_sessions_fraction,
    }
