"""The staged relay: *open* an upstream attempt, then *forward* its answer through stages.

Opening (:meth:`gateway.upstream.UpstreamClient.open`) sends the request and waits for the
status and headers; nothing has reached the client yet, so the caller may still decide not
to use this answer (the routing issue's failover on a 429 or 5xx plugs in there). Forwarding
(:func:`forward`) commits: the answer goes to the client, whole or streamed, through an
explicit list of stages:

1. the recorder (the raw upstream bytes, for the request log and the meter's
   :class:`~gateway.context.AnswerTap`);
2. the translator (a provider's format into the client's, when they differ);
3. the cache tee (a copy of the stream in the client's format for the response cache, when
   the request stores its answer: cache/step.py); before the usage strip, so that the stored
   stream keeps the usage chunk for the log of later hits (their replay strips it again);
4. the usage strip (the usage chunk the gateway asked for on the client's behalf);
5. force-format (whole events per chunk, ``Helicone-Stream-Force-Format``).

A whole answer is stored in the cache after it was sent; a stream after its last event, if it
ended normally (not cut by the upstream or the client). Every stage that needs events uses the one
framer of :mod:`gateway.sse`. A stage never holds back what it could send: whatever an
upstream chunk completes goes out before the next chunk is read (tests/test_relay.py shows
it per stage). A translator that can hand out its output one upstream event at a time
(``feed_each``, :class:`gateway.translate.EventTranslator`) does: the first event a network read
completes is sent before the others in it are translated, and those follow in one more send,
so the first token of an answer read whole does not wait for the whole answer's
translation.

:func:`forward` reads the answer through the small :class:`UpstreamAnswer` protocol that an
aiohttp response satisfies, so tests can drive it with an in-memory upstream double.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

import aiohttp

from gateway.asgi import RawHeaders, Receive, Send
from gateway.context import RequestContext
from gateway.sse import EventChunker, UsageChunkFilter

logger = logging.getLogger("gateway.relay")

_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
        b"content-encoding",
        b"date",
        b"server",
        b"set-cookie",
    }
)
"""Response headers never relayed: hop-by-hop (RFC 9110 §7.6.1), what the two sides compute
for themselves (length; encoding, since aiohttp decompresses), and cookies."""
_CONTENT_TYPE = b"content-type"
_JSON = b"application/json"
_EVENT_STREAM = b"text/event-stream"
_AWS_EVENT_STREAM = "application/vnd.amazon.eventstream"
"""Bedrock's binary stream framing: streamed through like SSE, never read whole."""


class Stage(Protocol):
    """One step of a streamed answer: bytes in, bytes out (maybe ``b""``), in order."""

    def feed(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes:
        """The end of the stream: whatever the stage still holds (and closing events)."""
        ...


class Translation(Protocol):
    """Turns a provider's answer into the format the client asked for."""

    def whole(self, status: int, body: bytes) -> bytes:
        """A complete answer (success or error) in the client's format (JSON)."""
        ...

    def stream(self) -> Stage:
        """A fresh translator stage for one streamed answer."""
        ...


class UpstreamContent(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


class UpstreamAnswer(Protocol):
    """What :func:`forward` reads of an opened upstream answer (an aiohttp response)."""

    @property
    def status(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]: ...

    @property
    def content(self) -> UpstreamContent: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class Recorder:
    """The first stage: keeps the raw upstream bytes for the capture (and the first-byte
    time), passing them on unchanged."""

    __slots__ = ("chunks", "first_byte_at")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.first_byte_at: float | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        self.chunks.append(chunk)
        return chunk

    def flush(self) -> bytes:
        return b""

    def body(self) -> bytes:
        return b"".join(self.chunks)


def response_headers(
    raw: tuple[tuple[bytes, bytes], ...], content_type: bytes | None = None
) -> RawHeaders:
    """The upstream's headers fit for the client; ``content_type`` replaces the upstream's
    (a translated answer)."""
    out: RawHeaders = []
    for name, value in raw:
        lower = name.lower()
        if lower in _DROP or (content_type is not None and lower == _CONTENT_TYPE):
            continue
        out.append((lower, value))
    if content_type is not None:
        out.append((_CONTENT_TYPE, content_type))
    return out


def stream_stages(
    ctx: RequestContext, translation: Translation | None, *, sse: bool = True
) -> list[Stage]:
    """The stages after the recorder, in order, for this request. ``sse``: the upstream
    streams server-sent events (an AWS event stream is binary: relayed as it is unless
    translated, since no SSE stage can read it)."""
    stages: list[Stage] = []
    if translation is not None:
        stages.append(translation.stream())  # emits whole events: no force-format needed
    elif not sse:
        return stages
    if ctx.cache is not None and (tee := ctx.cache.stream_tee()) is not None:
        stages.append(tee)
    if ctx.strip_usage:
        stages.append(UsageChunkFilter())
    elif ctx.force_format and translation is None:
        stages.append(EventChunker())
    return stages


async def forward(
    ctx: RequestContext,
    answer: UpstreamAnswer,
    receive: Receive,
    send: Send,
    translation: Translation | None = None,
    upstream_started: float | None = None,
) -> None:
    """Commit ``answer`` to the client: whole (read, translated, sent with
    ``X-Gateway-Overhead-Ms``) or, for ``text/event-stream`` and AWS event streams, streamed
    through the stages."""
    content_type = answer.content_type
    ctx.status = answer.status
    if upstream_started is None:
        upstream_started = ctx.started
    if content_type == "text/event-stream" or content_type == _AWS_EVENT_STREAM:
        if upstream_started is not None:
            ctx.overhead_ms = (upstream_started - ctx.started) * 1000
        await _forward_stream(ctx, answer, receive, send, translation, upstream_started)
        return
    payload = await answer.read()
    upstream_elapsed = time.perf_counter() - upstream_started
    ctx.upstream_seconds += upstream_elapsed
    capture = ctx.capture
    if capture is not None:
        capture.status = answer.status
        capture.response_headers = answer.raw_headers  # by reference: the writer reads them
        capture.response_body = payload
    tap = ctx.tap
    if tap is not None:
        tap.status = answer.status
        tap.body = payload
    if translation is not None:
        payload = translation.whole(answer.status, payload)
    out = response_headers(answer.raw_headers, _JSON if translation is not None else None)
    cache = ctx.cache
    stored_headers = list(out) if cache is not None else out
    out.extend(ctx.base_headers)
    overhead_ms = ctx.overhead_ms = (time.perf_counter() - ctx.started - upstream_elapsed) * 1000
    out.append((b"x-gateway-overhead-ms", f"{overhead_ms:.3f}".encode()))
    out.append((b"content-length", b"%d" % len(payload)))
    if capture is not None:  # without one there is nothing to journal or trace
        ctx.log()
    # send_bytes, inlined: ``out`` is this function's own list, so neither its copy nor one
    # more coroutine per request is needed
    await send({"type": "http.response.start", "status": answer.status, "headers": out})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
    if cache is not None:
        await cache.save_whole(answer.status, stored_headers, payload, translation is not None)


async def _forward_stream(
    ctx: RequestContext,
    answer: UpstreamAnswer,
    receive: Receive,
    send: Send,
    translation: Translation | None,
    upstream_started: float,
) -> None:
    """Relay a streamed answer as it arrives; stop (and drop upstream) if the client leaves."""
    headers = response_headers(
        answer.raw_headers, _EVENT_STREAM if translation is not None else None
    )
    stored_headers = list(headers)
    headers.extend(ctx.base_headers)
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    capture = ctx.capture
    recorder: Recorder | None = None
    if capture is not None:
        capture.status = answer.status
        capture.response_headers = answer.raw_headers
        capture.is_stream = True
        recorder = Recorder()
    if ctx.tap is not None:
        ctx.tap.status = answer.status
        ctx.tap.streamed = True
        recorder = recorder or Recorder()
    stages = stream_stages(ctx, translation, sse=answer.content_type != _AWS_EVENT_STREAM)
    each: Callable[[bytes], Iterable[bytes]] | None = None
    if translation is not None:
        each = getattr(stages[0], "feed_each", None)
    after = stages[1:] if each is not None else stages

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
    complete = True
    try:
        try:
            async for chunk in answer.content.iter_any():
                if ctx.first_byte_at is None:
                    ctx.first_byte_at = time.perf_counter()
                if recorder is not None:
                    recorder.feed(chunk)
                if each is not None:
                    await _send_each(each(chunk), after, send)
                    continue
                for stage in stages:
                    chunk = stage.feed(chunk)
                    if not chunk:
                        break
                else:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Headers are gone already: the only honest thing left is to end the stream.
            logger.info("upstream stream ended early: %r", exc)
            complete = False
        tail = _flush(stages)
        if tail:
            await send({"type": "http.response.body", "body": tail, "more_body": True})
        _record(ctx, recorder)
        ctx.log()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if ctx.cache is not None and complete:
            await ctx.cache.save_stream(
                answer.status, stored_headers, ctx.strip_usage, translation is not None
            )
    except asyncio.CancelledError:
        if not disconnected:
            raise
        pump.uncancel()
        # Closing (not releasing) the response drops the upstream connection mid-stream.
        answer.close()
    finally:
        ctx.upstream_seconds += time.perf_counter() - upstream_started
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        _record(ctx, recorder)


async def _send_each(pieces: Iterable[bytes], stages: list[Stage], send: Send) -> None:
    """A translator's output for one upstream chunk, ``pieces`` one upstream event each,
    through the later ``stages``: the first piece that comes out is sent at once, the rest
    (made after that send) joined into one more, so a read of many events costs two sends."""
    pieces = iter(pieces)
    for piece in pieces:
        for stage in stages:
            piece = stage.feed(piece)
            if not piece:
                break
        else:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            break
    rest = b"".join(pieces)
    if rest:
        for stage in stages:
            rest = stage.feed(rest)
            if not rest:
                return
        await send({"type": "http.response.body", "body": rest, "more_body": True})


def _flush(stages: list[Stage]) -> bytes:
    """End of stream: each stage's remainder passes through the stages after it."""
    out = b""
    for stage in stages:
        if out:
            out = stage.feed(out)
        out += stage.flush()
    return out


def _record(ctx: RequestContext, recorder: Recorder | None) -> None:
    if recorder is None:
        return
    capture, tap = ctx.capture, ctx.tap
    if capture is not None:
        capture.response_body = recorder.body()
        capture.first_byte_at = recorder.first_byte_at
    if tap is not None:
        tap.body = capture.response_body if capture is not None else recorder.body()
