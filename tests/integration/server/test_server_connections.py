"""Slow and greedy clients over loopback: raw TCP against uvicorn with `guarded_protocol`.

These run on real time, because the deadlines are the event loop's timers; each is bounded
to about a second by deadlines of 0.3 s. The attack run held 1,000 connections that sent
headers or bodies a byte every 5 s for 90 s, none closed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cosell.server.connections import ConnectionLimits, guarded_protocol

LIMITS = ConnectionLimits(
    header_timeout_seconds=0.3, body_timeout_seconds=0.3, max_connections_per_client=3
)
BOUND = 2.0  # seconds a test may wait for the server to cut a client off


async def _echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"length": len(body)})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/echo", _echo, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    config = uvicorn.Config(
        app, loop="asyncio", lifespan="off", log_config=None, http=guarded_protocol(LIMITS)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):  # up to 5 s for uvicorn to start serving
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    yield sock.getsockname()[1]
    server.should_exit = True
    await asyncio.wait_for(task, 5)
    sock.close()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _dribble(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    """Send `data` a byte every 0.1 s while reading; return what the server sent before closing."""
    answer = asyncio.create_task(reader.read())
    for byte in data:
        if answer.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.1)
    return await asyncio.wait_for(answer, BOUND)


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    return await asyncio.wait_for(reader.read(), BOUND)


def _request(body: bytes) -> bytes:
    return (
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


async def test_a_prompt_request_is_answered(port: int) -> None:
    reader, writer = await _open(port)
    writer.write(_request(b'{"a": 1}'))
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"length":8}')
    writer.close()


async def test_headers_dribbled_are_cut_off_with_408(port: int) -> None:
    reader, writer = await _open(port)
    started = time.monotonic()
    answer = await _dribble(reader, writer, _request(b"{}")[:20])
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < BOUND
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    reader, writer = await _open(port)
    assert (await _answer(reader)).startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_body_dribbled_is_cut_off(port: int) -> None:
    reader, writer = await _open(port)
    body = b'{"x": "' + b"a" * 100 + b'"}'
    writer.write(_request(body)[: -len(body)] + body[:5])
    started = time.monotonic()
    answer = await _dribble(reader, writer, body[5:30])
    assert not answer.startswith(b"HTTP/1.1 200")  # closed before the body was complete
    assert time.monotonic() - started < BOUND
    writer.close()


async def test_keep_alive_requests_each_get_their_own_deadline(port: int) -> None:
    reader, writer = await _open(port)
    one = _request(b"{}").replace(b"connection: close", b"connection: keep-alive")
    for _ in range(3):
        writer.write(one)
        line = await asyncio.wait_for(reader.readuntil(b'{"length":2}'), BOUND)
        assert line.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.2)  # idle between requests is the keep-alive timer's business
    writer.close()


async def test_one_client_holds_at_most_the_cap_of_connections(port: int) -> None:
    held = [await _open(port) for _ in range(LIMITS.max_connections_per_client)]
    await asyncio.sleep(0.05)
    reader, writer = await _open(port)
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 429")
    assert b"too many connections" in answer
    writer.close()
    for _, held_writer in held:
        held_writer.close()
        await held_writer.wait_closed()
    await asyncio.sleep(0.05)
    reader, writer = await _open(port)  # the count went down as they closed
    writer.write(_request(b"{}"))
    assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
    writer.close()


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        ConnectionLimits(header_timeout_seconds=0)
    with pytest.raises(ValueError, match="no cap"):
        ConnectionLimits(max_connections_per_client=-1)
