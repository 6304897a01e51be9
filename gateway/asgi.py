"""ASGI types and the few low-level helpers the pure-ASGI data plane is built from.

The hot routes bypass the framework's request/response objects: they read the body from
``receive`` with a size limit and write bytes to ``send`` directly, which keeps per-request
overhead to a handful of function calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]


class ClientDisconnected(Exception):
    """The client went away before the request body was fully received."""


class BodyTooLarge(Exception):
    """The request body exceeds the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names (ASGI servers already lower-case them).

    A repeated header keeps its last value; every header the gateway reads is single-valued.
    """
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def read_body(
    receive: Receive, limit: int, declared_length: int | None, first: Message | None = None
) -> bytes:
    """Read the whole request body, refusing more than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything is read, so a
    client sending a huge body is told at once instead of after the upload. ``first``: the
    first message, when the caller has already received it (see :func:`whole_body`).
    """
    if declared_length is not None and declared_length > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        if first is not None:
            message, first = first, None
        else:
            message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def whole_body(message: Message, limit: int) -> bytes | None:
    """The body of a request that came whole in its first message (the usual request: the
    server hands over a small body in one piece) and within ``limit``; None for anything
    else, which :func:`read_body` then reads from that message on. Lets the request path
    read a body without one more coroutine per request."""
    if message["type"] != "http.request" or message.get("more_body", False):
        return None
    body: bytes = message.get("body", b"")
    return body if len(body) <= limit else None


async def send_bytes(
    send: Send, status: int, body: bytes, headers: RawHeaders, content_type: bytes | None = None
) -> None:
    """Send a complete response: status, headers (plus length and type), body."""
    out = list(headers)
    if content_type is not None:
        out.append((b"content-type", content_type))
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body, "more_body": False})
