"""Sustained concurrent streams: time to first token and the gap between chunks, per stream.

wrk sees a response as one latency; a streamed answer is judged by when its first token comes
and whether the tokens keep coming at the provider's pace. So the capacity bench drives
streams with this client: ``concurrency`` keep-alive connections, each sending the streamed
chat request again as soon as the previous stream ended, for ``duration_s`` (a stream started
before the end is read to its end). Connection starts are spread over ``spread_s`` (one
stream's length, by default) so the streams are evenly out of phase, as real traffic is,
instead of all asking at the same instant.

For every stream it records the time from sending the request to the first SSE event (TTFT)
and the time between consecutive events as they arrive (*gaps*; ``data: [DONE]`` is not an
event here). Events are counted by their ``\\n\\n`` terminator in the raw bytes, so the
client does no parsing beyond the response head: on uvloop it costs a few microseconds per
event, which is what lets it keep hundreds of streams without becoming their bottleneck. It
runs in the bench's own process; the same client against the upstream directly is the control
(a stall there would be the client's or the machine's, not the gateway's).

A *stall* (:func:`stall_reasons`) is a gap over ``STALL_GAP_MS`` (100 ms, five times the
upstream's 20 ms interval), a first event more than ``STALL_GAP_MS`` later than the
upstream's own delay, or a stream that failed or did not end.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.load import RequestSpec, percentile
from bench.procs import HOST

STALL_GAP_MS = 100.0
"""A gap between chunks (or a first chunk's delay beyond the upstream's) over this is a stall."""
_DONE = b"[DONE]"
_END = b"\r\n0\r\n\r\n"


@dataclass
class StreamSample:
    """One stream as the client saw it."""

    ttft_s: float = -1.0
    gaps_s: list[float] = field(default_factory=list)
    events: int = 0
    complete: bool = False
    error: str = ""


@dataclass
class StreamLevel:
    """All streams of one concurrency level, reduced to what the report needs."""

    label: str
    concurrency: int
    duration_s: float
    streams: int
    complete: int
    errors: int
    error_samples: list[str]
    ttft_ms: dict[str, float]
    gap_ms: dict[str, float]
    events_per_stream: dict[str, float]
    stalls: dict[str, int]
    """Stalled streams by reason (a stream counts once, under its first reason)."""

    @property
    def stalled(self) -> int:
        return sum(self.stalls.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "duration_s": self.duration_s,
            "streams": self.streams,
            "complete": self.complete,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "ttft_ms": self.ttft_ms,
            "gap_ms": self.gap_ms,
            "events_per_stream": self.events_per_stream,
            "stalls": self.stalls,
            "stalled": self.stalled,
        }


def stall_reasons(sample: StreamSample, delay_ms: float, limit_ms: float = STALL_GAP_MS) -> str:
    """Why ``sample`` counts as stalled (``""``: it did not)."""
    if sample.error:
        return "error"
    if not sample.complete:
        return "incomplete"
    if sample.ttft_s * 1000 > delay_ms + limit_ms:
        return "first_chunk"
    if sample.gaps_s and max(sample.gaps_s) * 1000 > limit_ms:
        return "gap"
    return ""


def _percentiles(values_s: list[float]) -> dict[str, float]:
    ordered = sorted(v * 1000 for v in values_s)
    out = {f"p{p}": percentile(ordered, p) for p in (50, 90, 99)}
    out["p999"] = percentile(ordered, 99.9)
    out["max"] = ordered[-1] if ordered else float("nan")
    return out


def summarize(
    label: str, concurrency: int, duration_s: float, samples: list[StreamSample], delay_ms: float
) -> StreamLevel:
    """Pool every stream's TTFT and gaps into percentiles (ms) and count the stalls."""
    stalls: dict[str, int] = {}
    for sample in samples:
        reason = stall_reasons(sample, delay_ms)
        if reason:
            stalls[reason] = stalls.get(reason, 0) + 1
    errors = [s.error for s in samples if s.error]
    events = sorted(float(s.events) for s in samples if s.complete)
    return StreamLevel(
        label=label,
        concurrency=concurrency,
        duration_s=duration_s,
        streams=len(samples),
        complete=sum(s.complete for s in samples),
        errors=len(errors),
        error_samples=sorted(set(errors))[:5],
        ttft_ms=_percentiles([s.ttft_s for s in samples if s.ttft_s >= 0]),
        gap_ms=_percentiles([g for s in samples for g in s.gaps_s]),
        events_per_stream={
            "min": events[0] if events else float("nan"),
            "max": events[-1] if events else float("nan"),
        },
        stalls=stalls,
    )


class _StreamProtocol(asyncio.Protocol):
    """One keep-alive connection reading one stream at a time (chunked SSE responses)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[StreamSample] | None = None
        self._reset()

    def _reset(self) -> None:
        self.buf = bytearray()
        self.scan = -1  # where the body starts once the head is read
        self.sent_at = 0.0
        self.last_event = 0.0
        self.done = False
        self.sample = StreamSample()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, raw: bytes) -> asyncio.Future[StreamSample]:
        self._reset()
        self.finished = asyncio.get_running_loop().create_future()
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(raw)
        return self.finished

    def _finish(self, error: str = "") -> None:
        if self.finished is not None and not self.finished.done():
            self.sample.error = error
            self.sample.complete = not error and self.done
            self.finished.set_result(self.sample)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        if self.scan < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:12]).split(b" ", 2)
            if len(status) < 2 or status[1] != b"200":
                self._finish(
                    f"status {status[1].decode(errors='replace') if len(status) > 1 else '?'}"
                )
                assert self.transport is not None
                self.transport.close()
                return
            self.scan = end + 4
        while (end := self.buf.find(b"\n\n", self.scan)) >= 0:
            self.scan = end + 2
            if self.buf[max(0, end - len(_DONE)) : end] == _DONE:
                self.done = True
                continue
            sample = self.sample
            if sample.events == 0:
                sample.ttft_s = now - self.sent_at
            else:
                sample.gaps_s.append(now - self.last_event)
            sample.events += 1
            self.last_event = now
        if self.done and self.buf.endswith(_END):
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("" if self.done else f"connection lost ({exc or 'closed by server'})")
        if not self.closed.done():
            self.closed.set_result(None)


def raw_stream_request(spec: RequestSpec, port: int) -> bytes:
    """The HTTP/1.1 request bytes of ``spec`` (keep-alive)."""
    body = spec.body.encode()
    headers = {
        "Host": f"{HOST}:{port}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "Content-Length": str(len(body)),
        **spec.headers,
    }
    head = f"POST {spec.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


async def _connection(
    port: int,
    raw: bytes,
    start_at: float,
    deadline: float,
    timeout_s: float,
    samples: list[StreamSample],
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    proto: _StreamProtocol | None = None
    while time.perf_counter() < deadline:
        if proto is None or proto.closed.done():
            try:
                _, proto = await loop.create_connection(_StreamProtocol, HOST, port)
            except OSError as exc:
                samples.append(StreamSample(error=f"connect: {exc.strerror or exc}"))
                await asyncio.sleep(0.05)
                continue
        try:
            sample = await asyncio.wait_for(proto.send(raw), timeout_s)
        except TimeoutError:
            sample = proto.sample
            sample.error = f"no end within {timeout_s:g} s"
            if proto.transport is not None:
                proto.transport.close()
        samples.append(sample)
        if sample.error and proto.transport is not None:
            proto.transport.close()
    if proto is not None and proto.transport is not None:
        proto.transport.close()


async def _run(
    port: int,
    spec: RequestSpec,
    concurrency: int,
    duration_s: float,
    spread_s: float,
    timeout_s: float,
) -> list[StreamSample]:
    raw = raw_stream_request(spec, port)
    samples: list[StreamSample] = []
    begin = time.perf_counter()
    deadline = begin + duration_s
    await asyncio.gather(
        *(
            _connection(port, raw, begin + spread_s * i / concurrency, deadline, timeout_s, samples)
            for i in range(concurrency)
        )
    )
    return samples


def run_streams(
    label: str,
    port: int,
    spec: RequestSpec,
    concurrency: int,
    duration_s: float,
    *,
    delay_ms: float,
    spread_s: float,
    timeout_s: float = 30.0,
) -> StreamLevel:
    """Drive ``concurrency`` sustained streams for ``duration_s`` and summarize them."""
    coro = _run(port, spec, concurrency, duration_s, spread_s, timeout_s)
    try:
        import uvloop
    except ImportError:
        samples = asyncio.run(coro)
    else:
        samples = uvloop.run(coro)
    return summarize(label, concurrency, duration_s, samples, delay_ms)
