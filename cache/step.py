"""The cache as a step of a request: look up before the provider, replay a hit, tee a miss.

:func:`open_cache` runs once the request is authenticated and its body read (unified and
passthrough routes alike): it computes the slot keys, reads the bucket, sets
``Helicone-Cache: HIT|MISS`` and ``Helicone-Cache-Bucket-Idx``, and either returns the answer
to serve (:func:`replay` sends it) or leaves a :class:`CacheRequest` on the context. The relay
(:func:`gateway.relay.forward`) then stores the provider's answer through it: a whole answer
after it was sent, a stream through a :class:`CacheTee` stage and after its last event.

A hit is logged like any request, with the cache flag, ``cache_reference_id`` = the id of the
request the provider answered, zero cost, and what it saved (that request's latency; its cost
is computed by the log writer from the replayed answer): see ``logging_pipeline/record.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cache.entry import CachedAnswer, Origin
from cache.key import UNPARSED, canonical_body, request_digest, slot_keys
from cache.policy import CachePolicy
from cache.store import ResponseCache
from gateway.asgi import RawHeaders, Send, send_bytes
from gateway.sse import SSEFramer, UsageChunkFilter

if TYPE_CHECKING:
    from gateway.context import RequestContext

class CacheTee:
    """A relay stage that keeps a copy of the stream for the cache, up to the entry limit
    (past it the copy is dropped and the stream is not stored), passing every byte on."""

    __slots__ = ("chunks", "limit", "overflow", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.limit = limit
        self.size = 0
        self.overflow = False

    def feed(self, chunk: bytes) -> bytes:
        if not self.overflow:
            self.size += len(chunk)
            if self.size > self.limit:
                self.overflow = True
                self.chunks = []
            else:
                self.chunks.append(chunk)
        return chunk

    def flush(self) -> bytes:
        return b""


@dataclass(slots=True)
class CacheRequest:
    """One request's cache state between the lookup and the store."""

    cache: ResponseCache
    policy: CachePolicy
    keys: tuple[str, ...]
    free: tuple[int, ...] | None
    request_id: str
    started: float
    origin: dict[str, str] = field(default_factory=dict)
    tee: CacheTee | None = None

    def note_upstream(self, provider: str, model: str, target_url: str, wire: str) -> None:
        """Which provider answers (for the log of later hits)."""
        self.origin = {
            "provider": provider, "model": model, "target_url": target_url, "wire": wire,
        }

    @property
    def stores(self) -> bool:
        return self.policy.stores and (self.free is None or bool(self.free))

    def stream_tee(self) -> CacheTee | None:
        """A fresh tee for a streamed answer, when this request stores what it gets."""
        self.tee = CacheTee(self.cache.max_entry_bytes) if self.stores else None
        return self.tee

    async def save_whole(
        self, status: int, headers: RawHeaders, body: bytes, translated: bool
    ) -> None:
        """Store a whole answer (after it was sent): 2xx only, within the size limit."""
        if not self.stores or not 200 <= status < 300 or not self.cache.fits(len(body)):
            return
        await self._store(CachedAnswer(status, headers, body, self._origin(translated)))

    async def save_stream(
        self, status: int, headers: RawHeaders, strip_usage: bool, translated: bool
    ) -> None:
        """Store the stream the tee kept (after its last event was sent)."""
        tee = self.tee
        if tee is None or not 200 <= status < 300:
            return
        if tee.overflow:
            self.cache.fits(tee.size)  # counts it as too large
            return
        body = b"".join(tee.chunks)
        framer = SSEFramer()
        events = (*framer.feed(body), *framer.flush())
        answer = CachedAnswer(
            status, headers, body, self._origin(translated),
            events=tuple(len(event) for event in events), strip_usage=strip_usage,
        )
        await self._store(answer)

    def _origin(self, translated: bool) -> Origin:
        origin = self.origin
        return Origin(
            request_id=self.request_id,
            provider=origin.get("provider", ""),
            model=origin.get("model", ""),
            target_url=origin.get("target_url", ""),
            wire="openai" if translated else origin.get("wire", "openai"),
            latency_ms=round((time.perf_counter() - self.started) * 1000),
        )

    async def _store(self, answer: CachedAnswer) -> None:
        await self.cache.store(self.keys, self.free, answer.encode(), self.policy.ttl)


async def open_cache(
    ctx: RequestContext,
    cache: ResponseCache,
    policy: CachePolicy,
    endpoint: str,
    body: bytes,
    parsed: Any = UNPARSED,
) -> CachedAnswer | None:
    """The cache step (see the module docstring): the answer to replay, or None (then
    ``ctx.cache`` is set when the answer is to be stored)."""
    identity = ctx.identity
    assert identity is not None  # authenticated before the cache is consulted
    canonical = canonical_body(body, policy.ignore_keys, parsed)
    digest = request_digest(identity.org_id, policy.seed, endpoint, canonical)
    keys = slot_keys(digest, policy.bucket_size)
    lookup = await cache.lookup(keys, policy.read)
    ctx.cache_status(lookup.answer is not None, lookup.index)
    if lookup.answer is not None:
        return lookup.answer
    if policy.stores:
        ctx.cache = CacheRequest(cache, policy, keys, lookup.free, ctx.request_id, ctx.started)
    return None


async def replay(ctx: RequestContext, answer: CachedAnswer, send: Send) -> None:
    """Send a cached answer as the provider's was sent: whole, or event by event."""
    ctx.provider, ctx.model, ctx.status = answer.origin.provider, answer.origin.model, answer.status
    capture = ctx.capture
    if capture is not None:
        origin = answer.origin
        capture.provider = origin.provider
        capture.request_model = capture.request_model or origin.model
        capture.target_url = origin.target_url
        capture.wire = origin.wire
        capture.status = answer.status
        capture.response_headers = answer.headers  # the stored answer's, as relayed then
        capture.response_body = answer.body
        capture.is_stream = answer.is_stream
        capture.first_byte_at = time.perf_counter()
        capture.cache_reference_id = origin.request_id
        capture.cache_saved_latency_ms = origin.latency_ms
    headers = [*answer.headers, *ctx.base_headers]
    if not answer.is_stream:
        ctx.log()
        await send_bytes(send, answer.status, answer.body, headers)
        return
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    events = answer.event_chunks()
    if answer.strip_usage:
        usage = UsageChunkFilter()
        events = [usage.feed(event) for event in events]
        events.append(usage.flush())
    for event in events:
        if event:
            await send({"type": "http.response.body", "body": event, "more_body": True})
    ctx.log()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
