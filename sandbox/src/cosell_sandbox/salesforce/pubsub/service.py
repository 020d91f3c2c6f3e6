"""The Pub/Sub API (`eventbus.v1.PubSub`) of the Salesforce sandbox, over gRPC.

It serves the sandbox's change log (`changelog.py`) as Change Data Capture events, as
Salesforce's Pub/Sub API does (spec §4.1, §4.2):

- **Topics.** `/data/ChangeEvents` (every object selected for CDC), `/data/<Object>ChangeEvent`
  (one object; `Foo__c` gives `/data/Foo__ChangeEvent`) and custom channels `/data/<Name>__chn`
  (members: the selected objects). An object not selected for CDC has no topic: `GetTopic` and
  `Subscribe` answer `NOT_FOUND`.
- **Permissions.** As Salesforce documents them ("Required Permissions for Change Event
  Subscribers", developer.salesforce.com/docs/platform/change-data-capture/guide/
  cdc-security-perms.html): receiving an object's change events needs "View All Records" on
  that object (View All Data covers every object). On `/data/ChangeEvents` and custom channels
  the permissions are enforced on *delivery*: anyone may subscribe, and events of an object the
  user lacks View All Records for are silently not delivered (the stream looks live). On a
  single-object channel (`/data/OpportunityChangeEvent`) the subscription itself is refused
  with `PERMISSION_DENIED`. The API user's View All Records per object is
  `PubSubSettings.view_all_records` (control API `/control/cdc`, default: granted on every
  object); `permission: false` takes it away on every object. The same setting shows in SOQL
  (`ObjectPermissions` of `Cosell_Change_Events`: `SalesforceSandbox.sync_permissions`), so a
  permission check reads what delivery enforces.
- **Auth.** Every call carries the metadata `accesstoken` (a session of the REST API: the same
  tokens, the same expiry), `instanceurl` and `tenantid` (the org id); anything else is
  `UNAUTHENTICATED`.
- **Schemas.** One Avro record per object, `<Object>ChangeEvent`: the `ChangeEventHeader` first,
  then every field of the object, each a union with null. Its id is a fingerprint of its JSON,
  so a schema change (a field added) gives a new id. `changedFields`, `nulledFields` and
  `diffFields` are bitmaps over that record's field positions, as Salesforce packs them
  (`"0x..."`: bit i set means field i; the header is field 0).
- **Subscribe.** Pull-based: the first `FetchRequest` names the topic and where to start
  (`LATEST`, `EARLIEST`, `CUSTOM` after a replay id); each request adds `num_requested` credits;
  the server sends events while it has credit, then waits. Replay ids are 8-byte big-endian
  numbers of the change log (opaque to clients). A `CUSTOM` id older than the retention (72 h on
  the sandbox clock) is refused with `INVALID_ARGUMENT` and the error code
  `sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed`. With nothing to
  send, an empty response with the latest replay id is sent every `keepalive_seconds` (270 s).
- **Faults** (control API `/control/cdc`): the stream service down (`UNAVAILABLE` on every call),
  open streams dropped, every event sent twice, gap and overflow events appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import fastavro
import grpc

from cosell_sandbox.salesforce.changelog import ChangeEvent, ReplayIdExpiredError
from cosell_sandbox.salesforce.pubsub import pubsub_api_pb2 as pb

if TYPE_CHECKING:
    from cosell_sandbox.salesforce.app import SalesforceSandbox
    from cosell_sandbox.salesforce.schema import SObjectSchema

SERVICE = "eventbus.v1.PubSub"
ALL_CHANGES = "/data/ChangeEvents"
# The objects an org created by the sandbox has selected for CDC: the ones cosell needs.
DEFAULT_ENTITIES = ("Opportunity", "Lead", "OpportunityContactRole", "Microsoft_Solution__c")
KEEPALIVE_SECONDS = 270.0  # Salesforce sends an empty batch within 270 s (spec §4.2)
MAX_BATCH = 100  # events per FetchResponse; Salesforce batches similarly
REPLAY_INVALID = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.service.topic.not.found"
TOPIC_PERMISSION = "sfdc.platform.eventbus.grpc.subscription.topic.permission"
AUTH_FAILED = "sfdc.platform.eventbus.grpc.service.auth.error"
CHANGE_TYPES = (
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
)
_BITMAPS = ("changedFields", "nulledFields", "diffFields")


@dataclass
class PubSubSettings:
    """What the control API changes about the Pub/Sub API (`/control/cdc`).

    Attributes:
        entities: the objects selected for Change Data Capture.
        permission: False takes View All Records away from the API user on every object
            (no change event is delivered, single-object channels refuse the subscription).
        no_view_all: the objects (lower-cased) the API user lacks "View All Records" on.
        down: every call answers `UNAVAILABLE` (an outage of the stream service).
        duplicate: every event is sent twice (at-least-once delivery).
    """

    entities: set[str] = field(default_factory=lambda: set(DEFAULT_ENTITIES))
    permission: bool = True
    no_view_all: set[str] = field(default_factory=set)
    down: bool = False
    duplicate: bool = False

    def can_view_all(self, entity: str) -> bool:
        """Whether the API user has "View All Records" on `entity` (so receives its events)."""
        return self.permission and entity.lower() not in self.no_view_all

    def wire(self) -> dict[str, Any]:
        """The settings as the control API shows them."""
        names = {e: e for e in self.no_view_all} | {e.lower(): e for e in self.entities}
        return {
            "entities": sorted(self.entities),
            "permission": self.permission,
            "view_all_records": {
                name: self.can_view_all(name) for _, name in sorted(names.items())
            },
            "down": self.down,
            "duplicate": self.duplicate,
        }


def replay_bytes(replay_id: int) -> bytes:
    """A change log replay id as the API sends it: 8 bytes, big-endian."""
    return replay_id.to_bytes(8, "big")


def replay_number(raw: bytes) -> int:
    """The change log replay id of the API's bytes (ValueError when they are not one)."""
    if len(raw) != 8:
        raise ValueError("not a replay id of this org")
    return int.from_bytes(raw, "big")


def topic_entity(topic: str) -> str | None:
    """The object of a per-object topic (`/data/OpportunityChangeEvent` -> `Opportunity`)."""
    name = topic.removeprefix("/data/")
    if name == topic or not name.endswith("ChangeEvent") or name == "ChangeEvents":
        return None
    stem = name.removesuffix("ChangeEvent")
    return stem + "c" if stem.endswith("__") else stem


def _avro_type(field_type: str) -> str:
    return {
        "boolean": "boolean",
        "double": "double",
        "currency": "double",
        "percent": "double",
        "int": "int",
        "datetime": "long",
        "date": "int",
    }.get(field_type, "string")


def event_schema(obj: SObjectSchema) -> dict[str, Any]:
    """The Avro schema of `obj`'s change events (see the module docstring)."""
    header = {
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": "com.sforce.eventbus",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": {"type": "array", "items": "string"}},
            {
                "name": "changeType",
                "type": {"type": "enum", "name": "ChangeType", "symbols": list(CHANGE_TYPES)},
            },
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
            {"name": "diffFields", "type": {"type": "array", "items": "string"}},
            {"name": "changedFields", "type": {"type": "array", "items": "string"}},
        ],
    }
    fields: list[dict[str, Any]] = [{"name": "ChangeEventHeader", "type": header}]
    for spec in sorted(obj.iter_fields(), key=lambda f: f.name.lower()):
        if spec.name == "Id" or spec.type in ("address", "location", "base64"):
            continue
        fields.append({"name": spec.name, "type": ["null", _avro_type(spec.type)], "default": None})
    name = obj.name.removesuffix("__c") + ("__ChangeEvent" if obj.custom else "ChangeEvent")
    return {"type": "record", "name": name, "namespace": "com.sforce.eventbus", "fields": fields}


def schema_id_of(schema_json: str) -> str:
    """A schema's id: a fingerprint of its JSON (a changed schema gets a new id)."""
    return hashlib.sha256(schema_json.encode()).hexdigest()[:22]


def bitmap(names: Iterable[str], positions: dict[str, int]) -> list[str]:
    """Field names as Salesforce packs them: one hex bitmap over the schema's field positions."""
    bits = 0
    for name in names:
        position = positions.get(name.lower())
        if position is not None:
            bits |= 1 << position
    return [hex(bits)] if bits else []


def _avro_value(value: Any, avro_type: str) -> Any:
    if value is None:
        return None
    try:
        if avro_type == "boolean":
            return bool(value)
        if avro_type == "double":
            return float(value)
        if avro_type == "int" and isinstance(value, str) and len(value) == 10:
            return (date.fromisoformat(value) - date(1970, 1, 1)).days
        if avro_type == "int":
            return int(value)
        if avro_type == "long":
            stamp = datetime.fromisoformat(
                str(value).replace("Z", "+00:00").replace("+0000", "+00:00")
            )
            return int(stamp.astimezone(UTC).timestamp() * 1000)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


@dataclass
class _Schema:
    schema_id: str
    json: str
    parsed: Any
    positions: dict[str, int]
    types: dict[str, tuple[str, str]]  # lower-cased field name -> (name, Avro type)


class PubSubService:
    """The `eventbus.v1.PubSub` service of one sandbox org (see the module docstring)."""

    def __init__(
        self, sandbox: SalesforceSandbox, *, keepalive_seconds: float = KEEPALIVE_SECONDS
    ) -> None:
        self._sandbox = sandbox
        self.settings = PubSubSettings()
        self.keepalive_seconds = keepalive_seconds
        self._schemas: dict[str, _Schema] = {}  # schema id -> schema
        self._streams: set[asyncio.Event] = set()  # one wake-up per open Subscribe
        self._drops: set[asyncio.Event] = set()
        self.subscribes = 0  # Subscribe calls accepted (for tests and stats)
        self.sent = 0  # events sent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None

    # ------------------------------------------------------------------ control

    def wake(self) -> None:
        """New events may be there: wake every open stream (any thread)."""
        loop = self._loop
        for event in list(self._streams):
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(event.set)
            else:
                event.set()

    def drop_streams(self) -> int:
        """End every open stream with `UNAVAILABLE` (a dropped connection); returns how many."""
        loop = self._loop
        for event in list(self._drops):
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(event.set)
            else:
                event.set()
        return len(self._drops)

    def inject_gap(self, entity: str, change_type: str, record_ids: list[str]) -> ChangeEvent:
        """Append a gap (or, with `GAP_OVERFLOW`, an overflow) event and wake the streams."""
        if change_type not in CHANGE_TYPES or not change_type.startswith("GAP_"):
            raise ValueError(f"changeType must be one of {', '.join(CHANGE_TYPES[4:])}")
        now = self._sandbox.clock.now()
        event = self._sandbox.change_log.append_gap(
            entity,
            change_type,
            [] if change_type == "GAP_OVERFLOW" else record_ids,
            committed_at=now,
            commit_millis=int(now.timestamp() * 1000),
        )
        self.wake()
        return event

    # ------------------------------------------------------------------ serving

    async def start(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve on `host:port` (0: any free port) on the running loop; returns the port."""
        self._loop = asyncio.get_running_loop()
        # No SO_REUSEPORT: a second sandbox on a taken port must fail, not share it silently.
        server = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
        server.add_generic_rpc_handlers((self.handler(),))
        bound = server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen on {host}:{port} for the Pub/Sub API; pick another port")
        await server.start()
        self._server = server
        return bound

    async def stop(self) -> None:
        """Stop serving (open streams end)."""
        if self._server is not None:
            server, self._server = self._server, None
            self.drop_streams()
            await server.stop(grace=0.5)

    def handler(self) -> grpc.GenericRpcHandler:
        """The gRPC handler of the service's methods."""
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Subscribe": grpc.stream_stream_rpc_method_handler(
                    self._subscribe,
                    request_deserializer=pb.FetchRequest.FromString,
                    response_serializer=pb.FetchResponse.SerializeToString,
                ),
                "GetTopic": grpc.unary_unary_rpc_method_handler(
                    self._get_topic,
                    request_deserializer=pb.TopicRequest.FromString,
                    response_serializer=pb.TopicInfo.SerializeToString,
                ),
                "GetSchema": grpc.unary_unary_rpc_method_handler(
                    self._get_schema,
                    request_deserializer=pb.SchemaRequest.FromString,
                    response_serializer=pb.SchemaInfo.SerializeToString,
                ),
                "Publish": grpc.unary_unary_rpc_method_handler(
                    self._publish,
                    request_deserializer=pb.PublishRequest.FromString,
                    response_serializer=pb.PublishResponse.SerializeToString,
                ),
            },
        )

    # ------------------------------------------------------------------ checks

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        code: grpc.StatusCode,
        error_code: str,
        message: str,
    ) -> None:
        context.set_trailing_metadata((("error-code", error_code),))
        await context.abort(code, message)

    async def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.settings.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the event bus is unavailable; retry")
        metadata = dict(context.invocation_metadata() or ())
        token = str(metadata.get("accesstoken", ""))
        from cosell_sandbox.salesforce.errors import SalesforceSandboxError

        try:
            self._sandbox.identity.session_for(token)
        except SalesforceSandboxError:
            await self._refuse(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                AUTH_FAILED,
                "The session ID in accesstoken is invalid or expired; get a new access token",
            )
        if metadata.get("tenantid") != self._sandbox.org_id or not metadata.get("instanceurl"):
            await self._refuse(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                AUTH_FAILED,
                "tenantid must be the org id of the access token and instanceurl must be set",
            )

    def _members(self, topic: str) -> set[str] | None:
        """The objects a topic carries (lower-cased), or None when it does not exist."""
        selected = {name.lower() for name in self.settings.entities}
        if topic == ALL_CHANGES or (topic.startswith("/data/") and topic.endswith("__chn")):
            return selected
        entity = topic_entity(topic)
        if entity is not None and entity.lower() in selected:
            return {entity.lower()}
        return None

    async def _topic_members(
        self, topic: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> set[str]:
        await self._authenticate(context)
        members = self._members(topic)
        if members is None:
            await self._refuse(
                context,
                grpc.StatusCode.NOT_FOUND,
                TOPIC_NOT_FOUND,
                f"topic {topic} not found: no such channel, or the object is not selected for "
                "Change Data Capture",
            )
            raise AssertionError("unreachable")  # abort raises
        entity = topic_entity(topic)
        if entity is not None and not self.settings.can_view_all(entity):
            # Single-object channels check the permission at subscription; /data/ChangeEvents
            # and custom channels accept anyone and filter on delivery (`_subscribe`).
            await self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                TOPIC_PERMISSION,
                f"the user lacks the View All Records permission on {entity} needed to "
                f"subscribe to {topic}",
            )
        return members

    # ------------------------------------------------------------------ schemas

    def schema_for(self, entity: str) -> _Schema | None:
        """The current schema of `entity`'s change events (None: no such object)."""
        obj = self._sandbox.schema.sobject(entity)
        if obj is None:
            return None
        schema = event_schema(obj)
        text = json.dumps(schema, separators=(",", ":"))
        schema_id = schema_id_of(text)
        found = self._schemas.get(schema_id)
        if found is None:
            fields = schema["fields"]
            found = _Schema(
                schema_id=schema_id,
                json=text,
                parsed=fastavro.parse_schema(schema),
                positions={f["name"].lower(): i for i, f in enumerate(fields)},
                types={f["name"].lower(): (f["name"], f["type"][1]) for f in fields[1:]},
            )
            self._schemas[schema_id] = found
        return found

    def encode(self, event: ChangeEvent) -> pb.ConsumerEvent | None:
        """One change log event as a `ConsumerEvent` (None: its object has no schema)."""
        header = dict(event.payload["ChangeEventHeader"])
        schema = self.schema_for(str(header["entityName"]))
        if schema is None:
            return None
        for name in _BITMAPS:
            header[name] = bitmap(header.get(name, []), schema.positions)
        record: dict[str, Any] = {"ChangeEventHeader": header}
        for name, value in event.payload.items():
            known = schema.types.get(name.lower())
            if known is not None:
                record[known[0]] = _avro_value(value, known[1])
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema.parsed, record)
        return pb.ConsumerEvent(
            event=pb.ProducerEvent(
                id=f"{header['transactionKey']}-{header['sequenceNumber']}",
                schema_id=schema.schema_id,
                payload=buffer.getvalue(),
            ),
            replay_id=replay_bytes(event.replay_id),
        )

    # ------------------------------------------------------------------ RPCs

    async def _get_topic(
        self, request: pb.TopicRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TopicInfo:
        members = await self._topic_members(request.topic_name, context)
        schema_id = ""
        if len(members) == 1 and topic_entity(request.topic_name):
            schema = self.schema_for(str(topic_entity(request.topic_name)))
            schema_id = schema.schema_id if schema else ""
        return pb.TopicInfo(
            topic_name=request.topic_name,
            tenant_guid=self._sandbox.org_id,
            can_publish=False,
            can_subscribe=True,
            schema_id=schema_id,
            rpc_id=_rpc_id(),
        )

    async def _get_schema(
        self, request: pb.SchemaRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SchemaInfo:
        await self._authenticate(context)
        found = self._schemas.get(request.schema_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"schema {request.schema_id} not found")
            raise AssertionError("unreachable")
        return pb.SchemaInfo(schema_json=found.json, schema_id=found.schema_id, rpc_id=_rpc_id())

    async def _publish(
        self, request: pb.PublishRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PublishResponse:
        await self._authenticate(context)
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"change event topic {request.topic_name} is read-only",
        )
        raise AssertionError("unreachable")

    def _replay_problem(self, position: int) -> str | None:
        log = self._sandbox.change_log
        try:
            log.read(after=max(position, 0), limit=1, now=self._sandbox.clock.now())  # prunes
        except ReplayIdExpiredError as exc:
            return str(exc)
        if position <= log.dropped_through or position > log.latest_replay_id:
            return (
                f"replay id {position} is not retained (events are kept 72 hours) or is not "
                "of this org"
            )
        return None

    async def _subscribe(
        self, requests: AsyncIterator[pb.FetchRequest], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.FetchResponse]:
        first = await anext(requests, None)
        if first is None:
            return
        members = await self._topic_members(first.topic_name, context)
        log = self._sandbox.change_log
        clock = self._sandbox.clock
        if first.replay_preset == pb.EARLIEST:
            position: int | None = None
        elif first.replay_preset == pb.CUSTOM:
            position = replay_number(first.replay_id) if len(first.replay_id) == 8 else -1
            problem = self._replay_problem(position)
            if problem:
                await self._refuse(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    REPLAY_INVALID,
                    f"The Replay ID validation failed: {problem}",
                )
                return
        else:
            position = log.latest_replay_id
        self.subscribes += 1
        credit = max(0, first.num_requested)
        wakeup, dropped = asyncio.Event(), asyncio.Event()
        self._streams.add(wakeup)
        self._drops.add(dropped)

        async def read_credits() -> None:
            nonlocal credit
            async for more in requests:
                credit += max(0, more.num_requested)
                wakeup.set()

        reader = asyncio.create_task(read_credits())
        try:
            while True:
                if dropped.is_set() or self.settings.down:
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, "the stream was dropped; subscribe again"
                    )
                wakeup.clear()
                batch: list[pb.ConsumerEvent] = []
                if credit > 0:
                    try:
                        pending = log.read(after=position, limit=10_000, now=clock.now())
                    except ReplayIdExpiredError:
                        pending = log.events()
                    for event in pending:
                        if len(batch) >= min(credit, MAX_BATCH):
                            break
                        position = event.replay_id
                        entity = str(event.payload["ChangeEventHeader"]["entityName"]).lower()
                        if entity not in members or not self.settings.can_view_all(entity):
                            continue  # not on this channel, or filtered on delivery
                        encoded = self.encode(event)
                        if encoded is not None:
                            batch.append(encoded)
                if batch:
                    credit -= len(batch)
                    self.sent += len(batch)
                    events = batch + batch if self.settings.duplicate else batch
                    yield pb.FetchResponse(
                        events=events,
                        latest_replay_id=replay_bytes(position or log.latest_replay_id),
                        rpc_id=_rpc_id(),
                        pending_num_requested=credit,
                    )
                    continue
                waits = {
                    asyncio.ensure_future(wakeup.wait()),
                    asyncio.ensure_future(dropped.wait()),
                }
                done, rest = await asyncio.wait(
                    waits, timeout=self.keepalive_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                for task in rest:
                    task.cancel()
                if not done:
                    if position is None:
                        position = log.latest_replay_id
                    yield pb.FetchResponse(
                        latest_replay_id=replay_bytes(max(position, 0)),
                        rpc_id=_rpc_id(),
                        pending_num_requested=credit,
                    )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                await reader
            self._streams.discard(wakeup)
            self._drops.discard(dropped)


_rpc_ids = itertools.count(1)


def _rpc_id() -> str:
    return f"sandbox-{next(_rpc_ids):08x}"


def reserve_port(port: int, host: str = "127.0.0.1") -> socket.socket:
    """Bind `host:port` (0: a free one) to learn the port and to fail early if it is taken.

    The socket is closed just before the gRPC server binds the same port (`PubSubServer`).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}; pick another port"
        ) from exc
    return sock


class PubSubServer:
    """The service on a reserved loopback port, as `serving.serve_all` runs it."""

    def __init__(self, service: PubSubService, port: int = 0, host: str = "127.0.0.1") -> None:
        self._service = service
        self._host = host
        self._reserved: socket.socket | None = reserve_port(port, host)
        self.port = int(self._reserved.getsockname()[1])
        self.endpoint = f"{host}:{self.port}"

    async def start(self) -> None:
        """Release the reservation and serve on its port."""
        self.release()
        await self._service.start(self.port, self._host)

    def release(self) -> None:
        """Close the reserving socket (the server holds the port, or it is given up)."""
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    async def stop(self) -> None:
        """Stop serving."""
        await self._service.stop()
