"""The upstream side of a proxied request: one pooled client, and relaying its answer.

One ``aiohttp`` session (keep-alive pool) serves every request of a process; it is created at
startup and closed at shutdown. aiohttp was chosen by measurement: on this class of machine
httpx 0.28's pool collapses under concurrency (see the README's performance section).

Relaying rules:

* non-streaming answers are read whole, then sent with ``X-Gateway-Overhead-Ms``;
* ``text/event-stream`` answers are relayed chunk by chunk as they arrive (never buffered);
  a client disconnect cancels the upstream request; an upstream failure after the first byte
  ends the stream cleanly;
* a failure before any upstream answer becomes a 502 (unreachable) or 504 (timeout), whose
  message names the provider, never the URL (an operator's base URL may name internal
  hosts, and error bodies are returned to the caller and stored); the URL, without its
  query string, goes to the log at info level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
from yarl import URL

from gateway.asgi import RawHeaders, Receive, Send, send_bytes
from gateway.auth import carries_key
from gateway.context import HELICONE_PREFIX, RequestContext
from gateway.errors import GatewayError
from gateway.pool import UpstreamConnector
from gateway.sse import EventChunker, UsageChunkFilter

logger = logging.getLogger("gateway.upstream")

# Never forwarded in either direction: hop-by-hop (RFC 9110 §7.6.1) plus headers the two
# sides compute for themselves (length, encoding after aiohttp decompresses, host).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
_RESPONSE_DROP = _HOP_BY_HOP | {"content-encoding", "date", "server", "set-cookie"}
_REQUEST_DROP = _HOP_BY_HOP | {"accept-encoding", "cookie", "authorization"}


def upstream_request_headers(
    headers: dict[str, str], authorization: str | None, gateway_key: str | None = None
) -> dict[str, str]:
    """Client headers fit to send upstream.

    ``Helicone-*`` control headers, hop-by-hop headers and the client's ``Authorization``
    are dropped; ``authorization`` (a provider credential chosen by the caller) is set.
    A header whose value is the caller's ``gateway_key`` (``x-api-key: <key>``,
    ``api-key: Bearer <key>``…) is dropped too: the gateway key never reaches a provider.
    Cost: one substring search per header value (C speed), a parse only on a hit.
    """
    out = {
        name: value
        for name, value in headers.items()
        if name not in _REQUEST_DROP
        and not name.startswith(HELICONE_PREFIX)
        and not (gateway_key and gateway_key in value and carries_key(value, gateway_key))
    }
    if authorization:
        out["authorization"] = authorization
    return out


def _response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> RawHeaders:
    return [
        (name.lower(), value)
        for name, value in raw
        if name.lower().decode("latin-1") not in _RESPONSE_DROP
    ]


class UpstreamClient:
    """The process-wide pooled HTTP client to providers."""

    def __init__(
        self, connect_timeout: float, read_timeout: float, max_connections: int
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = UpstreamConnector(
            limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not called")
        return self._session

    async def relay(
        self,
        ctx: RequestContext,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | None,
        receive: Receive,
        send: Send,
        provider: str,
    ) -> None:
        """Send the request upstream and relay the answer to the client.

        ``url`` is sent as it is: the same object the caller checked.
        """
        upstream_started = time.perf_counter()
        try:
            async with self.session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if response.content_type == "text/event-stream":
                    await _relay_stream(ctx, response, receive, send)
                    return
                payload = await response.read()
                upstream_elapsed = time.perf_counter() - upstream_started
                capture = ctx.capture
                if capture is not None:
                    capture.status = response.status
                    capture.response_body = payload
                out = _response_headers(response.raw_headers)
                out.extend(ctx.base_headers)
                overhead_ms = (time.perf_counter() - ctx.started - upstream_elapsed) * 1000
                out.append((b"x-gateway-overhead-ms", f"{overhead_ms:.3f}".encode()))
                ctx.log()
                await send_bytes(send, response.status, payload, out)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            logger.info(
                "upstream %s timed out: %s %s: %r", provider, method, url.with_query(None), exc
            )
            raise GatewayError(
                504, f"Upstream provider {provider!r} timed out.", code="upstream_timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            logger.info(
                "upstream %s unreachable: %s %s: %r", provider, method, url.with_query(None), exc
            )
            raise GatewayError(
                502,
                f"Upstream provider {provider!r} is unreachable ({exc.__class__.__name__}).",
                code="upstream_unreachable",
            ) from exc


async def _relay_stream(
    ctx: RequestContext, response: aiohttp.ClientResponse, receive: Receive, send: Send
) -> None:
    """Relay an SSE answer as it arrives; stop (and drop upstream) if the client leaves."""
    headers = _response_headers(response.raw_headers)
    headers.extend(ctx.base_headers)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    capture = ctx.capture
    recorded: list[bytes] | None = None
    if capture is not None:
        capture.status = response.status
        capture.is_stream = True
        recorded = []

    pump = asyncio.current_task()
    assert pump is not None
    disconnected = False

    async def watch_disconnect() -> None:
        nonlocal disconnected
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                pump.cancel()
                return

    watcher = asyncio.create_task(watch_disconnect())
    chunker: EventChunker | None = None
    if ctx.strip_usage:
        chunker = UsageChunkFilter()
    elif ctx.force_format:
        chunker = EventChunker()
    try:
        try:
            async for chunk in response.content.iter_any():
                if recorded is not None:
                    if not recorded and capture is not None:
                        capture.first_byte_at = time.perf_counter()
                    recorded.append(chunk)
                if chunker is not None:
                    chunk = chunker.feed(chunk)
                    if not chunk:
                        continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if chunker is not None:
                tail = chunker.flush()
                if tail:
                    await send({"type": "http.response.body", "body": tail, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Headers are gone already: the only honest thing left is to end the stream.
            logger.info("upstream stream ended early: %r", exc)
        if capture is not None and recorded is not None:
            capture.response_body = b"".join(recorded)
        ctx.log()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not disconnected:
            raise
        pump.uncancel()
        # Closing (not releasing) the response drops the upstream connection mid-stream.
        response.close()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if capture is not None and recorded is not None:
            capture.response_body = b"".join(recorded)
