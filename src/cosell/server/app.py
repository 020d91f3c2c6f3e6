"""The service's ASGI app: the Partner Center webhook endpoint, health, readiness, metrics.

```
POST <webhook_path>   a Partner Center callback (default /webhooks/partner-center)
GET  /healthz         liveness: the process answers (no I/O)
GET  /readyz          readiness: database, both APIs' tokens, webhook registration (503 if not)
GET  /metrics         Prometheus text
```

**Receiving a callback** is, in this order, and nothing else:

1. Refuse a content type other than JSON (415) and a declared `Content-Length` over
   `max_body_bytes` (413) before reading anything.
2. Read the body as it streams, stopping with 413 as soon as it exceeds `max_body_bytes`
   (the rest is never read: a client cannot make us buffer more than the cap).
3. Verify the signature on those raw bytes (`SignatureVerifier`: certificate URL allowed,
   chain trusted, RSA-SHA256); only then is the body parsed. A forged or malformed callback
   gets its 4xx (401 bad signature, 400 malformed) and nothing is recorded or enqueued; an
   unreachable certificate host gets 503 so Partner Center retries.
4. `test-created` (validation) events, and events that name no referral we handle, are
   answered 200 and go no further.
5. Record the event in the store's inbox (source `partner-center`, event id the SHA-256 of
   the raw body, so an exact redelivery coalesces with the first) and answer 200 once that
   transaction has committed. The write happens off the event loop, batched with the other
   callbacks arriving meanwhile (`intake.InboxWriter`: one transaction for many callbacks).
   No remote call and no enqueue happen on this path.
6. Wake the engine's inbox drainer (`engine.inbox_recorded()`): in the background it turns
   the pending inbox rows into reconciles (coalesced per key, one durable enqueue per key)
   and marks the rows done; the reconcile re-reads the referral with our own credentials.

So a crash after the answer loses nothing: the event was committed to the inbox before it,
and the engine drains the inbox at its next start (`drain_inbox()`). If the store cannot
record, the answer is 503 and nothing of that callback is recorded (Partner Center retries).
If enqueueing fails later, the rows stay pending and the drainer tries again.

Every request is logged once (`http.request`: method, path, status, milliseconds); a refused
callback is logged with its reason and never with its body.

The lifespan starts the engine as a worker (`engine.start(background=True)`: reconciles,
pollers, sweeps, and the inbox's drainer) and stops it on shutdown, letting running
reconciles finish for up to `grace_seconds`; then the inbox writer's thread stops. When the engine cannot start, the exception is
kept in `app.state.startup_error` for the caller to report.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import structlog
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cosell.config import ServerSettings
from cosell.partnercenter.errors import WebhookVerificationError
from cosell.partnercenter.webhooks import VerifiedEvent
from cosell.server import DEFAULT_GRACE_SECONDS
from cosell.server.intake import InboxWriter, UnrecordableEventError
from cosell.server.metrics import CONTENT_TYPE, Metrics
from cosell.server.readiness import Readiness
from cosell.store import KeyFormatError, Store, StoreError, referral_key

log = structlog.get_logger("cosell.server")

SOURCE: Final = "partner-center"
VALIDATION_EVENTS: Final = frozenset({"test-created", "validation"})
REFERRAL_EVENTS: Final = frozenset(
    {"referral-created", "referral-updated", "related-referral-created", "related-referral-updated"}
)


class Verifier(Protocol):
    """What the endpoint needs of `SignatureVerifier`."""

    async def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        """Verify the callback, then parse it; raise `WebhookVerificationError` if it fails."""
        ...


class Worker(Protocol):
    """What the app needs of `cosell.sync.engine.Engine`."""

    async def start(self, *, background: bool = True) -> None:
        """Start the engine (a worker when `background`)."""
        ...

    def inbox_recorded(self) -> None:
        """Events were committed to the inbox: drain them into reconciles soon."""
        ...

    async def stop(self, *, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Let running reconciles finish, then stop."""
        ...


ChangeListener = Callable[[str, VerifiedEvent], None]
"""Told of each accepted referral event (key, event): `ObservedReconciler.change_seen`."""

QueueDepth = Callable[[], Awaitable[int]]
"""Reconciles waiting to start, read when `/metrics` is scraped."""


class _RefusedError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _reason(error: WebhookVerificationError) -> str:
    name = type(error).__name__.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def create_app(
    *,
    settings: ServerSettings,
    verifier: Verifier,
    store: Store,
    engine: Worker,
    readiness: Readiness,
    metrics: Metrics,
    queue_depth: QueueDepth | None = None,
    on_change: ChangeListener | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    console: ASGIApp | None = None,
) -> Starlette:
    """Build the service's app around a started-on-lifespan engine.

    Args:
        settings: `[server]` (webhook path, body cap).
        verifier: checks callbacks' signatures.
        store: where callbacks are recorded (the inbox).
        engine: started and stopped with the app; woken after each accepted callback.
        readiness: the checks of `/readyz`.
        metrics: the registry `/metrics` renders (the endpoint counts callbacks in it).
        queue_depth: read when `/metrics` is scraped; None leaves the gauge at 0.
        on_change: told of each accepted referral event (for the sync-lag metric).
        grace_seconds: how long running reconciles may finish when the app shuts down.
        console: the operations console's app, mounted at `/console` (`cosell.server.console`).

    Returns:
        The ASGI app.
    """
    cap = settings.max_body_bytes
    inbox = InboxWriter(store, source=SOURCE)

    async def read_body(request: Request) -> bytes:
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise _RefusedError(
                415, "unsupported_media_type", f"content type {media[:60]!r} is not JSON"
            )
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _RefusedError(400, "malformed_request", "Content-Length is not a number")
            if int(declared) > cap:
                raise _RefusedError(
                    413, "body_too_large", f"body of {declared} bytes is over {cap} bytes"
                )
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > cap:
                raise _RefusedError(413, "body_too_large", f"body is over {cap} bytes")
        return bytes(body)

    async def webhook(request: Request) -> Response:
        try:
            raw = await read_body(request)
            try:
                event = await verifier.verify(raw, request.headers)
            except WebhookVerificationError as exc:
                raise _RefusedError(exc.status_hint, _reason(exc), str(exc)) from exc
        except _RefusedError as refused:
            metrics.notifications_rejected.labels(reason=refused.reason).inc()
            log.warning(
                "webhook.refused",
                status=refused.status,
                reason=refused.reason,
                detail=str(refused),
                client=request.client.host if request.client else None,
            )
            return JSONResponse(
                {"error": refused.reason, "message": str(refused)}, status_code=refused.status
            )
        except ClientDisconnect:
            metrics.notifications_rejected.labels(reason="client_disconnected").inc()
            return Response(status_code=400)
        metrics.notifications_received.labels(source=SOURCE, event=event.event_name).inc()
        if event.event_name.lower() in VALIDATION_EVENTS:
            log.info("webhook.validation", event_name=event.event_name)
            return JSONResponse({"status": "ok", "event": event.event_name})
        if event.event_name.lower() not in REFERRAL_EVENTS or event.referral_id is None:
            log.info("webhook.ignored", event_name=event.event_name)
            return JSONResponse({"status": "ignored", "event": event.event_name})
        try:
            key = referral_key(event.referral_id)
        except KeyFormatError:
            metrics.notifications_rejected.labels(reason="malformed_event").inc()
            log.warning("webhook.refused", status=400, reason="malformed_event")
            return JSONResponse(
                {"error": "malformed_event", "message": "the ResourceUri names no referral id"},
                status_code=400,
            )
        event_id = hashlib.sha256(raw).hexdigest()
        try:
            new = await inbox.record(event_id=event_id, key=key, payload=raw)
        except (KeyFormatError, UnrecordableEventError) as exc:
            metrics.notifications_rejected.labels(reason="malformed_event").inc()
            log.warning("webhook.refused", status=400, reason="malformed_event", detail=str(exc))
            return JSONResponse(
                {"error": "malformed_event", "message": "the event cannot be recorded as sent"},
                status_code=400,
            )
        except StoreError as exc:
            log.warning("webhook.not_recorded", key=key, error=str(exc))
            return _unavailable()
        except Exception:  # a bug: its traceback once, and Partner Center retries the callback
            log.exception("webhook.not_recorded", key=key)
            return _unavailable()
        engine.inbox_recorded()
        if on_change is not None:
            on_change(key, event)
        log.debug(  # the request's `http.request` line is at INFO: one line per callback
            "webhook.accepted",
            event_name=event.event_name,
            key=key,
            event_id=event_id,
            duplicate=not new,
        )
        return JSONResponse({"status": "accepted", "key": key})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready, body = await readiness.run()
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        if queue_depth is not None:
            try:
                metrics.queue_depth.set(await queue_depth())
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail for one gauge
                log.warning("metrics.queue_depth_unavailable", error=str(exc))
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await engine.start(background=True)
        except Exception as exc:
            app.state.startup_error = exc  # the server reports it; uvicorn only logs it
            raise
        log.info("engine.started")
        try:
            yield
        finally:
            log.info("engine.stopping", grace_seconds=grace_seconds)
            await engine.stop(grace_seconds=grace_seconds)
            inbox.close()
            log.info("engine.stopped")

    routes: list[BaseRoute] = [
        Route(settings.webhook_path, webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if console is not None:
        routes.append(Mount("/console", app=console))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
    )
    app.add_middleware(_RequestLog)
    return app


def _unavailable() -> Response:
    return JSONResponse(
        {"error": "unavailable", "message": "the event could not be recorded; retry"},
        status_code=503,
    )


class _RequestLog:
    """Pure ASGI middleware: one `http.request` event per request (no body, no headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "http.request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status["code"],
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
