"""The upstream side of a proxied request: one pooled client, and opening an attempt.

One ``aiohttp`` session (keep-alive pool) serves every request of a process; it is created at
startup and closed at shutdown. aiohttp was chosen by measurement: on this class of machine
httpx 0.28's pool collapses under concurrency (see the README's performance section).

:meth:`UpstreamClient.open` is the staged relay's *open* step: the request is sent and the
answer's status and headers are in, nothing has reached the client. A failure before the
answer becomes a 502 (unreachable) or 504 (timeout), whose message names the provider, never
the URL (an operator's base URL may name internal hosts, and error bodies are returned to the
caller and stored); the URL, without its query string, goes to the log at info level.
:meth:`UpstreamClient.relay` opens and commits at once (:func:`gateway.relay.forward`), which
is every route's case until failover decides between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType

import aiohttp
from yarl import URL

from gateway.asgi import Receive, Send
from gateway.auth import carries_key
from gateway.context import HELICONE_PREFIX, RequestContext
from gateway.errors import GatewayError
from gateway.pool import UpstreamConnector
from gateway.relay import Translation, forward
from gateway.retry import RetryPolicy, retryable

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

    def open(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | None,
        provider: str,
    ) -> _Opening:
        """Open one upstream attempt (``async with``): send, and give the answer once its
        status and headers are in, before anything reaches the client (the staged relay's
        *open* step).

        ``url`` is sent as it is: the same object the caller checked. A failure before the
        answer (or while its body is read, inside the block) becomes a 502 or 504 naming the
        provider, never the URL.
        """
        return _Opening(
            self.session.request(method, url, data=body, headers=headers, allow_redirects=False),
            provider, method, url,
        )  # fmt: skip

    def attempt(
        self,
        ctx: RequestContext,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | None,
        provider: str,
    ) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """:meth:`open`, plus the request's retry policy (``Helicone-Retry-*``, gateway/retry.py):
        a 429 or 5xx answer, or an unreachable or timed-out provider, is sent again after a
        backoff, up to the policy's number of retries; the last answer is yielded whatever it
        is. Retries happen before anything reaches the client. An exception raised inside the
        block is never retried (the answer may have been committed)."""
        policy = ctx.options.retry
        if policy is None:  # the usual case: one try, no generator or exit stack around it
            return _Opening(  # :meth:`open`, inlined: one call fewer per request
                self.session.request(
                    method, url, data=body, headers=headers, allow_redirects=False
                ),
                provider, method, url,
            )  # fmt: skip
        return self._retrying(ctx, policy, method, url, headers, body, provider)

    @contextlib.asynccontextmanager
    async def _retrying(
        self,
        ctx: RequestContext,
        policy: RetryPolicy,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | None,
        provider: str,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        tries = 0
        while True:
            stack = contextlib.AsyncExitStack()
            can_retry = tries < policy.retries
            try:
                response = await stack.enter_async_context(
                    self.open(method, url, headers, body, provider)
                )
            except GatewayError as exc:
                await stack.aclose()
                if not can_retry or exc.status not in (502, 504):
                    raise
                retry_after = None
            else:
                if not can_retry or not retryable(response.status):
                    break
                async with stack:
                    retry_after = response.headers.get("retry-after")
                    await response.read()  # a small error body: the connection stays pooled
            await asyncio.sleep(policy.delay(tries, retry_after))
            tries += 1
            ctx.retries = tries
        async with stack:
            yield response

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
        translation: Translation | None = None,
    ) -> None:
        """Open one attempt (with the request's retries) and forward its answer to the client:
        open, then commit."""
        upstream_started = time.perf_counter()
        async with self.attempt(ctx, method, url, headers, body, provider) as response:
            await forward(ctx, response, receive, send, translation, upstream_started)


class _Opening:
    """The ``async with`` of :meth:`UpstreamClient.open`: aiohttp's request context, with its
    failures named for the client. A class rather than a generator-based context manager:
    it is entered on every request, and this costs a few microseconds less."""

    __slots__ = ("_method", "_provider", "_request", "_url")

    def __init__(
        self,
        request: aiohttp.client._RequestContextManager,
        provider: str,
        method: str,
        url: URL,
    ) -> None:
        self._request = request
        self._provider = provider
        self._method = method
        self._url = url

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            return await self._request.__aenter__()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._named(exc) from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._request.__aexit__(exc_type, exc, tb)
        if isinstance(exc, (TimeoutError, aiohttp.ClientError)):  # reading the answer failed
            raise self._named(exc) from exc

    def _named(self, exc: TimeoutError | aiohttp.ClientError) -> GatewayError:
        """A timeout as a 504, a connection failure as a 502, naming the provider (the URL
        only in the server's log)."""
        provider, method, url = self._provider, self._method, self._url
        if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
            logger.info(
                "upstream %s timed out: %s %s: %r", provider, method, url.with_query(None), exc
            )
            return GatewayError(
                504, f"Upstream provider {provider!r} timed out.", code="upstream_timeout"
            )
        logger.info(
            "upstream %s unreachable: %s %s: %r", provider, method, url.with_query(None), exc
        )
        return GatewayError(
            502,
            f"Upstream provider {provider!r} is unreachable ({exc.__class__.__name__}).",
            code="upstream_unreachable",
        )
