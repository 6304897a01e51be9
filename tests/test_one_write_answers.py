"""A whole answer leaves the server in one write; nothing else waits for it (gateway/protocol.py).

uvicorn with the gateway's HTTP protocol, served in process on a real loopback socket (asyncio's
loop, so that the server's socket writes can be counted at its transport), and raw clients.
Issue 10: the head and the body of a whole answer used to be two ``send`` system calls, and
the client woke up for each.
"""

from __future__ import annotations

import asyncio
from asyncio import selector_events
from collections.abc import Callable
from typing import Any

import pytest

from gateway.asgi import Receive, Scope, Send
from gateway.protocol import ClientLimits, GatewayHttpProtocol
from tests.harness import serve_with_protocol

LIMITS = ClientLimits(header_timeout=5.0, body_timeout=5.0, max_connections=10)
BODY = b'{"object":"chat.completion"}'
REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"

App = Callable[[Scope, Receive, Send], Any]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write the server makes to a client socket (its protocol is the gateway's)."""
    seen: list[bytes] = []
    transport: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    write, writelines = transport.write, transport.writelines

    def counted(self: Any, data: bytes) -> None:
        if isinstance(self._protocol, GatewayHttpProtocol):
            seen.append(bytes(data))
        write(self, data)

    def counted_lines(self: Any, data: Any) -> None:
        if isinstance(self._protocol, GatewayHttpProtocol):
            seen.append(b"".join(data))
        writelines(self, data)

    monkeypatch.setattr(transport, "write", counted)
    monkeypatch.setattr(transport, "writelines", counted_lines)
    return seen


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


def _run(app: App, client: Callable[[int], Any]) -> None:
    serve_with_protocol(app, client, LIMITS)


def test_a_whole_answer_is_one_write_and_keep_alive_goes_on(writes: list[bytes]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY, "more_body": False})

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(REQUEST)
            head = await _read_head(reader)
            assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 28" in head
            assert await asyncio.wait_for(reader.readexactly(len(BODY)), 5) == BODY
        writer.close()

    _run(app, client)
    assert len(writes) == 3  # one per answer: head and body together
    assert all(w.startswith(b"HTTP/1.1 200 OK") and w.endswith(BODY) for w in writes)


def test_a_streamed_head_is_written_before_the_first_chunk(writes: list[bytes]) -> None:
    """A head without a length (a stream) is not held: the client has it while the
    application still waits for its first chunk."""
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200,
                 "headers": [(b"content-type", b"text/event-stream")]}  # fmt: skip
        await send(start)
        await go.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        head = await _read_head(reader)  # while the application waits
        assert b"transfer-encoding: chunked" in head
        go.set()
        assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5) == (
            b"9\r\ndata: 1\n\n\r\n0\r\n\r\n"
        )
        writer.close()

    _run(app, client)
    assert writes[0].endswith(b"\r\n\r\n") and b"data: 1" not in writes[0]


def test_a_held_head_goes_out_when_the_application_awaits_before_its_body(
    writes: list[bytes],
) -> None:
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"%d" % len(BODY))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await go.wait()
        await send({"type": "http.response.body", "body": BODY, "more_body": False})

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        assert (await _read_head(reader)).startswith(b"HTTP/1.1 200 OK")
        go.set()
        assert await asyncio.wait_for(reader.readexactly(len(BODY)), 5) == BODY
        writer.close()

    _run(app, client)
    assert len(writes) == 2 and writes[1] == BODY


def test_100_continue_is_not_held(writes: list[bytes]) -> None:
    """The interim answer a client waits for before sending its body goes out at once."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        body = message["body"]
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await _read_head(reader) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        assert (await _read_head(reader)).startswith(b"HTTP/1.1 200 OK")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        writer.close()

    _run(app, client)
    assert writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(writes) == 2 and writes[1].endswith(b"\r\n\r\nhello")
