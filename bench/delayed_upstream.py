"""The capacity methodology's fake provider: a fixed delay, and a paced stream.

nginx (:mod:`bench.upstream`) answers instantly, which isolates the gateway's own cost but says
nothing about how a deployment behaves while requests wait on a provider: how many are in
flight, how many connections and how much memory that holds, whether streams keep their pace.
This upstream answers like a fast provider instead (issue 14's methodology):

* ``POST /v1/chat/completions``: the bench's fixed ``chat.completion`` after ``--delay-ms``
  (default 20 ms);
* ``POST /stream/v1/chat/completions``: the response head at once, then ``--chunks`` (64)
  ``chat.completion.chunk`` SSE events, the first after ``--delay-ms`` and the others
  ``--interval-ms`` (20 ms) apart, then ``data: [DONE]``; chunked transfer encoding, each
  event in a chunk of its own. Each event is scheduled at an absolute time from the request's
  arrival, so a late timer does not push every later event back.

A bare asyncio protocol on uvloop (libuv timers: 1 ms resolution), run as
``python -m bench.delayed_upstream PORT [--delay-ms D] [--chunks N] [--interval-ms I]`` in a
process of its own so it never competes with the bench for the GIL. The bench measures it
directly too (the *direct* rows), so its own cost is visible next to the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

from bench import payloads
from bench.procs import HOST, BenchError, free_port, own_cpu_seconds, spawn, stop, wait_for_port

DELAY_MS = 20.0
"""The provider's fixed latency: to the answer, and to a stream's first event."""
CHUNKS = 64
INTERVAL_MS = 20.0


def stream_events(chunks: int) -> list[bytes]:
    """``chunks`` OpenAI stream events (role first, ``finish_reason: stop`` last) then
    ``[DONE]``, each framed as one HTTP chunk."""
    events = []
    for index in range(chunks):
        delta: dict[str, str] = {"content": "tok"}
        if index == 0:
            delta = {"role": "assistant", "content": ""}
        last = index == chunks - 1
        event = {
            "id": "chatcmpl-capacity",
            "object": "chat.completion.chunk",
            "created": 1_741_569_952,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "delta": {} if last else delta,
                    "logprobs": None,
                    "finish_reason": "stop" if last else None,
                }
            ],
        }
        events.append(f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode())
    framed = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    done = b"data: [DONE]\n\n"
    framed[-1] += b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done)
    return framed


_CHAT_BODY = payloads.chat_completion().encode()
_CHAT = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nx-request-id: req_capacity\r\n\r\n%s" % (len(_CHAT_BODY), _CHAT_BODY)
)
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"x-request-id: req_capacity\r\n\r\n"
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class DelayedResponse(asyncio.Protocol):
    """Parses request heads, skips bodies, answers after the delay (or paces a stream).

    Requests on one connection are answered in order: a fixed delay keeps the schedule
    monotonic, and a stream's next request is not read before it ends (clients do not
    pipeline behind a stream)."""

    def __init__(self, delay_s: float, interval_s: float, events: list[bytes]) -> None:
        self.delay_s = delay_s
        self.interval_s = interval_s
        self.events = events
        self.buffer = bytearray()
        self.transport: asyncio.WriteTransport | None = None
        self.timers: list[tuple[float, asyncio.Handle]] = []
        """Pending writes and when they are due. uvloop's ``call_at`` answers a plain
        ``Handle`` (no ``when()``) for a time it finds already due, as a loaded machine makes a
        stream's first event: the due time is kept here instead."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for _, timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _schedule(self, when: float, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.timers.append((when, loop.call_at(when, self._write, data)))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            path = head.split(" ", 2)[1].partition("?")[0]
            now = loop.time()
            self.timers = [(when, t) for when, t in self.timers if when > now]
            if path == payloads.CHAT_PATH:
                self._schedule(now + self.delay_s, _CHAT)
            elif path == payloads.STREAM_UPSTREAM_PATH:
                self._write(_STREAM_HEAD)
                for index, event in enumerate(self.events):
                    self._schedule(now + self.delay_s + index * self.interval_s, event)
            else:
                self._write(_NOT_FOUND)


async def serve(port: int, delay_s: float, interval_s: float, chunks: int) -> None:
    events = stream_events(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: DelayedResponse(delay_s, interval_s, events), HOST, port, backlog=4096
    )
    async with server:
        await server.serve_forever()


class DelayedUpstream:
    """The upstream in a child process (own session, so :func:`bench.procs.stop` reaps it)."""

    def __init__(
        self,
        workdir: Path,
        delay_ms: float = DELAY_MS,
        chunks: int = CHUNKS,
        interval_ms: float = INTERVAL_MS,
    ) -> None:
        self.port = free_port()
        self.log = workdir / "delayed-upstream.log"
        self.delay_ms, self.chunks, self.interval_ms = delay_ms, chunks, interval_ms
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "bench.delayed_upstream",
            str(self.port),
            "--delay-ms",
            str(self.delay_ms),
            "--chunks",
            str(self.chunks),
            "--interval-ms",
            str(self.interval_ms),
        ]
        self._proc = spawn(argv, self.log, cwd=Path(__file__).resolve().parent.parent)
        wait_for_port(self.port, self._proc, "the delayed upstream", self.log)

    def cpu_seconds(self) -> float:
        return own_cpu_seconds(self._proc.pid) if self._proc is not None else 0.0

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BenchError(f"the delayed upstream died (status {self._proc.returncode})")

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delayed_upstream")
    parser.add_argument("port", type=int)
    parser.add_argument("--delay-ms", type=float, default=DELAY_MS)
    parser.add_argument("--chunks", type=int, default=CHUNKS)
    parser.add_argument("--interval-ms", type=float, default=INTERVAL_MS)
    args = parser.parse_args(argv)
    coro = serve(args.port, args.delay_ms / 1000, args.interval_ms / 1000, args.chunks)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
