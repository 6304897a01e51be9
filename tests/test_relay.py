"""The staged relay driven by an in-memory upstream double: no sockets, every stage visible.

The double hands out one chunk at a time and only when the test releases it, so a test can
check what reached the client *before* the next upstream chunk exists: no stage may hold back
a complete event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from gateway.asgi import Message
from gateway.context import RequestContext, parse_options
from gateway.relay import Recorder, forward, response_headers
from gateway.sse import UsageChunkFilter
from gateway.translate import ChatEncoder, EventTranslator, ExchangeTranslation
from logging_pipeline.capture import Capture
from providers.anthropic import AnthropicAdapter
from providers.bedrock import BedrockAdapter, ConverseStreamDecoder, EventStreamFramer
from tests.emulator import eventstream


class _Content:
    def __init__(self, gate: asyncio.Queue[bytes | None]) -> None:
        self._gate = gate

    async def iter_any(self) -> AsyncIterator[bytes]:
        while (chunk := await self._gate.get()) is not None:
            yield chunk


class UpstreamDouble:
    """An opened upstream answer whose body the test feeds chunk by chunk."""

    def __init__(
        self,
        status: int = 200,
        content_type: str = "text/event-stream",
        body: bytes = b"",
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.status = status
        self.content_type = content_type
        self.raw_headers = ((b"Content-Type", content_type.encode()), *headers)
        self.gate: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.content = _Content(self.gate)
        self._body = body
        self.closed = False

    async def read(self) -> bytes:
        return self._body

    def close(self) -> None:
        self.closed = True


class Client:
    """The ASGI side: collects what was sent, and never disconnects."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.sent = asyncio.Event()

    async def receive(self) -> Message:
        await asyncio.Event().wait()  # never: the client stays
        raise AssertionError

    async def send(self, message: Message) -> None:
        self.messages.append(message)
        self.sent.set()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    def chunks(self) -> list[bytes]:
        return [m["body"] for m in self.messages[1:] if m.get("body")]


def _ctx(headers: dict[str, str] | None = None, *, capture: bool = True) -> RequestContext:
    ctx = RequestContext(parse_options(headers or {}))
    if capture:
        ctx.capture = Capture(request_id=ctx.request_id, organization_id="o", api_key_id="k",
                              path="/v1/chat/completions")
        ctx.sink = lambda _capture: None
    return ctx


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Upper:
    """A translator double: every complete ``\\n\\n`` event upper-cased, a closing event at
    the end (what a real translator's ``[DONE]`` is)."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        self.pending += chunk
        head, sep, rest = self.pending.rpartition(b"\n\n")
        if not sep:
            return b""
        self.pending = rest
        return (head + sep).upper()

    def flush(self) -> bytes:
        return b"data: end\n\n"


class UpperTranslation:
    def whole(self, status: int, body: bytes) -> bytes:
        return b'{"status": %d, "body": "%s"}' % (status, body.upper())

    def stream(self) -> Upper:
        return Upper()


async def test_each_upstream_event_reaches_the_client_before_the_next_is_read() -> None:
    """Usage strip + recorder: an event completed by a chunk is sent before the next chunk."""
    ctx = _ctx()
    ctx.strip_usage = True
    upstream = UpstreamDouble()
    client = Client()
    task = asyncio.create_task(forward(ctx, upstream, client.receive, client.send))
    events = [b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n',
              b'data: {"choices": [{"delta": {"content": "b"}}]}\r\n\r\n']
    for event in events:
        half = len(event) // 2
        await upstream.gate.put(event[:half])
        await _settle()
        assert client.chunks() == events[: events.index(event)]  # half an event: nothing new
        await upstream.gate.put(event[half:])
        await _settle()
        assert client.chunks() == events[: events.index(event) + 1]  # whole: sent at once
    usage = b'data: {"choices": [], "usage": {"prompt_tokens": 1}}\n\n'
    await upstream.gate.put(usage + b"data: [DONE]\n\n")
    await upstream.gate.put(None)
    await task
    assert client.body() == b"".join(events) + b"data: [DONE]\n\n"
    assert client.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_the_recorder_keeps_the_raw_upstream_bytes_and_the_translator_runs_after_it() -> None:
    captured: list[Capture] = []
    ctx = _ctx()
    ctx.sink = captured.append
    upstream = UpstreamDouble()
    client = Client()
    task = asyncio.create_task(
        forward(ctx, upstream, client.receive, client.send, UpperTranslation())
    )
    await upstream.gate.put(b"data: a\n\ndata: b")
    await _settle()
    assert client.chunks() == [b"DATA: A\n\n"]
    await upstream.gate.put(b"\n\n")
    await upstream.gate.put(None)
    await task
    assert client.chunks() == [b"DATA: A\n\n", b"DATA: B\n\n", b"data: end\n\n"]
    (capture,) = captured
    assert capture.response_body == b"data: a\n\ndata: b\n\n"  # what the provider said
    assert capture.is_stream and capture.first_byte_at is not None
    start = client.messages[0]
    assert (b"content-type", b"text/event-stream") in start["headers"]


async def test_a_translators_closing_events_pass_through_the_later_stages() -> None:
    """The flush of stage N is fed to stage N+1 (force-format would otherwise drop it)."""
    ctx = _ctx({"helicone-stream-force-format": "true"})
    ctx.strip_usage = True
    upstream = UpstreamDouble()
    client = Client()
    task = asyncio.create_task(
        forward(ctx, upstream, client.receive, client.send, UpperTranslation())
    )
    await upstream.gate.put(b"data: x\n\n")
    await upstream.gate.put(None)
    await task
    assert client.body() == b"DATA: X\n\ndata: end\n\n"


async def test_a_whole_answer_is_translated_with_its_status_and_recorded_raw() -> None:
    captured: list[Capture] = []
    ctx = _ctx()
    ctx.sink = captured.append
    upstream = UpstreamDouble(
        status=429, content_type="application/json", body=b"slow down",
        headers=((b"Retry-After", b"7"), (b"Content-Length", b"9")),
    )
    client = Client()
    await forward(ctx, upstream, client.receive, client.send, UpperTranslation())
    start = client.messages[0]
    assert start["status"] == 429
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"retry-after"] == b"7"
    assert client.body() == b'{"status": 429, "body": "SLOW DOWN"}'
    assert headers[b"content-length"] == str(len(client.body())).encode()  # not upstream's 9
    assert captured[0].response_body == b"slow down"
    assert captured[0].status == 429


def test_response_headers_drop_hop_by_hop_and_replace_the_content_type() -> None:
    raw = ((b"Connection", b"keep-alive"), (b"Content-Type", b"text/plain"), (b"X-A", b"1"),
           (b"Set-Cookie", b"s=1"))
    assert response_headers(raw) == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert response_headers(raw, b"application/json") == [
        (b"x-a", b"1"), (b"content-type", b"application/json")
    ]


def test_the_recorder_is_a_pass_through_stage() -> None:
    recorder = Recorder()
    assert recorder.feed(b"ab") == b"ab"
    assert recorder.feed(b"c") == b"c"
    assert recorder.flush() == b""
    assert recorder.body() == b"abc"
    assert recorder.first_byte_at is not None


def _sse(event: str, data: dict[str, object]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


ANTHROPIC_EVENTS = [
    _sse("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 1}}}),
    _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hel"}}),
    _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "lo"}}),
    _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _sse("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 2}}),
    _sse("message_stop", {"type": "message_stop"}),
]


@pytest.mark.parametrize("client_format", ["chat", "responses"])
async def test_a_translated_stream_sends_each_upstream_event_before_the_next_arrives(
    client_format: str,
) -> None:
    """Anthropic events in, chat chunks or Responses events out: every text delta reaches the
    client in the same step as the upstream event that carried it."""
    request = {"model": "claude-sonnet-4-5", "input": "hi"}
    translation = ExchangeTranslation(
        AnthropicAdapter(), True, request if client_format == "responses" else None
    )
    ctx = _ctx()
    upstream = UpstreamDouble()
    client = Client()
    task = asyncio.create_task(
        forward(ctx, upstream, client.receive, client.send, translation)
    )
    seen = 0
    for event in ANTHROPIC_EVENTS:
        delta = orjson.loads(event.split(b"data: ", 1)[1]).get("delta", {})
        await upstream.gate.put(event[:-1])  # all but the final newline: not complete yet
        await _settle()
        assert len(client.chunks()) == seen
        await upstream.gate.put(event[-1:])
        await _settle()
        sent = client.chunks()[seen:]
        seen = len(client.chunks())
        if delta.get("type") == "text_delta":
            assert sent and delta["text"].encode() in b"".join(sent)
    await upstream.gate.put(None)
    await task
    body = client.body()
    if client_format == "chat":
        assert body.endswith(b"data: [DONE]\n\n")
    else:
        assert b"event: response.completed" in body


class CountingFramer(EventStreamFramer):
    """The Bedrock framer, counting the messages it has parsed so far."""

    def __init__(self) -> None:
        super().__init__()
        self.parsed = 0

    def events(self, chunk: bytes) -> Iterator[tuple[str | None, bytes]]:
        for event in super().events(chunk):
            self.parsed += 1
            yield event


class BedrockTranslation(ExchangeTranslation):
    """ConverseStream → chat chunks, through a :class:`CountingFramer`."""

    def __init__(self) -> None:
        super().__init__(BedrockAdapter(), True)
        self.framer = CountingFramer()

    def stream(self) -> EventTranslator:
        decoder = ConverseStreamDecoder(include_usage=True, model="us.amazon.nova-lite-v1:0")
        return EventTranslator(decoder, ChatEncoder(), self.framer)


def _converse_stream(pieces: list[str]) -> bytes:
    messages = [eventstream.event("messageStart", {"role": "assistant"})]
    messages += [
        eventstream.event("contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": 0})
        for p in pieces
    ]
    messages += [
        eventstream.event("contentBlockStop", {"contentBlockIndex": 0}),
        eventstream.event("messageStop", {"stopReason": "end_turn"}),
        eventstream.event(
            "metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
                         "metrics": {"latencyMs": 1}},
        ),
    ]
    return b"".join(messages)


@pytest.mark.parametrize("strip_usage", [False, True])
async def test_an_event_stream_read_whole_sends_its_first_event_before_parsing_the_rest(
    strip_usage: bool,
) -> None:
    """The whole ConverseStream in one network read: the first client event is sent when one
    upstream message has been parsed, the rest follow in one more send (through the usage
    strip when it is on), and the stream is what translating the read at once makes."""
    ctx = _ctx()
    ctx.strip_usage = strip_usage
    translation = BedrockTranslation()
    upstream = UpstreamDouble(content_type="application/vnd.amazon.eventstream")
    parsed_at_send: list[int] = []
    client = Client()

    async def send(message: Message) -> None:
        parsed_at_send.append(translation.framer.parsed)
        await client.send(message)

    task = asyncio.create_task(forward(ctx, upstream, client.receive, send, translation))
    raw = _converse_stream(["Hel", "lo", "!"])
    await upstream.gate.put(raw)
    await _settle()
    assert parsed_at_send == [0, 1, 7]  # headers; the role chunk after one message; the rest
    first = orjson.loads(client.chunks()[0][6:])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    await upstream.gate.put(None)
    await task
    whole = EventTranslator(
        ConverseStreamDecoder(include_usage=True, model="us.amazon.nova-lite-v1:0"),
        ChatEncoder(), EventStreamFramer(),
    )
    expected = whole.feed(raw) + whole.flush()
    if strip_usage:
        expected = UsageChunkFilter().feed(expected)
    assert _chunks(client.body()) == _chunks(expected)
    assert client.body().endswith(b"data: [DONE]\n\n")
    assert (b'"usage":{' in client.body()) is not strip_usage  # the usage-only chunk


def _chunks(stream: bytes) -> list[object]:
    """A chat stream's chunks without their per-answer ``id``, ``created``."""
    out: list[object] = []
    for event in stream.split(b"\n\n"):
        if event.startswith(b"data: {"):
            chunk = orjson.loads(event[6:])
            out.append({k: v for k, v in chunk.items() if k not in ("id", "created")})
    return out


async def test_an_event_stream_cut_anywhere_sends_each_message_with_the_byte_completing_it(
) -> None:
    translation = BedrockTranslation()
    upstream = UpstreamDouble(content_type="application/vnd.amazon.eventstream")
    client = Client()
    task = asyncio.create_task(forward(_ctx(), upstream, client.receive, client.send, translation))
    first, second = (eventstream.event("contentBlockDelta", {"delta": {"text": t},
                                                             "contentBlockIndex": 0})
                     for t in ("a", "b"))
    start = eventstream.event("messageStart", {"role": "assistant"})
    await upstream.gate.put(start + first[:-1])  # the role, and all of "a" but its last byte
    await _settle()
    assert len(client.chunks()) == 1
    await upstream.gate.put(first[-1:] + second)  # "a" completes, then "b": two sends
    await _settle()
    assert [b'"a"' in c for c in client.chunks()[1:]] == [True, False]
    assert b'"b"' in client.chunks()[2]
    await upstream.gate.put(None)
    await task
