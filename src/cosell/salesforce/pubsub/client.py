"""Async client of Salesforce's Pub/Sub API (`eventbus.v1.PubSub`, gRPC), for change events.

Every call carries the REST session's access token as metadata (`accesstoken`, `instanceurl`,
`tenantid`); a call refused `UNAUTHENTICATED` gets one token refresh and one more try.
`get_schema` caches schemas by id (an id names one schema for ever), so a stream asks once
per schema, and again only when Salesforce changes it (a field added).

**Subscribe and flow control.** `subscribe()` opens one stream from a start position
(`Replay.latest()`, `Replay.earliest()`, `Replay.after(replay_id)`) and asks for `batch`
events; `Subscription.processed(n)` tells it n events are handled, and once half a batch is
handled it asks for that many more, so the server never has more than `batch` in flight and
a slow consumer is never flooded.

Errors (one class per thing the caller must do; `SalesforceError` below)::

    RetriableError
    └── StreamUnavailableError        UNAVAILABLE, a dropped stream, a timeout: subscribe again
    TerminalError
    ├── ChangeEventsNotEnabledError   NOT_FOUND: the object is not selected for CDC (or no channel)
    ├── ReplayIdInvalidError          the stored replay id is past retention (72 h) or unknown
    └── AccessDeniedError
        └── ChangeEventsPermissionError  PERMISSION_DENIED: the user may not read change events
    SessionExpiredError               UNAUTHENTICATED still after one refresh
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from cosell.salesforce.auth import Session, Token
from cosell.salesforce.errors import (
    AccessDeniedError,
    RetriableError,
    SalesforceError,
    SessionExpiredError,
    TerminalError,
)
from cosell.salesforce.pubsub import pubsub_api_pb2 as pb
from cosell.salesforce.pubsub.events import ChangeEvent, EventSchema, decode_event

DEFAULT_ENDPOINT = "api.pubsub.salesforce.com:7443"
DEFAULT_BATCH = 100  # events in flight; Salesforce caps one FetchRequest at 100
_SERVICE = "/eventbus.v1.PubSub/"
_REPLAY_CODES = ("replayid.validation.failed", "replayid.corrupted", "replayid")
T = TypeVar("T")


class StreamUnavailableError(RetriableError):
    """The stream could not be opened or was dropped; subscribe again after a backoff."""

    default_hint = "cosell subscribes again by itself and polls meanwhile"


class ChangeEventsNotEnabledError(TerminalError):
    """The topic does not exist: the object is not selected for Change Data Capture."""


class ReplayIdInvalidError(TerminalError):
    """The replay id is older than the event bus keeps events (72 hours) or not of this org."""

    default_hint = (
        "cosell re-reads what changed since its last poll and resumes at the latest event"
    )


class ChangeEventsPermissionError(AccessDeniedError):
    """The integration user may not subscribe to change events."""

    default_hint = (
        "assign the Cosell_Change_Events permission set to the integration user (receiving "
        "an object's change events needs View All Records on it), then run cosell check"
    )


@dataclass(frozen=True)
class TopicInfo:
    """What `GetTopic` says about a topic."""

    topic_name: str
    tenant_guid: str
    can_subscribe: bool
    schema_id: str


@dataclass(frozen=True)
class Replay:
    """Where a subscription starts."""

    preset: int
    replay_id: bytes = b""

    @classmethod
    def latest(cls) -> Replay:
        """Only events committed after the subscription starts."""
        return cls(pb.LATEST)

    @classmethod
    def earliest(cls) -> Replay:
        """Every retained event (up to 72 hours back)."""
        return cls(pb.EARLIEST)

    @classmethod
    def after(cls, replay_id: bytes) -> Replay:
        """The events after `replay_id`."""
        return cls(pb.CUSTOM, replay_id)


@dataclass(frozen=True)
class Batch:
    """One `FetchResponse`: its events (possibly none: a keep-alive) and the latest replay id."""

    events: tuple[ChangeEvent, ...]
    latest_replay_id: bytes


def error_from_rpc(exc: grpc.aio.AioRpcError, topic: str = "") -> SalesforceError:
    """The error of the tree above that a failed call means."""
    code = exc.code()
    details = exc.details() or code.name
    trailing = dict(exc.trailing_metadata() or ())
    error_code = str(trailing.get("error-code", "")) or None
    if code == grpc.StatusCode.NOT_FOUND:
        obj = topic.removeprefix("/data/").removesuffix("ChangeEvent") or topic
        return ChangeEventsNotEnabledError(
            f"no change events on {topic or 'this topic'}: {details}",
            error_code=error_code,
            hint=f"select {obj} in Setup > Integrations > Change Data Capture (or check the "
            "[salesforce] channel), then run cosell check",
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return ChangeEventsPermissionError(details, error_code=error_code)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return SessionExpiredError(details, error_code=error_code)
    if code == grpc.StatusCode.INVALID_ARGUMENT and (
        "replay" in (error_code or "").lower() or "replay id" in details.lower()
    ):
        return ReplayIdInvalidError(details, error_code=error_code)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED):
        return TerminalError(details, error_code=error_code or code.name)
    return StreamUnavailableError(details, error_code=error_code or code.name)


class PubSubClient:
    """Client of the Pub/Sub API at `endpoint` (`host:port`).

    Args:
        endpoint: `api.pubsub.salesforce.com:7443`, or a sandbox's `127.0.0.1:<port>`.
        session: the REST client's auth session (the same access token serves both APIs).
        tls: whether the channel uses TLS (the real service: always; the sandbox: no).
    """

    def __init__(self, endpoint: str, session: Session, *, tls: bool = True) -> None:
        self.endpoint = endpoint
        self._session = session
        self._channel = (
            grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials())
            if tls
            else grpc.aio.insecure_channel(endpoint)
        )
        self._schemas: dict[str, EventSchema] = {}
        self.schema_calls = 0
        """`GetSchema` calls made (the cache's misses)."""

    async def close(self) -> None:
        """Close the channel (open streams end)."""
        await self._channel.close()

    async def _metadata(self, token: Token) -> tuple[tuple[str, str], ...]:
        if token.org_id is None:
            raise TerminalError(
                "the access token does not say which org it is for (no identity URL); "
                "the Pub/Sub API needs the org id",
            )
        return (
            ("accesstoken", token.access_token),
            ("instanceurl", token.instance_url),
            ("tenantid", token.org_id),
        )

    async def _unary(
        self, call: Callable[[tuple[tuple[str, str], ...]], Awaitable[T]], topic: str = ""
    ) -> T:
        token = await self._session.token()
        for attempt in range(2):
            try:
                return await call(await self._metadata(token))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED and attempt == 0:
                    token = await self._session.refresh(token)
                    continue
                raise error_from_rpc(exc, topic) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    async def get_topic(self, topic: str) -> TopicInfo:
        """`GetTopic`: whether `topic` exists for this user, and its schema id.

        Raises:
            ChangeEventsNotEnabledError: no such topic (the object is not selected for CDC).
            ChangeEventsPermissionError: the user may not subscribe.
        """
        method = self._channel.unary_unary(
            _SERVICE + "GetTopic",
            request_serializer=pb.TopicRequest.SerializeToString,
            response_deserializer=pb.TopicInfo.FromString,
        )
        info: pb.TopicInfo = await self._unary(
            lambda md: method(pb.TopicRequest(topic_name=topic), metadata=md), topic
        )
        return TopicInfo(
            topic_name=info.topic_name,
            tenant_guid=info.tenant_guid,
            can_subscribe=info.can_subscribe,
            schema_id=info.schema_id,
        )

    async def get_schema(self, schema_id: str) -> EventSchema:
        """`GetSchema`, cached by id."""
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        method = self._channel.unary_unary(
            _SERVICE + "GetSchema",
            request_serializer=pb.SchemaRequest.SerializeToString,
            response_deserializer=pb.SchemaInfo.FromString,
        )
        info: pb.SchemaInfo = await self._unary(
            lambda md: method(pb.SchemaRequest(schema_id=schema_id), metadata=md)
        )
        self.schema_calls += 1
        try:
            schema = EventSchema.from_json(schema_id, info.schema_json)
        except ValueError as exc:
            raise TerminalError(str(exc)) from exc
        self._schemas[schema_id] = schema
        return schema

    async def subscribe(
        self, topic: str, replay: Replay, *, batch: int = DEFAULT_BATCH
    ) -> Subscription:
        """Open a `Subscribe` stream on `topic` from `replay`, asking for `batch` events.

        Errors surface when the returned subscription is iterated (gRPC opens lazily).
        """
        if not 1 <= batch <= DEFAULT_BATCH:
            raise ValueError(f"batch must be 1 to {DEFAULT_BATCH} events")
        token = await self._session.token()
        metadata = await self._metadata(token)
        method = self._channel.stream_stream(
            _SERVICE + "Subscribe",
            request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=pb.FetchResponse.FromString,
        )
        return Subscription(self, method, metadata, topic, replay, batch, token)

    async def refresh_token(self) -> None:
        """A stream was refused `UNAUTHENTICATED`: get a new access token for the next one."""
        await self._session.refresh(self._session.current)


class Subscription:
    """One open `Subscribe` stream: iterate it for `Batch`es; call `processed` as you go."""

    def __init__(
        self,
        client: PubSubClient,
        method: grpc.aio.StreamStreamMultiCallable[Any, pb.FetchResponse],
        metadata: tuple[tuple[str, str], ...],
        topic: str,
        replay: Replay,
        batch: int,
        token: Token,
    ) -> None:
        self._client = client
        self.topic = topic
        self.batch = batch
        self.token = token
        self._requests: asyncio.Queue[pb.FetchRequest | None] = asyncio.Queue()
        self._requests.put_nowait(
            pb.FetchRequest(
                topic_name=topic,
                replay_preset=replay.preset,  # type: ignore[arg-type]
                replay_id=replay.replay_id,
                num_requested=batch,
            )
        )
        self._handled = 0  # events processed since the last top-up
        self.requested = batch
        """Events asked for so far on this stream (flow control, for tests)."""
        self._call = method(self._request_stream(), metadata=metadata)

    async def _request_stream(self) -> AsyncIterator[pb.FetchRequest]:
        while True:
            request = await self._requests.get()
            if request is None:
                return
            yield request

    def processed(self, count: int) -> None:
        """`count` delivered events are handled: top the credit up once half a batch is."""
        self._handled += count
        if self._handled * 2 >= self.batch:
            self._requests.put_nowait(pb.FetchRequest(num_requested=self._handled))
            self.requested += self._handled
            self._handled = 0

    async def __aiter__(self) -> AsyncIterator[Batch]:
        try:
            async for response in self._call:
                events = []
                for item in response.events:
                    schema = await self._client.get_schema(item.event.schema_id)
                    try:
                        events.append(decode_event(item.replay_id, item.event.payload, schema))
                    except ValueError as exc:
                        raise TerminalError(str(exc)) from exc
                yield Batch(events=tuple(events), latest_replay_id=response.latest_replay_id)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.topic) from exc
        raise StreamUnavailableError("the server ended the stream; subscribe again")

    async def close(self) -> None:
        """End the stream."""
        self._requests.put_nowait(None)
        self._call.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await asyncio.sleep(0)
