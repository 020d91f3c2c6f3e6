"""Fault injection and call accounting for the sandbox's APIs, as one ASGI middleware.

`ApiMiddleware` wraps the whole app. For every HTTP request it:

1. counts the call in `CallStats` by route template (`/v1.0/engagements/referrals/{referral_id}`,
   also for calls answered by an injected fault), method and status (everything except
   `/control/...`, so a benchmark can count the API calls a sync made);
2. on the Referrals API (`/v1.0/...`) adds a `request-id` header and echoes `client-request-id`
   (spec §1.2), on every answer including errors and injected faults;
3. on the Referrals and Webhooks APIs (`/v1.0/...`, `/webhooks/...`; never the token endpoint,
   the certificates or the control API) applies `ApiFaults`, read afresh on each call so that
   the control API and tests can change them at any time:
   - `latency_seconds`: `await clock.sleep(...)` before answering (instant on a `ManualClock`);
   - a token bucket (`throttle_rate_per_second`, capacity `throttle_burst`, at least 1) on the
     sandbox clock's monotonic time: an empty bucket answers 429 with `Retry-After` = the whole
     seconds until the next token and Partner Center's throttling body
     `{"statusCode": 429, "message": "Rate limit is exceeded. Try again in N seconds."}`
     (spec §2.7);
   - `error_429_fraction` / `error_503_fraction`: one draw from the seeded rng per call (only
     when a fraction is set), 429 with the same body or 503 `serviceNotAvailable`, both with
     `Retry-After: retry_after_seconds` rounded up.

The rng is the sandbox's seeded one, so a seed and the same sequence of calls reproduce the same
faults.
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cosell.clock import Clock
from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError

REFERRALS_PREFIX: Final = "/v1.0/"
FAULTY_PREFIXES: Final = (REFERRALS_PREFIX, "/webhooks/")
CONTROL_PREFIX: Final = "/control"
_GUID_SEGMENT = re.compile(
    r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


@dataclass
class ApiFaults:
    """Faults injected into the Referrals and Webhooks APIs (mutable; read on every call).

    Attributes:
        latency_seconds: added to every call, on the sandbox clock.
        error_429_fraction: share of calls answered 429 with `Retry-After`, in [0, 1].
        error_503_fraction: share of calls answered 503 with `Retry-After`, in [0, 1].
        retry_after_seconds: the `Retry-After` of injected 429/503 answers.
        throttle_rate_per_second: token-bucket refill rate; None turns throttling off.
        throttle_burst: token-bucket capacity (calls allowed at once); at least 1 is used.
    """

    latency_seconds: float = 0.0
    error_429_fraction: float = 0.0
    error_503_fraction: float = 0.0
    retry_after_seconds: float = 1.0
    throttle_rate_per_second: float | None = None
    throttle_burst: int = 0

    def validate(self) -> None:
        """Check the settings.

        Raises:
            ValueError: a setting is out of range; the message names it and the range.
        """
        if not (math.isfinite(self.latency_seconds) and self.latency_seconds >= 0):
            raise ValueError("latency_seconds must be a number of at least 0")
        for name in ("error_429_fraction", "error_503_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.error_429_fraction + self.error_503_fraction > 1.0:
            raise ValueError("error_429_fraction + error_503_fraction must be at most 1")
        if not (math.isfinite(self.retry_after_seconds) and self.retry_after_seconds >= 0):
            raise ValueError("retry_after_seconds must be a number of at least 0")
        rate = self.throttle_rate_per_second
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError("throttle_rate_per_second must be above 0 (or null for no throttle)")
        if self.throttle_burst < 0:
            raise ValueError("throttle_burst must be at least 0")

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON object."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the settings."""
        return tuple(f.name for f in fields(cls))


class TokenBucket:
    """A token bucket on a clock's monotonic time: `rate` tokens a second, up to `capacity`."""

    def __init__(self, clock: Clock, rate: float, capacity: float) -> None:
        self._clock = clock
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last = clock.monotonic()

    def take(self) -> float:
        """Take a token; 0.0 when one was available, else the seconds until the next one."""
        now = self._clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class CallStats:
    """Calls served, by route template, method and status."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def record(self, route: str, method: str, status: int) -> None:
        """Count one call."""
        self._counts[(route, method, status)] += 1

    def total(self) -> int:
        """All calls counted."""
        return sum(self._counts.values())

    def count(self, route: str | None = None, method: str | None = None) -> int:
        """Calls to `route` (a template such as `/v1.0/engagements/referrals/{referral_id}`)."""
        return sum(
            n
            for (r, m, _), n in self._counts.items()
            if (route is None or r == route) and (method is None or m == method)
        )

    def to_json(self) -> dict[str, Any]:
        """`{"total": N, "calls": [{"route", "method", "status", "count"}, ...]}`."""
        calls = [
            {"route": r, "method": m, "status": s, "count": n}
            for (r, m, s), n in sorted(self._counts.items())
        ]
        return {"total": self.total(), "calls": calls}

    def reset(self) -> None:
        """Forget every count."""
        self._counts.clear()


def throttled_body(seconds: int) -> bytes:
    """Partner Center's throttling body (spec §2.7)."""
    message = f"Rate limit is exceeded. Try again in {seconds} seconds."
    return json.dumps({"statusCode": 429, "message": message}).encode()


class ApiMiddleware:
    """Counts calls, adds request ids and injects `ApiFaults` (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: Callable[[], ApiFaults],
        clock: Clock,
        rng: random.Random,
        stats: CallStats,
        route_of: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self._route_of = route_of
        self._faults = faults
        self._clock = clock
        self._rng = rng
        self._stats = stats
        self._bucket: TokenBucket | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        counted = not path.startswith(CONTROL_PREFIX)
        status = 500
        extra: list[tuple[bytes, bytes]] = []
        if path.startswith(REFERRALS_PREFIX):
            extra.append((b"request-id", str(uuid.uuid4()).encode()))
            for name, value in scope["headers"]:
                if name == b"client-request-id":
                    extra.append((b"client-request-id", value))
                    break

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            fault = await self._inject(path) if path.startswith(FAULTY_PREFIXES) else None
            if fault is not None:
                await fault(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            if counted:
                self._stats.record(self._template(scope), method, status)

    def _template(self, scope: Scope) -> str:
        # The router records the matched route; an injected fault answers before routing.
        template = getattr(scope.get("route"), "path", None)
        if template is None and self._route_of is not None:
            template = self._route_of(scope)
        return str(template or _GUID_SEGMENT.sub("/{id}", scope["path"]))

    async def _inject(self, path: str) -> ASGIApp | None:
        faults = self._faults()
        if faults.latency_seconds > 0:
            await self._clock.sleep(faults.latency_seconds)
        rate = faults.throttle_rate_per_second
        if rate is None:
            self._bucket = None
        else:
            capacity = float(max(1, faults.throttle_burst))
            bucket = self._bucket
            if bucket is None or bucket.rate != rate or bucket.capacity != capacity:
                bucket = self._bucket = TokenBucket(self._clock, rate, capacity)
            wait = bucket.take()
            if wait > 0:
                return _throttled(math.ceil(wait))
        if faults.error_429_fraction > 0 or faults.error_503_fraction > 0:
            draw = self._rng.random()
            retry_after = math.ceil(faults.retry_after_seconds)
            if draw < faults.error_429_fraction:
                return _throttled(retry_after)
            if draw < faults.error_429_fraction + faults.error_503_fraction:
                error = PartnerCenterSandboxError(
                    503,
                    "serviceNotAvailable",
                    f"The service is temporarily unavailable; retry after {retry_after} seconds.",
                    headers={"Retry-After": str(retry_after)},
                )
                return error.response()
        return None


def _throttled(seconds: int) -> ASGIApp:
    body = throttled_body(seconds)

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(seconds).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return respond
