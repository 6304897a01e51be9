"""Server-sent events through the gateway: one framer for every stage.

Unit tests of :class:`gateway.sse.SSEFramer` (delimiters split at every byte, the three line
endings of the WHATWG spec, comments, ``[DONE]``), and end to end with logging on: the
usage chunk the gateway asks for is stripped whatever the upstream's line endings, on unified
and passthrough routes, and no stage holds an event back.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.sse import EventChunker, SSEFramer, UsageChunkFilter
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

KEY = "sk-emulator"
MESSAGES = [{"role": "user", "content": "frame me please"}]
NEWLINES = [b"\n", b"\r\n", b"\r"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url, "groq": upstream.base_url},
        allowed_target_hosts=[upstream.origin],
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(autouse=True)
def _clean(upstream: OpenAIEmulator) -> Iterator[None]:
    yield
    upstream.reset()


def _client(server: GatewayServer, key: str, prefix: str = "/v1") -> openai.OpenAI:
    if prefix == "/v1":
        return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    return openai.OpenAI(
        base_url=server.url + prefix, api_key=KEY, max_retries=0,
        default_headers={"helicone-auth": f"Bearer {key}"},
    )


ROUTES = ["/v1", "/oai/v1", "/v1/gateway/groq/v1"]


# --- end to end -------------------------------------------------------------------------


@pytest.mark.parametrize("newline", NEWLINES, ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("route", ROUTES)
def test_injected_usage_chunk_never_reaches_the_client(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, newline: bytes, route: str
) -> None:
    """Whatever the line endings, and on passthrough routes too: tokens real, chunk stripped."""
    server, key = gateway
    upstream.inject(Fault(newline=newline, path="/chat/completions"))
    client = _client(server, key, route)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        request_id = response.headers["helicone-id"]
        chunks = list(response.parse())
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}
    assert chunks and all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    row = record(server, request_id)
    assert row["tokens_estimated"] is False
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


@pytest.mark.parametrize("route", ROUTES)
def test_usage_chunk_kept_when_the_client_asked(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, route: str
) -> None:
    server, key = gateway
    upstream.inject(Fault(newline=b"\r\n", path="/chat/completions"))
    chunks = list(
        _client(server, key, route).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


def test_passthrough_leaves_other_requests_untouched(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    """Only streamed chat is rewritten: a non-streamed chat reaches upstream byte for byte."""
    server, key = gateway
    raw = b'{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi"}]}'
    response = httpx.post(
        server.url + "/oai/v1/chat/completions", content=raw,
        headers={"authorization": f"Bearer {KEY}", "helicone-auth": f"Bearer {key}",
                 "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert upstream.requests[-1].body == raw


def test_query_api_says_whether_tokens_were_estimated(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    """``Helicone-Target-Url`` relays any format, so no usage is asked for: estimated."""
    server, key = gateway
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    ids = {}
    for name, path, extra in [
        ("provider", "/oai/v1/chat/completions", {}),
        ("target", "/v1/chat/completions", {"helicone-target-url": upstream.origin}),
    ]:
        with httpx.stream(
            "POST", server.url + path, json=body,
            headers={"authorization": f"Bearer {KEY}", "helicone-auth": f"Bearer {key}",
                     **extra},
        ) as response:
            response.read()
            ids[name] = response.headers["helicone-id"]
    for name, estimated in [("provider", False), ("target", True)]:
        record(server, ids[name])  # written
        answer = httpx.get(
            f"{server.url}/v1/request/{ids[name]}", headers={"authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200, answer.text
        row = answer.json()["data"]
        assert row["tokens_estimated"] is estimated, name
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


def test_each_event_reaches_the_client_before_the_next_is_sent(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    """The relay (usage strip and force-format stages included) holds no event back."""
    server, key = gateway
    delay = 0.25
    upstream.inject(Fault(chunk_delay=delay, newline=b"\r\n", path="/chat/completions"))
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "max_tokens": 3},
        headers={"authorization": f"Bearer {key}", "helicone-stream-force-format": "true"},
    ) as response:
        opened = time.monotonic()  # the upstream sends its first event with its headers
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    events = [t for t, chunk in arrivals for _ in range(chunk.count(b"\r\n\r\n"))]
    assert len(events) >= 4
    # The upstream sent event k at k * delay: each one arrived then, not with the next one
    # (the last, [DONE], comes one slot later: the usage chunk before it was dropped).
    for k, arrived in enumerate(events[:-1]):
        assert arrived - opened < (k + 0.5) * delay, (k, [t - opened for t in events])
    assert all(b - a > delay * 0.5 for a, b in itertools.pairwise(events))


# --- the framer ---------------------------------------------------------------------------


def _stream(newline: bytes) -> tuple[bytes, list[bytes]]:
    events = [
        b": keep-alive comment" + newline + newline,
        b"event: delta" + newline + b'data: {"choices":[{"delta":{"content":"a"}}]}'
        + newline + newline,
        b"id: 7" + newline + b"data: {\"x\":" + newline + b"data: 1}" + newline + newline,
        b"data: [DONE]" + newline + newline,
    ]
    return b"".join(events), events


@pytest.mark.parametrize("newline", NEWLINES, ids=["lf", "crlf", "cr"])
def test_framer_splits_at_every_byte(newline: bytes) -> None:
    data, expected = _stream(newline)
    for cut in range(len(data) + 1):
        framer = SSEFramer()
        got = framer.feed(data[:cut]) + framer.feed(data[cut:]) + framer.flush()
        assert b"".join(got) == data, cut
        # A cut between the \r and \n of a final \r\n releases that \n on its own.
        events = [e for e in got if e != b"\n"]
        assert [e.strip(b"\r\n") for e in events] == [e.strip(b"\r\n") for e in expected], cut


@pytest.mark.parametrize("newline", NEWLINES, ids=["lf", "crlf", "cr"])
def test_framer_byte_by_byte_emits_each_event_once_complete(newline: bytes) -> None:
    data, expected = _stream(newline)
    framer = SSEFramer()
    got: list[bytes] = []
    fed = 0
    ends = set()
    total = 0
    for event in expected:
        total += len(event)
        ends.add(total)
    for byte in data:
        out = framer.feed(bytes([byte]))
        fed += 1
        got.extend(out)
        # An event is released on the byte that completes it (a final CR need not wait for
        # a possible LF), and never before.
        if fed in ends:
            assert sum(map(len, got)) >= fed - (1 if newline == b"\r\n" else 0), fed
    assert b"".join(got + framer.flush()) == data


def test_framer_mixed_line_endings() -> None:
    data = b"data: 1\r\n\ndata: 2\n\r\ndata: 3\r\rdata: 4\n\rdata: 5\r\n\r\n"
    framer = SSEFramer()
    events = framer.feed(data)
    datas = [e for e in events if b"data" in e]
    assert [e.split(b"data: ")[1][:1] for e in datas] == [b"1", b"2", b"3", b"4", b"5"]
    assert b"".join(events) == data


def test_framer_crlf_split_between_cr_and_lf() -> None:
    """``\\r\\n\\r`` ends the event whatever follows; the LF that completes it goes along."""
    framer = SSEFramer()
    assert framer.feed(b"data: 1\r\n\r") == [b"data: 1\r\n\r"]
    rest = framer.feed(b"\ndata: 2\r\n\r\n")
    assert b"".join(rest) == b"\ndata: 2\r\n\r\n"
    assert framer.flush() == []


def test_framer_flush_returns_an_unterminated_last_event() -> None:
    framer = SSEFramer()
    assert framer.feed(b"data: 1\n\ndata: [DONE]") == [b"data: 1\n\n"]
    assert framer.flush() == [b"data: [DONE]"]
    assert framer.flush() == []


def _usage_stream(newline: bytes, asked_usage_null: bool = True) -> bytes:
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    if asked_usage_null:
        chunk["usage"] = None
    usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    lines = [orjson.dumps(chunk), orjson.dumps(usage), b"[DONE]"]
    return b"".join(b"data: " + line + newline + newline for line in lines)


@pytest.mark.parametrize("newline", NEWLINES, ids=["lf", "crlf", "cr"])
def test_usage_filter_drops_only_the_usage_chunk(newline: bytes) -> None:
    data = _usage_stream(newline)
    for cut in range(len(data) + 1):
        usage_filter = UsageChunkFilter()
        out = usage_filter.feed(data[:cut]) + usage_filter.feed(data[cut:]) + usage_filter.flush()
        assert b'"usage":{' not in out, cut
        assert out.count(b'"content":"hi"') == 1 and b"data: [DONE]" in out, cut
        assert b"\n\n\n" not in out.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), cut


def test_event_chunker_releases_whole_events_in_one_chunk() -> None:
    chunker = EventChunker()
    assert chunker.feed(b"data: 1\r\n\r\ndata: 2\r") == b"data: 1\r\n\r\n"
    assert chunker.feed(b"\n\r\ndata: 3") == b"data: 2\r\n\r\n"
    assert chunker.flush() == b"data: 3"
