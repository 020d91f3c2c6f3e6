"""The sandbox's Partner Center Webhooks API and the signed dispatch of referral events.

Webhooks API (spec §4.1), under `{base}/webhooks/v1`, with a token for
`https://api.partnercenter.microsoft.com` (app-only or app+user):
`GET /registration/events`, `POST|GET|PUT /registration` (one registration per tenant, one URL
for all its events; request keys are case-insensitive), `POST /registration/validationEvents`
(sends a signed `test-created` callback; 2 per rolling minute, then 429 with `Retry-After`) and
`GET /registration/validationEvents/{correlationId}` (results kept 7 days). Responses echo
`MS-CorrelationId` / `MS-RequestId` (new GUIDs when the request has none).

Dispatch (spec §4.3-§4.5). The referrals side calls `emit(event_name, referral_id)`. If the
registration lists that event, a callback is queued: the JSON body is serialised once, at emit
time; exactly those bytes are signed (RSA-SHA256, PKCS#1 v1.5, with the leaf key of
`certs.DispatchCertificates`) at the first attempt - off the request path of the change that
emitted it - and sent on every attempt, with `Authorization: Signature <b64>`
(or `x-ms-signature` when the registration set `SignatureTokenToMsSignatureHeader`),
`X-MS-Certificate-Url` naming the leaf certificate this app serves, and
`X-MS-Signature-Algorithm: rsa-sha256`. The URL and header choice are those of the registration
at emit time.

A 2xx answer is success. Any other answer, or a transport error or timeout, schedules the next
attempt on the sandbox clock after `retry_delay(attempt)` seconds: 10, 20, 40, 80, 160, then 300
(capped) - attempts at +0 s, 10 s, 30 s, 70 s, 150 s, 310 s, 610 s, 910 s, 1210 s, 1510 s. After the
10th failed attempt (Partner Center's documented count) the callback goes to the dead-letter list
and is never retried, like Partner Center's offline queue. Validation (`test-created`) callbacks
are attempted once; their outcome is the validation result.

Faults (`events.WebhookFaults`, changed at `PUT /control/webhooks/faults`) apply to referral
events only. Each emit draws three numbers from the seeded rng whatever the settings (so a seed
reproduces a run): drop (never sent; logged as `dropped`), duplicate (queued twice, same bytes),
reorder (held back until the next emitted event is queued, then sent right after it; released
after `REORDER_MAX_HOLD_SECONDS` if no event follows). `delay_seconds` postpones the first
attempt.

`run()` (the served sandbox's background task) drains, then sleeps on the clock until the next
callback is due - in steps of at most `RUN_POLL_SECONDS`, so that a jump of the sandbox clock is
noticed - or, when nothing is pending, until `emit` wakes it; it never moves a ManualClock when
there is nothing to deliver.

Invariants:
- The queue is ordered by (due time, emit sequence); `drain()` attempts everything due now, one
  at a time in that order, until nothing is due; a retry is never due at the moment it is
  scheduled, so `drain()` always ends.
- `emit` never blocks and never raises; it may be called from any thread (state is guarded by a
  `threading.Lock`) and wakes the `run()` loop.
- Every attempt is recorded in the delivery log (bounded to the newest `DELIVERY_LOG_LIMIT`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import random
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cosell.clock import Clock
from cosell_sandbox.partnercenter.certs import DISPATCH_HOST, DispatchCertificates
from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError
from cosell_sandbox.partnercenter.events import ReferralEventName, WebhookFaults
from cosell_sandbox.partnercenter.identity import WEBHOOKS_AUDIENCE, Identity

logger = logging.getLogger(__name__)

# The events Partner Center documents (spec §4.2), in the order of its list.
DOCUMENTED_EVENTS: tuple[str, ...] = (
    "test-created",
    "subscription-updated",
    "usagerecords-thresholdExceeded",
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
    "invoice-ready",
    "azure-fraud-event-detected",
    "dap-admin-relationship-approved",
    "reseller-relationship-accepted-by-customer",
    "dap-admin-relationship-terminated",
    "dap-admin-relationship-terminated-by-microsoft",
    "granular-admin-relationship-approved",
    "granular-admin-relationship-activated",
    "granular-admin-relationship-terminated",
    "granular-admin-relationship-expired",
    "granular-admin-access-assignment-created",
    "granular-admin-access-assignment-activated",
    "granular-admin-access-assignment-updated",
    "granular-admin-access-assignment-deleted",
    "new-commerce-migration-created",
    "new-commerce-migration-completed",
    "new-commerce-migration-failed",
    "new-commerce-migration-schedule-failed",
)
TEST_EVENT = "test-created"

MAX_ATTEMPTS = 10  # Partner Center's documented number of delivery attempts (spec §4.5)
RETRY_BASE_SECONDS = 10.0  # first retry after 10 s, doubling each time
RETRY_CAP_SECONDS = 300.0  # "capped at a few minutes" (spec §6 [I])
VALIDATION_LIMIT = 2  # validation events allowed per window (spec §2.7, §4.1)
VALIDATION_WINDOW = timedelta(minutes=1)
VALIDATION_RETENTION = timedelta(days=7)  # "data purged after 7 days" (spec §4.1)
REORDER_MAX_HOLD_SECONDS = 60.0  # a reordered callback waits at most this long for a successor
DELIVERY_LOG_LIMIT = 10_000  # newest attempts kept, so a long demo's memory stays flat
DELIVERY_TIMEOUT_SECONDS = 10.0  # per attempt; Partner Center's own timeout is undocumented
RUN_POLL_SECONDS = (
    1.0  # while callbacks wait, the run loop re-reads the clock this often (clock jumps)
)
_RESPONSE_MESSAGE_LIMIT = 1024  # bytes of a receiver's answer kept in a validation result

CERTIFICATE_PATH = f"/cert/{DISPATCH_HOST}.cer"
CA_CERTIFICATE_PATH = "/cert/sandbox-root-ca.cer"
CA_CERTIFICATE_PEM_PATH = "/cert/sandbox-root-ca.pem"

Outcome = Literal["delivered", "failed", "dropped"]


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based) before the next one."""
    return float(min(RETRY_BASE_SECONDS * 2.0 ** (attempt - 1), RETRY_CAP_SECONDS))


def format_change_date(moment: datetime) -> str:
    """`ResourceChangeUtcDate` as Partner Center writes it: 7 fractional digits and `+00:00`."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0+00:00"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One line of the delivery log.

    Attributes:
        delivery_id: the queued callback (a duplicate has its own id).
        event_name: the callback's `EventName`.
        resource_id: the referral id, or the validation correlation id for `test-created`.
        attempt: 1..10; 0 for a callback dropped by a fault.
        outcome: `delivered`, `failed` or `dropped`.
        status_code: the receiver's HTTP status, or None (transport error, dropped).
        error: what went wrong, or None.
        at: when (sandbox clock).
    """

    delivery_id: int
    event_name: str
    resource_id: str
    attempt: int
    outcome: Outcome
    status_code: int | None
    error: str | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """The attempt as JSON-able data."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass(frozen=True)
class _Registration:
    subscriber_id: str
    url: str
    events: tuple[str, ...]
    signature_in_ms_header: bool
    last_modified: datetime


@dataclass(frozen=True)
class _Delivery:
    delivery_id: int
    event_name: str
    resource_id: str
    url: str
    body: bytes
    signature: str | None  # base64; made at the first attempt
    signature_in_ms_header: bool
    due: datetime
    seq: int  # queue order among callbacks due at the same time
    attempts: int = 0
    correlation_id: str | None = None  # set for validation (test-created) callbacks
    release_at: datetime | None = None  # set while held back by the reorder fault

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = self.body.decode("utf-8")
        data["due"] = self.due.isoformat()
        data["release_at"] = self.release_at.isoformat() if self.release_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Delivery:
        release_at = data.get("release_at")
        return cls(
            delivery_id=int(data["delivery_id"]),
            event_name=data["event_name"],
            resource_id=data["resource_id"],
            url=data["url"],
            body=data["body"].encode("utf-8"),
            signature=data.get("signature"),
            signature_in_ms_header=bool(data["signature_in_ms_header"]),
            due=datetime.fromisoformat(data["due"]),
            seq=int(data["seq"]),
            attempts=int(data["attempts"]),
            correlation_id=data.get("correlation_id"),
            release_at=datetime.fromisoformat(release_at) if release_at else None,
        )


@dataclass
class _Validation:
    correlation_id: str
    created: datetime
    callback_url: str
    status: str
    results: list[dict[str, Any]] = field(default_factory=list)


class FaultSettings(BaseModel):
    """The body of `PUT /control/webhooks/faults`."""

    model_config = ConfigDict(extra="forbid")

    drop: float = Field(0.0, ge=0.0, le=1.0)
    duplicate: float = Field(0.0, ge=0.0, le=1.0)
    delay_seconds: float = Field(0.0, ge=0.0)
    reorder: float = Field(0.0, ge=0.0, le=1.0)


def _error(status: int, code: str, message: str, target: str | None = None) -> Exception:
    return PartnerCenterSandboxError(status, code, message, target=target)


def _seven_digits(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0"


class WebhookService:
    """Webhooks API, signing certificates and dispatch of referral events for one tenant.

    Args:
        clock: the sandbox clock; retries, throttling and retention read it.
        base_url: the sandbox's base URL; callbacks point at it.
        identity: checks the tokens of Webhooks API calls.
        rng: seeded randomness for ids and faults.
        http_client: sends callbacks; by default an httpx client owned (and closed) here.
        faults: initial fault settings (mutable through `faults`).
        certificates: the signing CA and leaf; generated when omitted.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        base_url: str,
        identity: Identity,
        rng: random.Random,
        http_client: httpx.AsyncClient | None = None,
        faults: WebhookFaults | None = None,
        certificates: DispatchCertificates | None = None,
    ) -> None:
        self._clock = clock
        self._base_url = base_url.rstrip("/")
        self._identity = identity
        self._rng = rng
        self._owns_client = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False
        )
        self.faults = faults or WebhookFaults()
        self.certificates = certificates or DispatchCertificates.generate(clock)
        self._lock = threading.Lock()
        self._registration: _Registration | None = None
        self._queue: list[_Delivery] = []
        self._held: list[_Delivery] = []
        self._dead: list[_Delivery] = []
        self._log: deque[DeliveryAttempt] = deque(maxlen=DELIVERY_LOG_LIMIT)
        self._validations: dict[str, _Validation] = {}
        self._validation_times: deque[datetime] = deque()
        self._next_id = 1
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_lock: asyncio.Lock | None = None
        self.router = self._build_router()

    # -- public API -------------------------------------------------------------------------

    def info(self) -> dict[str, str]:
        """The Webhooks API base URL and the certificate URLs."""
        return {
            "webhooks_api": f"{self._base_url}/webhooks/v1",
            "certificate_url": self.certificate_url,
            "ca_certificate_url": f"{self._base_url}{CA_CERTIFICATE_PATH}",
            "ca_certificate_pem_url": f"{self._base_url}{CA_CERTIFICATE_PEM_PATH}",
        }

    @property
    def certificate_url(self) -> str:
        """The URL sent in `X-MS-Certificate-Url`."""
        return f"{self._base_url}{CERTIFICATE_PATH}"

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        """The delivery log, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        """Callbacks that failed all attempts: event, resource id, attempts, body."""
        with self._lock:
            return [self._describe(d) for d in self._dead]

    @property
    def pending(self) -> int:
        """Callbacks queued or held back, not yet delivered or dead-lettered."""
        with self._lock:
            return len(self._queue) + len(self._held)

    def next_due(self) -> datetime | None:
        """When the next queued callback (or held-back release) is due, if any."""
        with self._lock:
            times = [d.due for d in self._queue] + [
                d.release_at for d in self._held if d.release_at is not None
            ]
        return min(times) if times else None

    def emit(self, event_name: ReferralEventName, referral_id: str) -> None:
        """Queue `event_name` about `referral_id` for the registered URL, if registered.

        Never blocks, never raises: the referrals side calls it after committing a change.
        """
        try:
            self._emit(event_name, referral_id)
        except Exception:  # the caller's change is committed; a dispatch bug must not undo it
            logger.exception("webhook emit failed for %s %s", event_name, referral_id)
        self._wake()

    async def drain(self) -> None:
        """Attempt every callback due now on the clock (retries due now included)."""
        if self._drain_lock is None:
            self._drain_lock = asyncio.Lock()
        async with self._drain_lock:
            while True:
                delivery = self._take_due()
                if delivery is None:
                    return
                await self._attempt(delivery)

    async def run(self) -> None:
        """Deliver callbacks as they fall due until cancelled; closes an owned http client."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        try:
            while True:
                self._wakeup.clear()
                try:
                    await self.drain()
                except Exception:  # the loop must outlive one bad callback; it is logged
                    logger.exception("webhook delivery failed unexpectedly")
                due = self.next_due()
                if due is None:
                    # Nothing pending: only an emit can make work, so do not touch the clock
                    # (a ManualClock's sleep would move time for everyone).
                    await self._wakeup.wait()
                    continue
                wait = max(0.0, (due - self._clock.now()).total_seconds())
                await self._sleep_or_wake(min(wait, RUN_POLL_SECONDS))
        finally:
            self._loop = None
            self._wakeup = None
            await self.aclose()

    async def aclose(self) -> None:
        """Close the http client if this service made it."""
        if self._owns_client:
            await self._http.aclose()

    def snapshot(self) -> dict[str, Any]:
        """The service's state as JSON-able data, for `--data` persistence."""
        with self._lock:
            reg = self._registration
            return {
                "certificates": self.certificates.to_json(),
                "registration": None
                if reg is None
                else {
                    "subscriber_id": reg.subscriber_id,
                    "url": reg.url,
                    "events": list(reg.events),
                    "signature_in_ms_header": reg.signature_in_ms_header,
                    "last_modified": reg.last_modified.isoformat(),
                },
                "queue": [d.to_json() for d in self._queue],
                "held": [d.to_json() for d in self._held],
                "dead": [d.to_json() for d in self._dead],
                "log": [a.to_json() for a in self._log],
                "validations": [
                    {
                        "correlation_id": v.correlation_id,
                        "created": v.created.isoformat(),
                        "callback_url": v.callback_url,
                        "status": v.status,
                        "results": v.results,
                    }
                    for v in self._validations.values()
                ],
                "validation_times": [t.isoformat() for t in self._validation_times],
                "next_id": self._next_id,
                "faults": asdict(self.faults),
            }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the service's state with a `snapshot`."""
        reg = data["registration"]
        with self._lock:
            self.certificates = DispatchCertificates.from_json(data["certificates"])
            self._registration = (
                None
                if reg is None
                else _Registration(
                    subscriber_id=reg["subscriber_id"],
                    url=reg["url"],
                    events=tuple(reg["events"]),
                    signature_in_ms_header=bool(reg["signature_in_ms_header"]),
                    last_modified=datetime.fromisoformat(reg["last_modified"]),
                )
            )
            self._queue = [_Delivery.from_json(d) for d in data["queue"]]
            self._held = [_Delivery.from_json(d) for d in data["held"]]
            self._dead = [_Delivery.from_json(d) for d in data["dead"]]
            self._log = deque(
                (
                    DeliveryAttempt(**{**a, "at": datetime.fromisoformat(a["at"])})
                    for a in data["log"]
                ),
                maxlen=DELIVERY_LOG_LIMIT,
            )
            self._validations = {
                v["correlation_id"]: _Validation(
                    correlation_id=v["correlation_id"],
                    created=datetime.fromisoformat(v["created"]),
                    callback_url=v["callback_url"],
                    status=v["status"],
                    results=list(v["results"]),
                )
                for v in data["validations"]
            }
            self._validation_times = deque(
                datetime.fromisoformat(t) for t in data["validation_times"]
            )
            self._next_id = int(data["next_id"])
            self.faults = WebhookFaults(**data["faults"])

    # -- queueing ---------------------------------------------------------------------------

    def _guid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _new_delivery(
        self,
        event_name: str,
        resource_id: str,
        resource_uri: str,
        resource_name: str,
        registration: _Registration,
        due: datetime,
        correlation_id: str | None = None,
    ) -> _Delivery:
        now = self._clock.now()
        body = json.dumps(
            {
                "EventName": event_name,
                "ResourceUri": resource_uri,
                "ResourceName": resource_name,
                "AuditUri": None,
                "ResourceChangeUtcDate": format_change_date(now),
            },
            separators=(",", ":"),
        ).encode("utf-8")
        delivery_id = self._next_id
        self._next_id += 1
        return _Delivery(
            delivery_id=delivery_id,
            event_name=event_name,
            resource_id=resource_id,
            url=registration.url,
            body=body,
            signature=None,
            signature_in_ms_header=registration.signature_in_ms_header,
            due=due,
            seq=delivery_id,
            correlation_id=correlation_id,
        )

    def _emit(self, event_name: str, referral_id: str) -> None:
        with self._lock:
            registration = self._registration
            if registration is None or event_name not in registration.events:
                return
            faults = self.faults
            # Always three draws, so a seed gives the same run whatever the fault settings.
            drop_draw, duplicate_draw, reorder_draw = (
                self._rng.random(),
                self._rng.random(),
                self._rng.random(),
            )
            now = self._clock.now()
            due = now + timedelta(seconds=faults.delay_seconds)
            delivery = self._new_delivery(
                event_name,
                referral_id,
                f"{self._base_url}/v1.0/engagements/referrals/{referral_id}",
                "referral",
                registration,
                due,
            )
            if drop_draw < faults.drop:
                self._record(delivery, 0, "dropped", None, "dropped by the drop fault")
                return
            copies = [delivery]
            if duplicate_draw < faults.duplicate:
                copies.append(replace(delivery, delivery_id=self._next_id, seq=self._next_id))
                self._next_id += 1
            if reorder_draw < faults.reorder:
                release_at = now + timedelta(seconds=REORDER_MAX_HOLD_SECONDS)
                self._held.extend(replace(d, release_at=release_at) for d in copies)
                return
            self._queue.extend(copies)
            # Whatever was held back goes right after this event.
            for held in self._held:
                self._queue.append(
                    replace(
                        held,
                        seq=self._next_id,
                        due=max(held.due, due),
                        release_at=None,
                    )
                )
                self._next_id += 1
            self._held.clear()

    def _take_due(self) -> _Delivery | None:
        with self._lock:
            now = self._clock.now()
            for held in [d for d in self._held if d.release_at is not None and d.release_at <= now]:
                self._held.remove(held)
                self._queue.append(replace(held, release_at=None))
            due = [d for d in self._queue if d.due <= now]
            if not due:
                return None
            first = min(due, key=lambda d: (d.due, d.seq))
            self._queue.remove(first)
            return first

    def _record(
        self,
        delivery: _Delivery,
        attempt: int,
        outcome: Outcome,
        status_code: int | None,
        error: str | None,
    ) -> None:
        self._log.append(
            DeliveryAttempt(
                delivery_id=delivery.delivery_id,
                event_name=delivery.event_name,
                resource_id=delivery.resource_id,
                attempt=attempt,
                outcome=outcome,
                status_code=status_code,
                error=error,
                at=self._clock.now(),
            )
        )

    @staticmethod
    def _describe(delivery: _Delivery) -> dict[str, Any]:
        return {
            "delivery_id": delivery.delivery_id,
            "event_name": delivery.event_name,
            "resource_id": delivery.resource_id,
            "url": delivery.url,
            "attempts": delivery.attempts,
            "due": delivery.due.isoformat(),
            "body": delivery.body.decode("utf-8"),
        }

    # -- delivering -------------------------------------------------------------------------

    def _headers(self, delivery: _Delivery, signature: str) -> dict[str, str]:
        signature_header = "x-ms-signature" if delivery.signature_in_ms_header else "Authorization"
        return {
            "Content-Type": "application/json",
            signature_header: f"Signature {signature}",
            "X-MS-Certificate-Url": self.certificate_url,
            "X-MS-Signature-Algorithm": "rsa-sha256",
        }

    async def _attempt(self, delivery: _Delivery) -> None:
        if delivery.signature is None:
            signature = base64.b64encode(self.certificates.sign(delivery.body)).decode("ascii")
            delivery = replace(delivery, signature=signature)
        assert delivery.signature is not None
        attempt = delivery.attempts + 1
        status_code: int | None = None
        reason = ""
        answer = ""
        error: str | None = None
        try:
            response = await self._http.post(
                delivery.url,
                content=delivery.body,
                headers=self._headers(delivery, delivery.signature),
            )
            status_code = response.status_code
            reason = response.reason_phrase
            answer = response.text[:_RESPONSE_MESSAGE_LIMIT]
            if not 200 <= status_code < 300:
                error = f"the receiver answered {status_code} {reason}".strip()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        delivered = error is None
        with self._lock:
            self._record(
                delivery, attempt, "delivered" if delivered else "failed", status_code, error
            )
            if delivery.correlation_id is not None:
                self._complete_validation(delivery, status_code, reason, answer, error)
                return
            if delivered:
                return
            updated = replace(
                delivery,
                attempts=attempt,
                due=self._clock.now() + timedelta(seconds=retry_delay(attempt)),
            )
            if attempt >= MAX_ATTEMPTS:
                self._dead.append(updated)
                logger.warning(
                    "webhook %s for %s dead-lettered after %d attempts: %s",
                    delivery.event_name,
                    delivery.resource_id,
                    attempt,
                    error,
                )
            else:
                self._queue.append(updated)

    def _complete_validation(
        self,
        delivery: _Delivery,
        status_code: int | None,
        reason: str,
        answer: str,
        error: str | None,
    ) -> None:
        assert delivery.correlation_id is not None
        record = self._validations.get(delivery.correlation_id)
        if record is None:  # purged meanwhile
            return
        record.status = "completed"
        record.results.append(
            {
                "responseCode": reason or (str(status_code) if status_code else ""),
                "responseMessage": answer if status_code is not None else (error or ""),
                "systemError": status_code is None,
                "dateTimeUtc": _seven_digits(self._clock.now()),
            }
        )

    def _wake(self) -> None:
        wakeup, loop = self._wakeup, self._loop
        if wakeup is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wakeup.set)

    async def _sleep_or_wake(self, seconds: float) -> None:
        assert self._wakeup is not None
        if self._wakeup.is_set():
            return
        waiter = asyncio.ensure_future(self._wakeup.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)

    # -- registration -----------------------------------------------------------------------

    @staticmethod
    def _parse_registration(raw: bytes) -> tuple[str, tuple[str, ...], bool]:
        try:
            payload = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(
                400, "invalidRequest", f"The request body is not valid JSON: {exc}"
            ) from exc
        if not isinstance(payload, dict):
            raise _error(
                400,
                "invalidRequest",
                'Send a JSON object: {"WebhookUrl": "https://...", "WebhookEvents": '
                '["referral-created", ...]}.',
            )
        fields = {str(k).lower(): v for k, v in payload.items()}
        url = fields.get("webhookurl")
        if not isinstance(url, str) or not url.strip():
            raise _error(
                400,
                "invalidRequest",
                "WebhookUrl is required: the absolute http(s) URL that receives the callbacks.",
                "WebhookUrl",
            )
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _error(
                400,
                "invalidRequest",
                f"WebhookUrl '{url}' is not an absolute http(s) URL; send one like "
                "'https://example.com/partner-center/webhooks'.",
                "WebhookUrl",
            )
        try:
            _ = parts.port
        except ValueError as exc:
            raise _error(
                400, "invalidRequest", f"WebhookUrl '{url}' has an invalid port.", "WebhookUrl"
            ) from exc
        events = fields.get("webhookevents")
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e for e in events)
        ):
            raise _error(
                400,
                "invalidRequest",
                "WebhookEvents is required: a non-empty list of event names from "
                "GET /webhooks/v1/registration/events.",
                "WebhookEvents",
            )
        unknown = [e for e in events if e not in DOCUMENTED_EVENTS]
        if unknown:
            raise _error(
                400,
                "invalidRequest",
                f"Unknown webhook event(s): {', '.join(unknown)}. Valid events are listed by "
                "GET /webhooks/v1/registration/events (e.g. referral-created, "
                "referral-updated, related-referral-created, related-referral-updated, "
                "test-created).",
                "WebhookEvents",
            )
        in_ms_header = fields.get("signaturetokentomssignatureheader", False)
        if in_ms_header is None:
            in_ms_header = False
        if not isinstance(in_ms_header, bool):
            raise _error(
                400,
                "invalidRequest",
                "SignatureTokenToMsSignatureHeader must be true or false.",
                "SignatureTokenToMsSignatureHeader",
            )
        return url, tuple(dict.fromkeys(events)), in_ms_header

    def _register(self, raw: bytes, *, overwrite: bool) -> dict[str, Any]:
        url, events, in_ms_header = self._parse_registration(raw)
        with self._lock:
            existing = self._registration
            if existing is not None and not overwrite:
                raise _error(
                    409,
                    "conflict",
                    "A webhook registration already exists for this tenant; change it with "
                    "PUT /webhooks/v1/registration (one URL for all events).",
                )
            self._registration = _Registration(
                subscriber_id=existing.subscriber_id if existing else self._guid(),
                url=url,
                events=events,
                signature_in_ms_header=in_ms_header,
                last_modified=self._clock.now(),
            )
            return self._registration_body(self._registration)

    @staticmethod
    def _registration_body(reg: _Registration) -> dict[str, Any]:
        return {
            "SubscriberId": reg.subscriber_id,
            "WebhookUrl": reg.url,
            "WebhookEvents": list(reg.events),
            "SignatureTokenToMsSignatureHeader": reg.signature_in_ms_header,
        }

    def _show_registration(self) -> dict[str, Any]:
        with self._lock:
            reg = self._registration
        if reg is None:
            raise _error(
                404,
                "itemNotFound",
                "No webhook registration exists for this tenant; create one with "
                "POST /webhooks/v1/registration.",
            )
        return self._registration_body(reg)

    # -- validation events ------------------------------------------------------------------

    def _purge_validations(self, now: datetime) -> None:
        for cid in [
            c for c, v in self._validations.items() if now - v.created >= VALIDATION_RETENTION
        ]:
            del self._validations[cid]

    def _start_validation(self) -> str:
        with self._lock:
            now = self._clock.now()
            reg = self._registration
            if reg is None:
                raise _error(
                    400,
                    "invalidRequest",
                    "No webhook registration exists; register a URL with the test-created event "
                    "(POST /webhooks/v1/registration) before sending a validation event.",
                )
            if TEST_EVENT not in reg.events:
                raise _error(
                    400,
                    "invalidRequest",
                    "The registration does not include the test-created event; add it with "
                    "PUT /webhooks/v1/registration to send validation events.",
                    "WebhookEvents",
                )
            while self._validation_times and now - self._validation_times[0] >= VALIDATION_WINDOW:
                self._validation_times.popleft()
            if len(self._validation_times) >= VALIDATION_LIMIT:
                wait = (self._validation_times[0] + VALIDATION_WINDOW - now).total_seconds()
                retry_after = max(1, math.ceil(wait))
                raise PartnerCenterSandboxError(
                    429,
                    "tooManyRequests",
                    f"Validation events are limited to {VALIDATION_LIMIT} per minute. Try again "
                    f"in {retry_after} seconds.",
                    headers={"Retry-After": str(retry_after)},
                )
            self._validation_times.append(now)
            self._purge_validations(now)
            correlation_id = self._guid()
            self._validations[correlation_id] = _Validation(
                correlation_id=correlation_id,
                created=now,
                callback_url=reg.url,
                status="queued",
            )
            delivery = self._new_delivery(
                TEST_EVENT,
                correlation_id,
                f"{self._base_url}/webhooks/v1/registration/validationEvents/{correlation_id}",
                "test",
                reg,
                now,
                correlation_id=correlation_id,
            )
            self._queue.append(delivery)
        self._wake()
        return correlation_id

    def _validation_result(self, correlation_id: str) -> dict[str, Any]:
        with self._lock:
            self._purge_validations(self._clock.now())
            record = self._validations.get(correlation_id)
            if record is None:
                raise _error(
                    404,
                    "itemNotFound",
                    f"No validation event with correlation id '{correlation_id}' (results are "
                    "kept for 7 days); send one with POST "
                    "/webhooks/v1/registration/validationEvents.",
                    "correlationId",
                )
            return {
                "correlationId": record.correlation_id,
                "partnerId": self._identity.tenant_id,
                "status": record.status,
                "callbackUrl": record.callback_url,
                "results": list(record.results),
            }

    # -- routes -----------------------------------------------------------------------------

    def _echo_headers(self, request: Request) -> dict[str, str]:
        with self._lock:
            correlation = request.headers.get("ms-correlationid") or self._guid()
            request_id = request.headers.get("ms-requestid") or self._guid()
        return {"MS-CorrelationId": correlation, "MS-RequestId": request_id}

    async def _api(self, request: Request, handler: Callable[[], Awaitable[Any]]) -> Response:
        echo = self._echo_headers(request)
        try:
            self._identity.authenticate(request, audience=WEBHOOKS_AUDIENCE, user_required=False)
            body = await handler()
        except PartnerCenterSandboxError as exc:
            exc.headers = {**exc.headers, **echo}
            raise
        return JSONResponse(body, headers=echo)

    def _build_router(self) -> APIRouter:
        router = APIRouter()
        prefix = "/webhooks/v1/registration"

        @router.get(f"{prefix}/events")
        async def list_events(request: Request) -> Response:
            async def handler() -> list[str]:
                return list(DOCUMENTED_EVENTS)

            return await self._api(request, handler)

        @router.post(prefix)
        async def create_registration(request: Request) -> Response:
            async def handler() -> dict[str, Any]:
                return self._register(await request.body(), overwrite=False)

            return await self._api(request, handler)

        @router.put(prefix)
        async def update_registration(request: Request) -> Response:
            async def handler() -> dict[str, Any]:
                return self._register(await request.body(), overwrite=True)

            return await self._api(request, handler)

        @router.get(prefix)
        async def show_registration(request: Request) -> Response:
            async def handler() -> dict[str, Any]:
                return self._show_registration()

            return await self._api(request, handler)

        @router.post(f"{prefix}/validationEvents")
        async def send_validation(request: Request) -> Response:
            async def handler() -> dict[str, str]:
                return {"correlationId": self._start_validation()}

            return await self._api(request, handler)

        @router.get(f"{prefix}/validationEvents/{{correlation_id}}")
        async def validation_result(request: Request, correlation_id: str) -> Response:
            async def handler() -> dict[str, Any]:
                return self._validation_result(correlation_id)

            return await self._api(request, handler)

        @router.get(CERTIFICATE_PATH, include_in_schema=False)
        async def leaf_certificate() -> Response:
            return Response(self.certificates.leaf_der(), media_type="application/pkix-cert")

        @router.get(CA_CERTIFICATE_PATH, include_in_schema=False)
        async def ca_certificate() -> Response:
            return Response(self.certificates.ca_der(), media_type="application/pkix-cert")

        @router.get(CA_CERTIFICATE_PEM_PATH, include_in_schema=False)
        async def ca_certificate_pem() -> Response:
            return Response(self.certificates.ca_pem(), media_type="application/x-pem-file")

        @router.get("/control/webhooks/deliveries")
        async def control_deliveries() -> dict[str, Any]:
            with self._lock:
                return {
                    "deliveries": [a.to_json() for a in self._log],
                    "pending": [self._describe(d) for d in [*self._queue, *self._held]],
                    "dead_letters": [self._describe(d) for d in self._dead],
                }

        @router.get("/control/webhooks/faults")
        async def control_faults() -> dict[str, float]:
            return asdict(self.faults)

        @router.put("/control/webhooks/faults")
        async def control_set_faults(settings: FaultSettings) -> dict[str, float]:
            self.faults = WebhookFaults(**settings.model_dump())
            return asdict(self.faults)

        @router.delete("/control/webhooks/registration")
        async def control_delete_registration() -> Response:
            with self._lock:
                self._registration = None
            return Response(status_code=204)

        return router
