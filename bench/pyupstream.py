"""Fallback fake upstream, used only when nginx cannot be installed.

A bare asyncio protocol (uvloop when available) with a minimal HTTP/1.1 parser: no framework,
so it stays as close to nginx's "answer from memory" as Python gets. Run as
``python -m bench.pyupstream PORT`` in its own process so it never competes with the bench for
the GIL.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import unquote

from bench import payloads
from bench.procs import HOST


def _response(
    body: str | bytes,
    content_type: str,
    status: str = "200 OK",
    request_id: str = "req_bench_fixed",
) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"x-request-id: {request_id}\r\n"
        "\r\n"
    )
    return head.encode() + data


_CHAT = _response(payloads.chat_completion(), "application/json")
_STREAM = _response(payloads.sse_stream(), "text/event-stream")
_REPLIES = {
    payloads.CHAT_PATH: _CHAT,
    payloads.STREAM_UPSTREAM_PATH: _STREAM,
    payloads.MESSAGES_PATH: _response(payloads.anthropic_message(), "application/json"),
    payloads.ANTHROPIC_STREAM_PATH: _response(payloads.anthropic_sse_stream(), "text/event-stream"),
    payloads.GEMINI_PATH: _response(payloads.gemini_response(), "application/json"),
    payloads.GEMINI_STREAM_PATH: _response(payloads.gemini_sse_stream(), "text/event-stream"),
    payloads.BEDROCK_PATH: _response(payloads.converse_response(), "application/json"),
    payloads.BEDROCK_STREAM_PATH: _response(
        payloads.bedrock_event_stream(), payloads.BEDROCK_CONTENT_TYPE
    ),
    payloads.BYOK_PATH: _response(
        payloads.chat_completion(), "application/json", request_id=payloads.BYOK_REQUEST_ID
    ),
    payloads.BYOK_MODELS_PATH: _response(payloads.model_list(), "application/json"),
    payloads.FAILING_PATH: _response(
        payloads.overloaded_error(), "application/json", "503 Service Unavailable"
    ),
}
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class FixedResponse(asyncio.Protocol):
    """Parses request heads, skips bodies, answers each request with a prebuilt response."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass; it does have write().
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            # nginx matches the decoded path without the query (Bedrock's model id is
            # percent-encoded, Gemini's stream has ?alt=sse): so does this.
            path = unquote(head.split(" ", 2)[1].partition("?")[0])
            reply = _REPLIES.get(path, _NOT_FOUND)
            assert self.transport is not None
            self.transport.write(reply)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FixedResponse, HOST, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main()
