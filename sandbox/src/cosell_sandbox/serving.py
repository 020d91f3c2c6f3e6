"""Serving sandbox apps on loopback.

A sandbox needs to know its own base URL before it starts (it writes it into
`@odata.nextLink`, `instance_url`, certificate URLs and webhook `ResourceUri`s), and port 0
means "any free port". So a listening socket is bound first, and the app is built with the
URL that socket really has; then uvicorn serves the app on that socket. Several apps (both
sandboxes, later the connector) share one event loop and stop together on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import typer
import uvicorn
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"
USAGE_ERROR = 2  # the exit status click uses for usage errors


def usage_error(message: str) -> typer.Exit:
    """Print `message` as an error on stderr and return the Exit to raise (status 2)."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(USAGE_ERROR)


@dataclass(frozen=True)
class Listener:
    """A bound, listening loopback socket and the base URL it serves."""

    sock: socket.socket
    base_url: str

    @property
    def port(self) -> int:
        """The TCP port the socket is bound to."""
        return int(self.sock.getsockname()[1])


def listen(port: int = 0, host: str = LOOPBACK) -> Listener:
    """Bind and listen on `host:port` (port 0 picks a free one).

    Raises:
        OSError: the port is taken; the message names it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port"
        ) from exc
    sock.listen(1024)
    sock.setblocking(False)
    bound_port = sock.getsockname()[1]
    return Listener(sock=sock, base_url=f"http://{host}:{bound_port}")


def make_server(app: ASGIApp, listener: Listener, *, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for `app` on `listener`, not yet started."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


class Service(Protocol):
    """A server that is not an ASGI app (the Pub/Sub API's gRPC server), run beside the apps."""

    async def start(self) -> None:
        """Start serving on the running loop."""
        ...

    async def stop(self) -> None:
        """Stop serving."""
        ...


async def serve_all(
    apps: Sequence[tuple[ASGIApp, Listener]],
    *,
    log_level: str = "warning",
    services: Sequence[Service] = (),
) -> None:
    """Serve every app on its listener (and every service) until interrupted (Ctrl-C, SIGTERM)."""
    for service in services:
        await service.start()
    servers = [(make_server(app, lst, log_level=log_level), lst) for app, lst in apps]
    tasks = [asyncio.create_task(srv.serve(sockets=[lst.sock])) for srv, lst in servers]
    try:
        # A signal reaches whichever server installed its handler last; when one stops, all stop.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for srv, _ in servers:
            srv.should_exit = True
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for service in services:
            await service.stop()


def run_forever(
    apps: Sequence[tuple[ASGIApp, Listener]],
    *,
    log_level: str = "warning",
    services: Sequence[Service] = (),
) -> None:
    """Blocking form of `serve_all`, for CLI commands."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_all(apps, log_level=log_level, services=services))
