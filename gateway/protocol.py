"""uvicorn's HTTP protocol with the limits a public server needs against slow clients.

uvicorn (httptools) has no timeout for a request that arrives slowly: a connection that
sends nothing, headers one byte at a time, or a body shorter than its ``Content-Length``
stays open for as long as the client likes, and a few thousand such connections hold a
worker. ``GatewayHttpProtocol`` adds, per connection:

* a **header deadline** (``GATEWAY_CLIENT_HEADER_TIMEOUT``): from the connection's start (or
  the first byte of a later request on a keep-alive connection) to the end of the headers.
  Past it, a request that had begun gets a ``408`` and the connection is closed; a
  connection that sent nothing is just closed. Idle time *between* requests stays governed by
  uvicorn's keep-alive timeout (5 s);
* a **body deadline** (``GATEWAY_CLIENT_BODY_TIMEOUT``): from the end of the headers to the
  end of the body — a deadline for the whole body, not per read, so a body that trickles in
  a byte at a time is cut off too. Past it: ``408`` (unless a response was already sent) and
  the connection is closed; the application sees a client disconnect. It covers the data
  plane and the FastAPI routes alike, whether or not they read the body;
* a **connection limit** (``GATEWAY_MAX_CONNECTIONS``, per process): a connection accepted
  past it is answered ``503`` (``code: too_many_connections``, ``Retry-After: 1``,
  ``Connection: close``) at its first request, never served. uvicorn's own
  ``limit_concurrency`` answers a plain-text 503 and counts the connection asking in the
  limit; this one answers in the OpenAI error shape and names the setting.

With the request log on, a connection's writes also pass a :class:`GatedTransport`: while the
record journal holds the frames of this event-loop turn for one ``write(2)``
(:class:`~logging_pipeline.journal.GroupCommit`), what the server writes to its clients waits
for that write, so a client never has an answer whose record is not journaled.

Every gateway-made answer is OpenAI-shaped JSON. The hooks are uvicorn's protocol callbacks
(``connection_made``, httptools' ``on_message_begin`` / ``on_headers_complete`` /
``on_message_complete``, ``connection_lost``), its ``app`` and ``pipeline``, and a few
attributes of its request cycle (``response_started``, ``response_complete``,
``keep_alive``, ``disconnected``, ``message_event``); tests/test_protocol.py pins the
behaviour against a real ``gateway serve``. Cost per request: a clock read and a few
attribute writes (~0.3 µs measured); timers are armed per connection (see ``_start``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.asgi import Receive, Scope, Send, send_bytes
from gateway.errors import error_body
from gateway.settings import Settings
from logging_pipeline.journal import GroupCommit

logger = logging.getLogger("gateway.protocol")

GROUP_COMMIT = "gateway.group_commit"
"""The key of the lifespan state (uvicorn's ``app_state``) under which the application hands
the server its journal's :class:`~logging_pipeline.journal.GroupCommit` (logging on)."""


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What one client connection may take of a worker (see the module docstring)."""

    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        return cls(
            header_timeout=settings.client_header_timeout,
            body_timeout=settings.client_body_timeout,
            max_connections=settings.max_connections,
        )


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a connection limit.

    Built by uvicorn for each connection; pass :func:`protocol_factory` as ``http=``.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ClientLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._phase: Literal["headers", "body"] | None = None
        """What the client owes: the headers or the body of a request (``None``: nothing)."""
        self._due = 0.0
        """Loop time by which the current phase must be over."""
        self._request_begun = False
        self._timer: asyncio.TimerHandle | None = None

    # --- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        group = self.app_state.get(GROUP_COMMIT)
        if group is not None:
            group.serve(self.tasks)  # the requests in progress: group only when several
            self.transport = cast(asyncio.Transport, GatedTransport(transport, group))
        if len(self.connections) > self.limits.max_connections:
            # Every request on this connection gets the refusal instead of the gateway.
            self.app = _refusal(self.limits.max_connections)
        self._start("headers", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    # --- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._phase is None:  # a later request on a keep-alive connection
            self._start("headers", self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        self._start("body", self.limits.body_timeout)
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # the request's new cycle
            cycle.transport = cast(asyncio.Transport, OneWriteAnswers(self.transport, self.loop))

    def on_message_complete(self) -> None:
        self._phase = None
        self._request_begun = False
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._phase = None  # not ours to time any more (the gateway serves no WebSocket)
        super().handle_websocket_upgrade()

    # --- deadlines ----------------------------------------------------------------------
    # One timer per connection, re-armed lazily: starting a phase only moves ``_due``, and
    # the timer, when it fires early, sleeps again until ``_due``. A keep-alive connection
    # serving many requests so arms about one timer per timeout period, not two per request.

    def _start(self, phase: Literal["headers", "body"], timeout: float) -> None:
        self._phase = phase
        self._due = self.loop.time() + timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._due, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._phase is None or self.transport.is_closing():
            return
        if self.loop.time() < self._due:
            self._timer = self.loop.call_at(self._due, self._check)
        elif self._phase == "headers":
            self._headers_late()
        else:
            self._body_late()

    def _headers_late(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined request trickles in behind one still being answered: let that
            # answer finish, then close instead of reading on.
            cycle.keep_alive = False
            return
        if self._request_begun:
            self._reject(
                f"The request headers did not arrive within {self.limits.header_timeout:g} s "
                "(GATEWAY_CLIENT_HEADER_TIMEOUT)."
            )
        else:
            self.transport.close()  # nothing was asked: nothing to answer

    def _body_late(self) -> None:
        cycle = self.cycle
        if self.pipeline:
            # This request waits behind another one's answer (HTTP pipelining), with reading
            # paused: the wait is not the client's; time it again later.
            self._start("body", self.limits.body_timeout)
            return
        if cycle is None or cycle.response_started:
            # The application answered without the body (an auth or size error), or there
            # is none (an upgrade request): the rest of the body is not worth waiting for.
            self.transport.close()
            return
        # The application is waiting in ``receive()``: it gets a disconnect, and anything it
        # would still send is dropped (as after a real disconnect).
        cycle.disconnected = True
        cycle.message_event.set()
        self._reject(
            f"The request body did not arrive within {self.limits.body_timeout:g} s "
            "(GATEWAY_CLIENT_BODY_TIMEOUT)."
        )

    def _reject(self, message: str) -> None:
        """Write a 408 straight to the socket and close (the application is not involved)."""
        body = error_body(408, message, code="request_timeout")
        head = (
            b"HTTP/1.1 408 Request Timeout\r\n"
            b"content-type: application/json\r\n"
            b"content-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body)
        )
        self.transport.write(head + body)
        self.transport.close()
        logger.info("closed a slow client connection %s: %s", self.client, message)


class OneWriteAnswers:
    """The transport as one request's response cycle sees it: a response head that declares
    its length is held until the body's first write, and both go out in one system call.

    uvicorn writes the head when the application sends ``http.response.start`` and the body
    with ``http.response.body``: two ``send`` system calls per whole answer, and a client
    that wakes up for the head, reads it and waits again for the body. At one connection both
    sit between the upstream's answer and the client's last byte (issue 10: added latency).
    A whole answer is sent start-then-body without an await between them, so holding the
    head until that next write changes nothing else; should an application await between the
    two, the head goes out at the next turn of the event loop all the same (``call_soon``),
    and before a ``close``. A head without a length (a stream, chunked) and the interim
    ``100 Continue`` are written at once, as before.
    """

    __slots__ = ("_head", "_loop", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._started = False
        """The head was seen (every later write is the body)."""

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) < _JOIN_BELOW:
                self._transport.write(head + data)
            else:  # no copy of a large body: one writev (uvloop)
                self._transport.writelines((head, data))
            return
        if not self._started and not data.startswith(_CONTINUE):
            self._started = True
            if _LENGTH in data:
                self._head = data
                self._loop.call_soon(self._flush)
                return
        self._transport.write(data)

    def _flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatedTransport:
    """A connection's transport whose writes and close wait while the record journal holds
    frames for its group commit (see the module docstring), and go out right after them, in
    their order. A connection whose close waits is closing already (uvicorn then skips its
    keep-alive steps). Anything else is the transport's own."""

    __slots__ = ("_closing", "_group", "_transport")

    def __init__(self, transport: asyncio.Transport, group: GroupCommit) -> None:
        self._transport = transport
        self._group = group
        self._closing = False

    def write(self, data: bytes) -> None:
        if self._group.holding:
            self._group.after(self._write, data)
        else:
            self._transport.write(data)

    def writelines(self, data: Any) -> None:
        if self._group.holding:
            self._group.after(self._writelines, tuple(data))  # the caller may reuse its list
        else:
            self._transport.writelines(data)

    def close(self) -> None:
        if self._group.holding:
            self._closing = True
            self._group.after(self._transport.close)
        else:
            self._transport.close()

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def _write(self, data: bytes) -> None:
        if not self._transport.is_closing():  # the client left while the write waited
            self._transport.write(data)

    def _writelines(self, data: Any) -> None:
        if not self._transport.is_closing():
            self._transport.writelines(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


_CONTINUE = b"HTTP/1.1 100 "
_LENGTH = b"\r\ncontent-length: "
"""How uvicorn writes a declared length into a head (names lower-cased)."""
_JOIN_BELOW = 65536
"""A body shorter than this is copied after the head (one buffer: uvloop's fastest write)."""


def _refusal(limit: int) -> Callable[[Scope, Receive, Send], Any]:
    body = error_body(
        503,
        f"The gateway is serving its maximum of {limit} connections "
        "(GATEWAY_MAX_CONNECTIONS); retry shortly.",
        code="too_many_connections",
    )
    headers = [(b"retry-after", b"1"), (b"connection", b"close")]

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send_bytes(send, 503, body, headers, b"application/json")

    return refuse


def protocol_factory(limits: ClientLimits) -> type[asyncio.Protocol]:
    """The value for uvicorn's ``http=``: builds a :class:`GatewayHttpProtocol` per connection.

    A ``functools.partial`` rather than a generated subclass, so it pickles for uvicorn's
    worker processes; uvicorn only calls it (its annotation says ``type``, hence the cast).
    """
    return cast(type[asyncio.Protocol], functools.partial(GatewayHttpProtocol, limits=limits))
