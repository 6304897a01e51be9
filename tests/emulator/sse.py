"""Server-sent events with the stream faults applied, and client disconnects noticed.

The gateway test "a client disconnect cancels the upstream request" needs the emulator to
tell a stream abandoned by its reader from one it cut itself (``drop_after_events``), so the
transport is watched while pacing as well as when writing: a write to a closed transport may
not fail until the next event, which could be long after the reader left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from aiohttp import web

from .exchange import Exchange

_POLL = 0.02
_FLUSH_POLLS = 200  # x 5 ms
_SPLIT_PAUSE = 0.05


def frame(data: bytes, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"


class EventStream:
    """Writes prepared SSE frames as a ``text/event-stream`` answer."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._request = exchange.request
        fault = exchange.fault
        self._chunk_delay = fault.chunk_delay if fault else 0.0
        self._drop_after = fault.drop_after_events if fault else None
        self._split = fault.split_events if fault else False
        self._newline = fault.newline if fault else b"\n"

    def _client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; False as soon as the client is gone."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(_POLL, left))
            if self._client_gone():
                return False
        return not self._client_gone()

    async def _drop(self) -> None:
        """Cut the connection mid-body: no terminating chunk, no ``[DONE]``.

        What was written is flushed to the socket first, so the reader sees exactly the
        events it was promised before the connection dies.
        """
        transport = self._request.transport
        if transport is None:
            return
        for _ in range(_FLUSH_POLLS):
            if not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.005)
        transport.abort()

    async def send(
        self,
        frames: Sequence[bytes],
        headers: Mapping[str, str] | None = None,
        content_type: str = "text/event-stream; charset=utf-8",
    ) -> web.StreamResponse:
        """Write ``frames``; ``headers`` replace the default ``x-request-id`` header;
        ``content_type``: Bedrock's binary event streams take the same faults."""
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": content_type,
                "Cache-Control": "no-cache",
                **(headers or {"x-request-id": f"req_emu_{self._exchange.serial}"}),
            },
        )
        await response.prepare(self._request)
        try:
            for index, data in enumerate(frames):
                if self._newline != b"\n":  # frames hold one-line JSON: every \n ends a line
                    data = data.replace(b"\n", self._newline)
                if self._drop_after is not None and index >= self._drop_after:
                    break
                if index and self._chunk_delay and not await self._pause(self._chunk_delay):
                    self._exchange.on_disconnect()
                    return response
                if self._client_gone():
                    self._exchange.on_disconnect()
                    return response
                if self._split:
                    half = len(data) // 2
                    await response.write(data[:half])
                    if not await self._pause(_SPLIT_PAUSE):
                        self._exchange.on_disconnect()
                        return response
                    data = data[half:]
                await response.write(data)
        except ConnectionError:
            self._exchange.on_disconnect()
            return response
        except asyncio.CancelledError:
            if self._client_gone():
                self._exchange.on_disconnect()
            raise
        if self._drop_after is not None:
            await self._drop()
            return response
        await response.write_eof()
        return response
