"""The bench's reference: the least a Python proxy must do to forward a chat completion.

``python -m bench.forwarder --port P --upstream URL`` serves a pure-ASGI app on the server the
gateway runs on (uvicorn, uvloop + httptools, one worker, access log off), with the gateway's
upstream client (one ``aiohttp.ClientSession`` over a keep-alive ``TCPConnector`` with the
gateway's limits and timeouts). For every ``POST`` it reads the body, parses it with orjson
(the gateway parses every body it forwards), sends the bytes unchanged to ``URL`` + the same
path, and relays status, headers and body — an SSE answer chunk by chunk as it arrives, as
the gateway does. Nothing else: no auth, routing, logging, limits or disconnect handling.

So its throughput and its latency over the direct upstream are the speed limit of Python on
this machine for the gateway's job, and the bench reports the gateway as a fraction of them
(issue 10's performance bar). It is written for the bench and must not grow features: every
one added here would lower the bar the gateway is held to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Hop-by-hop headers and those each side computes itself, as the gateway drops them.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
    }
)
_REQUEST_DROP = _HOP_BY_HOP | {b"accept-encoding"}
_RESPONSE_DROP = _HOP_BY_HOP | {b"content-encoding", b"date", b"server"}


class Forwarder:
    """The ASGI app: ``upstream`` is an origin (``http://host:port``), paths are kept."""

    def __init__(
        self,
        upstream: str,
        *,
        max_connections: int = 1000,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
    ) -> None:
        # The defaults are the gateway's (GATEWAY_UPSTREAM_* settings).
        self.upstream = upstream.rstrip("/")
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The session is made inside the server's loop, like the gateway's."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300
                    ),
                    timeout=self._timeout,
                    auto_decompress=True,
                    skip_auto_headers=("User-Agent",),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST" or self._session is None:
            await _answer(send, 405, b'{"error":"POST only"}')
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            await _answer(send, 400, b'{"error":"the body is not JSON"}')
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name not in _REQUEST_DROP
        }
        url = self.upstream + scope["path"]
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                out = [
                    (name.lower(), value)
                    for name, value in response.raw_headers
                    if name.lower() not in _RESPONSE_DROP
                ]
                if response.content_type == "text/event-stream":
                    await send({"type": "http.response.start", "status": response.status,
                                "headers": out})  # fmt: skip
                    async for chunk in response.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            await _answer(send, 502, orjson.dumps({"error": repr(exc)}))
            return
        out.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.forwarder",
        description="Minimal reference forwarder for the bench (no features).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--upstream", required=True, help="origin to forward to, e.g. http://127.0.0.1:8080"
    )
    args = parser.parse_args(argv)

    import uvicorn  # here, so importing the module (tests, the bench) starts nothing

    uvicorn.run(
        Forwarder(args.upstream),
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
