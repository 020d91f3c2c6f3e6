"""One OAuth redirect received on a loopback address (RFC 8252 §7.3), for `cosell connect`.

An interactive sign-in (authorization code with PKCE) ends with the browser being sent to the
app's redirect URI with `code` and `state` (or `error`): in the query string of a GET, or, with
`response_mode=form_post` (which keeps the code out of the browser's history), in the form body
of a POST. A command-line app registers a loopback redirect (`http://127.0.0.1`, any port) and
listens there for that one request.

`LoopbackRedirect` listens on 127.0.0.1 (an ephemeral port unless one is given), answers the
first request that carries `code` or `error` with a short page telling the user to go back to
the terminal, hands its parameters to `wait()`, and answers 404 to anything else (a browser's
`/favicon.ico`). Each request is bounded in size and time, so a stray client cannot
hold the listener. Nothing here knows OAuth beyond those two parameter names: the caller
checks `state` and redeems the code.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

LOOPBACK_HOST = "127.0.0.1"
# A redirect's request line and headers are a few kilobytes; 64 KiB bounds a hostile client.
_MAX_REQUEST_BYTES = 64 * 1024
# A browser sends its request at once; ten seconds bounds a connection that never does.
_REQUEST_TIMEOUT = 10.0
_DONE_PAGE = (
    "<!doctype html><meta charset=utf-8><title>cosell</title>"
    "<p>Sign-in received. You can close this window and go back to the terminal.</p>"
)


class LoopbackRedirect:
    """Listens on `http://127.0.0.1:<port>` for one OAuth redirect.

    Use as an async context manager; `redirect_uri` is known once entered.

    Args:
        port: the port to listen on; 0 picks a free one.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None

    @property
    def redirect_uri(self) -> str:
        """The redirect URI to send in the authorization request."""
        return f"http://{LOOPBACK_HOST}:{self._port}"

    async def __aenter__(self) -> LoopbackRedirect:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, LOOPBACK_HOST, self._port)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        if self._result is not None and not self._result.done():
            self._result.cancel()

    async def wait(self, wait_seconds: float) -> dict[str, str]:
        """The redirect's query parameters.

        Raises:
            TimeoutError: no redirect came within `wait_seconds` seconds.
        """
        assert self._result is not None, "enter the LoopbackRedirect first"
        return await asyncio.wait_for(asyncio.shield(self._result), wait_seconds)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        if len(head) > _MAX_REQUEST_BYTES:
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rpartition(" ")[0] or rest
        query = urlsplit(target).query
        if method == "POST":
            query = await self._form(reader, lines[1:])
        params = dict(parse_qsl(query, keep_blank_values=True))
        found = method in ("GET", "POST") and ("code" in params or "error" in params)
        if found and self._result is not None and not self._result.done():
            self._result.set_result(params)
        status = "200 OK" if found else "404 Not Found"
        body = (_DONE_PAGE if found else "Not found").encode("utf-8")
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    @staticmethod
    async def _form(reader: asyncio.StreamReader, headers: list[str]) -> str:
        length = 0
        for header in headers:
            name, _, value = header.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        if not 0 < length <= _MAX_REQUEST_BYTES:
            return ""
        try:
            body = await asyncio.wait_for(reader.readexactly(length), _REQUEST_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError):
            return ""
        return body.decode("utf-8", errors="replace")
