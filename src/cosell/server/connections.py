"""Connection guards of `cosell serve`: slow clients are cut off, one client holds few connections.

uvicorn's h11 protocol waits for a request's headers and body as long as the client keeps the
connection open (its only timer is the keep-alive one, between requests), so a client that
sends a byte every few seconds holds a connection, a task and a buffer forever, and a
thousand such clients hold a thousand. `guarded_protocol` returns uvicorn's `H11Protocol`
with two deadlines and a cap, all at the connection level, before the app sees anything:

- **Headers**: a request's headers must be complete within `header_timeout_seconds` of its
  first byte (or of the connection being opened). Otherwise the answer is 408 and the
  connection is closed.
- **Body**: once the headers are in, the whole body must arrive within
  `body_timeout_seconds`. Otherwise the connection is closed (the app, which is reading the
  body, sees the client gone and records nothing).
- **Connections per client**: a client address may hold at most
  `max_connections_per_client` connections at once; one more is answered 429 and closed.
  Behind a reverse proxy every connection comes from the proxy's address: raise the cap, or
  set 0 to turn it off, and let the proxy limit its clients.

A callback is a few hundred bytes sent at once, so the defaults (10 s, 10 s, 256) never touch
Partner Center. The deadlines run on the event loop's clock (`loop.call_later`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("cosell.server")

DEFAULT_HEADER_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_BODY_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_MAX_CONNECTIONS_PER_CLIENT: Final = 256


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, and how many connections it may hold.

    Attributes:
        header_timeout_seconds: a request's headers must be complete within this.
        body_timeout_seconds: a request's body must be complete within this after its headers.
        max_connections_per_client: connections one client address may hold; 0 for no cap.
    """

    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT

    def __post_init__(self) -> None:
        if self.header_timeout_seconds <= 0 or self.body_timeout_seconds <= 0:
            raise ValueError("the header and body timeouts must be positive")
        if self.max_connections_per_client < 0:
            raise ValueError("max_connections_per_client must be 0 (no cap) or more")


def _plain_response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_TOO_MANY = _plain_response(429, "Too Many Requests", "too many connections from this client\n")
_TOO_SLOW = _plain_response(408, "Request Timeout", "the request's headers came too slowly\n")


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """The h11 protocol of uvicorn with `limits` enforced (pass it as `uvicorn.Config(http=...)`).

    Each call makes a class with its own count of connections per client (one per server).
    """
    held: dict[str, int] = {}

    class GuardedH11Protocol(H11Protocol):
        _counted: str | None = None
        _deadline: asyncio.TimerHandle | None = None
        _waiting_for: str | None = None  # "headers", "body" or None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            cap = limits.max_connections_per_client
            if cap and address is not None:
                if held.get(address, 0) >= cap:
                    log.warning("http.connection_refused", client=address, held=cap)
                    transport.write(_TOO_MANY)
                    transport.close()
                    return
                held[address] = held.get(address, 0) + 1
                self._counted = address
            self._wait_for("headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            if self._counted is not None:
                left = held.get(self._counted, 1) - 1
                if left > 0:
                    held[self._counted] = left
                else:
                    held.pop(self._counted, None)
                self._counted = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._waiting_for is None and self.conn.their_state is h11.IDLE:
                self._wait_for("headers")  # the next request on a kept-alive connection
            super().data_received(data)
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                if self._waiting_for == "headers":
                    self._wait_for("body")
            elif state is not h11.IDLE:  # DONE, MUST_CLOSE, CLOSED, ERROR: nothing to wait for
                self._stop_waiting()

        def _wait_for(self, part: str) -> None:
            self._stop_waiting()
            seconds = (
                limits.header_timeout_seconds if part == "headers" else limits.body_timeout_seconds
            )
            self._waiting_for = part
            self._deadline = self.loop.call_later(seconds, self._too_slow, part)

        def _stop_waiting(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = None
            self._waiting_for = None

        def _too_slow(self, part: str) -> None:
            self._deadline = None
            self._waiting_for = None
            log.warning(
                "http.slow_client_cut_off",
                waiting_for=part,
                client=self.client[0] if self.client else None,
            )
            if self.transport.is_closing():
                return
            idle = self.cycle is None or self.cycle.response_complete
            if part == "headers" and idle and self.conn.our_state is h11.IDLE:
                self.transport.write(_TOO_SLOW)  # no response has begun: say why
            self.transport.close()

    return GuardedH11Protocol
