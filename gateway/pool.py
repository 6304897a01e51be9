"""The upstream keep-alive pool: aiohttp's connector, minus connections the provider closed.

aiohttp reuses a pooled connection while its transport is open. When a provider closes an
idle keep-alive connection (its idle timeout, or right after an error answer) the FIN can
already be in the kernel while the event loop has not yet run the read callback that marks
the transport closed. A request handed that connection is written into a dead socket and
fails with ``ServerDisconnectedError``: a 502 for a request the provider never saw. aiohttp
retries such failures once, but only for idempotent methods (RFC 9112 §9.3.1), and every
completion is a POST.

So before a pooled connection is handed out, one non-blocking ``poll()`` asks the kernel
whether its socket is readable. An idle HTTP/1.1 connection has nothing to read: an
end-of-file, or bytes nobody asked for (an unprompted 408, a TLS close_notify), mean the
server is done with it. That connection is closed and the next pooled one (or a new one) is
taken instead. Nothing of the request has been written at that point, so this can never
send a request twice; a connection that dies after the request was written is not retried
here (the same check as urllib3's ``is_connection_dropped``).

Cost: one ``poll(2)`` per reused connection (about a microsecond, measured in the README);
new connections are not checked.
"""

from __future__ import annotations

import logging
import select

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

logger = logging.getLogger("gateway.pool")


def peer_closed(protocol: ResponseHandler) -> bool:
    """Whether an idle connection's socket has anything to read (EOF, error or stray bytes)."""
    transport = protocol.transport
    if transport is None or transport.is_closing():
        return True
    poller: select.poll | None = getattr(protocol, _POLLER, None)
    if poller is None:
        sock = transport.get_extra_info("socket")
        if sock is None:  # not a socket transport: nothing to ask the kernel
            return False
        # Made once per connection and kept on it: the socket, and so the poller's one
        # registration, live exactly as long as the connection (a keep-alive connection is
        # checked on every reuse: this saves two calls each time).
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        setattr(protocol, _POLLER, poller)
    return bool(poller.poll(0))


_POLLER = "_gateway_idle_poller"
"""The attribute of a pooled connection's protocol that keeps its poller."""


class UpstreamConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that never hands out a pooled connection the peer has closed."""

    async def _get(self, key: ConnectionKey, traces: list[Trace]) -> Connection | None:
        # ``_get`` is where aiohttp takes a connection from the pool (``connect()`` calls it
        # before opening a new one); it returns only pooled connections, so this loop ends
        # when the pool for ``key`` is empty. tests/test_pool.py pins this behaviour.
        while True:
            connection = await super()._get(key, traces)
            if connection is None:
                return None
            protocol = connection.protocol
            if protocol is None or not peer_closed(protocol):
                return connection
            logger.debug("dropped a pooled connection %s:%s had closed", key.host, key.port)
            connection.close()
