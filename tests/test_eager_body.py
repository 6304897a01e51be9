"""The upstream request leaves before the request path waits for the answer (gateway/eager_body.py).

Real aiohttp sessions against real loopback sockets: a pooled request's bytes are in the
server's socket after one turn of the event loop's caller (aiohttp alone, on Python 3.11,
writes them a turn later), a body too large to write at once still arrives whole (the
suspended write handed to aiohttp's task), and :func:`started` keeps a coroutine's results,
errors and cancellation as a task running it from the start would.
"""

from __future__ import annotations

import asyncio
import select
import socket
import sys
from collections.abc import Coroutine
from typing import Any

import aiohttp
import pytest

from gateway.eager_body import EagerBodyRequest, started

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _read_request(conn: socket.socket) -> bytes:
    """One whole request (headers and its Content-Length body) from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(
        line.split(b":", 1)[1] for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ))  # fmt: skip
    while len(body) < length:
        body += conn.recv(65536)
    return data


async def _pooled_request_arrives_after(request_class: type[aiohttp.ClientRequest]) -> bool:
    """Whether a request on a pooled connection is in the server's socket once its task has
    run one step (up to waiting for the answer)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        async with aiohttp.ClientSession(request_class=request_class) as session:

            async def post() -> bytes:
                async with session.post(url, data=b'{"model":"m"}') as response:
                    return await response.read()

            first = asyncio.ensure_future(post())
            listener.setblocking(False)
            while True:  # the first request: a new connection (several loop turns)
                try:
                    conn, _ = listener.accept()
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            conn.setblocking(True)
            with conn:
                await asyncio.sleep(0.05)  # its request is written by now, either way
                _read_request(conn)
                conn.sendall(ANSWER)
                assert await first == b"ok"  # the connection is back in the pool
                second = asyncio.ensure_future(post())
                await asyncio.sleep(0)  # the task's first step: it waits for the answer
                arrived = bool(select.select([conn], [], [], 0)[0])
                await asyncio.sleep(0.05)
                _read_request(conn)
                conn.sendall(ANSWER)
                assert await second == b"ok"
                return arrived


def test_the_request_is_written_before_the_caller_waits() -> None:
    assert asyncio.run(_pooled_request_arrives_after(EagerBodyRequest))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="aiohttp starts its writer eagerly")
def test_plain_aiohttp_writes_a_loop_turn_later() -> None:
    """What the eager request removes (the test above would pass without it otherwise)."""
    assert not asyncio.run(_pooled_request_arrives_after(aiohttp.ClientRequest))


def test_a_body_too_large_to_write_at_once_arrives_whole() -> None:
    """Small socket buffers on both sides and a server that waits before reading: the
    write suspends (the transport is paused) and aiohttp's task finishes it."""
    body = bytes(range(256)) * (3 * 1024)  # 768 KiB
    received: list[bytes] = []
    rests: list[str] = []

    class Recording(EagerBodyRequest):
        def write_bytes(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, None]:
            coro = super().write_bytes(*args, **kwargs)
            rests.append(coro.__qualname__)
            return coro

    def small_socket(addr_info: Any) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return sock

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(
            line.split(b":", 1)[1] for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))  # fmt: skip
        await asyncio.sleep(0.05)  # the client's buffers fill up meanwhile
        received.append(await reader.readexactly(length))
        writer.write(ANSWER)
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(serve, sock=listener)
        port = listener.getsockname()[1]
        connector = aiohttp.TCPConnector(socket_factory=small_socket)
        async with server, aiohttp.ClientSession(
            connector=connector, request_class=Recording
        ) as session:
            async with session.post(f"http://127.0.0.1:{port}/", data=body) as response:
                return await response.read()

    assert asyncio.run(main()) == b"ok"
    assert received == [body]
    assert rests == ["_rest"]  # it did suspend, and the task finished it


def test_started_keeps_results_errors_and_cancellation() -> None:
    async def suspends(future: asyncio.Future[int], log: list[str]) -> None:
        log.append("ran")
        await asyncio.sleep(0)
        try:
            log.append(f"got {await future}")
        finally:
            log.append("finally")

    async def fails() -> None:
        raise ValueError("boom")

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        log: list[str] = []
        future: asyncio.Future[int] = loop.create_future()
        rest = started(suspends(future, log))
        assert log == ["ran"]  # ran at once, up to its first suspension
        task = loop.create_task(rest)
        await asyncio.sleep(0.01)
        future.set_result(7)
        await task
        assert log == ["ran", "got 7", "finally"]

        with pytest.raises(ValueError, match="boom"):
            await loop.create_task(started(fails()))
        with pytest.raises(KeyError, match="later"):
            await loop.create_task(started(fails_later()))

        log.clear()
        waiting: asyncio.Future[int] = loop.create_future()
        task = loop.create_task(started(suspends(waiting, log)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["ran", "finally"] and waiting.cancelled()

    asyncio.run(main())


def test_the_gateway_session_uses_it() -> None:
    from gateway.upstream import UpstreamClient

    async def main() -> Any:
        client = UpstreamClient(1.0, 1.0, 10)
        await client.start()
        try:
            return client.session._request_class
        finally:
            await client.close()

    assert asyncio.run(main()) is EagerBodyRequest
