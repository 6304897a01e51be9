"""Streaming time-to-first-byte: sequential requests on one keep-alive raw socket.

For streaming, what a user feels is how long the first token takes, so the bench times from
sending the request to the first byte of the response *body* (after the header block), not
the whole response. A raw socket with a tiny HTTP/1.1 reader adds only microseconds of its
own; an HTTP client library would add more noise than the overhead being measured.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import RequestSpec, percentile
from bench.procs import HOST, BenchError


@dataclass
class Exchange:
    """One request/response: status, the two timings, the decoded body and the headers
    (lower-cased names)."""

    status: int
    ttfb_s: float
    total_s: float
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class RawHttpClient:
    """A minimal keep-alive HTTP/1.1 client (Content-Length and chunked bodies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=10)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf.clear()
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self) -> float:
        """Read once into the buffer; returns the time the data arrived."""
        assert self.sock is not None
        data = self.sock.recv(65536)
        now = time.perf_counter()
        if not data:
            raise ConnectionError("connection closed mid-response")
        self.buf += data
        return now

    def request(self, raw: bytes) -> Exchange:
        sock = self._connect()
        started = time.perf_counter()
        sock.sendall(raw)
        arrived = started
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            arrived = self._recv()
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        if length != 0:
            while not self.buf:
                arrived = self._recv()
        first_byte = arrived
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif length >= 0:
            while len(self.buf) < length:
                self._recv()
            body = bytes(self.buf[:length])
            del self.buf[:length]
        else:
            body = self._read_to_close()
        finished = time.perf_counter()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Exchange(status, first_byte - started, finished - started, body, headers)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                self._recv()
            size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
            del self.buf[: eol + 2]
            while len(self.buf) < size + 2:
                self._recv()
            body += self.buf[:size]
            del self.buf[: size + 2]
            if size == 0:
                return bytes(body)

    def _read_to_close(self) -> bytes:
        try:
            while True:
                self._recv()
        except ConnectionError:
            pass
        body = bytes(self.buf)
        self.close()
        return body


@dataclass
class TtfbResult:
    """Percentiles (ms) of time to first body byte and to the full response."""

    label: str
    requests: int
    ttfb_ms: dict[str, float]
    total_ms: dict[str, float]
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    sent: int = 0
    """Requests sent, warm-ups included."""
    answered: int = 0
    """Of those, the ones that got a response (any status)."""
    ttfb_samples_s: list[float] = field(default_factory=list, repr=False)
    total_samples_s: list[float] = field(default_factory=list, repr=False)
    """The measured timings themselves, kept so that several rounds can be pooled
    (:func:`pool_ttfb`); left out of the JSON."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["ttfb_samples_s"], data["total_samples_s"]
        return data


def raw_request(port: int, spec: RequestSpec) -> bytes:
    """The exact bytes of one HTTP/1.1 POST, built once and resent."""
    body = spec.body.encode()
    lines = [
        f"POST {spec.path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in spec.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    stats = {f"p{p}": percentile(ms, p) for p in (50, 90, 99)}
    stats["mean"] = sum(ms) / len(ms) if ms else float("nan")
    stats["max"] = ms[-1] if ms else float("nan")
    return stats


def measure_ttfb(
    label: str, port: int, spec: RequestSpec, count: int, warmup: int = 20
) -> TtfbResult:
    """``warmup`` unmeasured then ``count`` measured sequential requests on one connection.

    A response counts as an error unless it is a 200 whose body ends the SSE stream with
    ``data: [DONE]``; errors are left out of the percentiles and reported.
    """
    raw = raw_request(port, spec)
    client = RawHttpClient(port)
    ttfb: list[float] = []
    total: list[float] = []
    errors: list[str] = []
    answered = 0
    try:
        for i in range(warmup + count):
            try:
                ex = client.request(raw)
            except (OSError, ValueError, IndexError) as exc:
                client.close()
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            answered += 1
            if ex.status != 200 or b"data: [DONE]" not in ex.body:
                errors.append(f"status {ex.status}: {ex.body[:200]!r}")
                continue
            if i >= warmup:
                ttfb.append(ex.ttfb_s)
                total.append(ex.total_s)
    finally:
        client.close()
    if not ttfb:
        raise BenchError(f"{label}: every streaming request failed, e.g. {errors[:1]}")
    return TtfbResult(
        label=label,
        requests=len(ttfb),
        ttfb_ms=_summary(ttfb),
        total_ms=_summary(total),
        errors=len(errors),
        error_samples=errors[:3],
        sent=warmup + count,
        answered=answered,
        ttfb_samples_s=ttfb,
        total_samples_s=total,
    )


def pool_ttfb(label: str, results: Sequence[TtfbResult]) -> TtfbResult:
    """Several measurements of one target as one: percentiles over all their samples.

    A TTFB difference of a tenth of a millisecond is within one round's drift on a shared
    machine; percentiles of the pooled samples of rounds that alternated with the compared
    target are what such a difference can be judged on.
    """
    if not results:
        raise ValueError("pool_ttfb() needs at least one measurement")
    ttfb = [s for r in results for s in r.ttfb_samples_s]
    total = [s for r in results for s in r.total_samples_s]
    return TtfbResult(
        label=label,
        requests=sum(r.requests for r in results),
        ttfb_ms=_summary(ttfb),
        total_ms=_summary(total),
        errors=sum(r.errors for r in results),
        error_samples=[e for r in results for e in r.error_samples][:3],
        sent=sum(r.sent for r in results),
        answered=sum(r.answered for r in results),
        ttfb_samples_s=ttfb,
        total_samples_s=total,
    )
