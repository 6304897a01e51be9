"""Bad input of every kind is a clear 4xx, never a 500 — and never breaks the log writer.

Unit checks of the depth test, the record builder fed bodies nested as deep as a parser
accepts, and end-to-end checks on a real gateway with logging on (embedded chdb, SQLite
bodies): a streamed chat is only re-encoded when logging is on, and a reused request id
needs both a log row and a stored body.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.jsondepth import MAX_JSON_DEPTH, ORJSON_MAX_DEPTH, too_deep
from logging_pipeline.capture import Capture
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import build_record
from logging_pipeline.schema import INSERT_COLUMNS
from providers.registry import Registry
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"


def _arrays(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# --- the depth test ----------------------------------------------------------------------------


def test_orjson_writes_exactly_its_documented_depth() -> None:
    """too_deep relies on orjson refusing to write past ORJSON_MAX_DEPTH: pin it."""
    orjson.dumps(orjson.loads(_arrays(ORJSON_MAX_DEPTH)))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads(_arrays(ORJSON_MAX_DEPTH + 1)))


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (_arrays(MAX_JSON_DEPTH), False),
        (_arrays(MAX_JSON_DEPTH + 1), True),
        (b'{"a": ' + _arrays(MAX_JSON_DEPTH - 1) + b"}", False),
        (b'{"a": ' + _arrays(MAX_JSON_DEPTH) + b"}", True),
        (b'{"a": ' + _arrays(1000) + b"}", True),
        # Many brackets, shallow: the count alone does not refuse.
        (orjson.dumps({"xs": [[i] for i in range(500)]}), False),
        # Brackets inside strings count for the cheap test, not for the depth.
        (orjson.dumps({"s": "[" * 500}), False),
        (b'"just a string"', False),
    ],
)
def test_too_deep_boundaries(raw: bytes, deep: bool) -> None:
    assert too_deep(raw, orjson.loads(raw)) is deep


# --- the log writer copes with what the parsers accept -----------------------------------------


def _capture(request_body: bytes, response_body: bytes, *, stream: bool) -> Capture:
    capture = Capture(
        request_id="0190a6f1-2b3c-7d4e-8f5a-6b7c8d9e0f1a",
        organization_id="5d9f3c1e-7a2b-4c8d-9e0f-112233445566",
        api_key_id="k",
        path="/v1/gateway/openai/v1/chat/completions",  # passthrough: bodies never parsed
        provider="openai",
        request_body=request_body,
        status=200,
        response_body=response_body,
        is_stream=stream,
    )
    capture.finish()
    return capture


@pytest.mark.parametrize("levels", [300, 1000])
def test_record_from_deeply_nested_bodies(tmp_path: Path, levels: int) -> None:
    """A passthrough request nested as deep as orjson reads, answered without usage."""
    content = b"[" * levels + b'{"text": "hello there"}' + b"]" * levels
    request = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ' + (
        content + b"}]}"
    )
    response = orjson.dumps({
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "general kenobi"}}],
    })
    record = build_record(_capture(request, response, stream=False), Registry.load(),
                          TokenEstimator(tmp_path))
    row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
    assert row["request_model"] == "gpt-4o-mini" and row["tokens_estimated"] is True
    assert row["completion_tokens"] == 3
    assert record.document is not None
    assert orjson.loads(record.document)["response"]["choices"][0]["message"]["content"] == (
        "general kenobi"
    )


def test_record_from_deeply_nested_stream(tmp_path: Path) -> None:
    """A stream whose chunks nest deeper than orjson writes still gives a full record."""
    deep = orjson.loads(b'{"x": ' + _arrays(300) + b"}")
    chunks = [
        {"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {
            "role": "assistant", "content": "general kenobi"}}], "extra": deep},
        {"id": "c1", "model": "gpt-4o-mini", "choices": [], "usage": {
            "prompt_tokens": 2, "completion_tokens": 3, "detail": deep}},
    ]
    stream = b"".join(b"data: " + _dumps_deep(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    record = build_record(
        _capture(b'{"model": "gpt-4o-mini", "stream": true, "messages": []}', stream,
                 stream=True),
        Registry.load(), TokenEstimator(tmp_path),
    )
    row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
    assert (row["prompt_tokens"], row["completion_tokens"]) == (2, 3)
    assert row["response_model"] == "gpt-4o-mini" and row["cost"] > 0
    assert record.document is not None
    document = orjson.loads(record.document)
    assert document["response"]["stream"] == stream.decode()  # the raw stream is always kept


def _dumps_deep(value: object) -> bytes:
    """JSON text of any depth (orjson stops at 254; the stdlib does not)."""
    import json

    return json.dumps(value, separators=(",", ":")).encode()


# --- end to end, logging on --------------------------------------------------------------


@dataclass
class Logged:
    server: GatewayServer
    key: str
    upstream: OpenAIEmulator

    def headers(self, **extra: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}", "content-type": "application/json",
                **extra}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            tmp_path_factory.mktemp("bad_input"),
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
            logging_enabled=True,
            log_flush_ms=20,
        )
        key = create_key(settings, org="acme")
        with GatewayServer(settings) as server:
            yield Logged(server, key, upstream)


def test_deep_streamed_chat_is_400_with_logging_on(logged: Logged) -> None:
    """Logging re-encodes a streamed chat to add include_usage: 255 levels was a 500."""
    body = (
        b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", '
        b'"content": "hi"}], "metadata": {"x": ' + _arrays(253) + b"}}"
    )
    logged.upstream.reset()
    response = httpx.post(logged.server.url + "/v1/chat/completions", content=body,
                          headers=logged.headers())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "nested deeper than 128 levels" in error["message"]
    assert error["code"] == "json_too_deep"
    assert logged.upstream.requests == []


def test_query_api_body_limit_over_a_socket(logged: Logged) -> None:
    url = logged.server.url + "/v1/request/query"
    big = b'{"filter": "all", "pad": "' + b"x" * (256 * 1024) + b'"}'
    response = httpx.post(url, content=big, headers=logged.headers())
    assert response.status_code == 413, response.text
    assert response.json() == {"data": None, "error": "Request body is larger than the query "
                               "API's limit of 262144 bytes."}

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"filter": "all", "pad": "'
        for _ in range(300):
            yield b"x" * 1024
        yield b'"}'

    response = httpx.post(url, content=chunked(), headers=logged.headers())
    assert response.status_code == 413, response.text
    assert response.json()["data"] is None
    response = httpx.post(url, json={"filter": "all"}, headers=logged.headers())
    assert response.status_code == 200, response.text


# --- a reused request id ------------------------------------------------------------------


def test_row_and_body_carry_one_token_per_capture(tmp_path: Path) -> None:
    from logging_pipeline.record import body_token

    request = b'{"model": "gpt-4o-mini", "messages": []}'
    response = b'{"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
    first = _capture(request, response, stream=False)
    second = _capture(request, response, stream=False)  # same request id, a later request
    tokens = []
    for capture in (first, second):
        record = build_record(capture, Registry.load(), TokenEstimator(tmp_path))
        row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
        assert record.document is not None
        assert orjson.loads(record.document)["token"] == row["body_token"] == body_token(capture)
        assert 0 < row["body_token"] < 2**64
        tokens.append(row["body_token"])
    assert tokens[0] != tokens[1]
    replayed = Capture.from_json(orjson.loads(orjson.dumps(first.to_json())))  # a spill replay
    assert body_token(replayed) == tokens[0]


def test_reused_request_id_end_to_end(logged: Logged) -> None:
    """Two requests with one Helicone-Request-Id: the row shown and its body are one request's."""
    import time
    import uuid

    request_id = str(uuid.uuid4())
    url = logged.server.url
    for word in ("first", "second"):
        response = httpx.post(url + "/v1/chat/completions", headers=logged.headers(
            **{"helicone-request-id": request_id}), json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": word}]})
        assert response.status_code == 200, response.text
        assert response.headers["helicone-id"] == request_id
    deadline = time.monotonic() + 15
    writer = logged.server.runtime.writer
    assert writer is not None
    while writer.counters.written < writer.counters.enqueued:
        assert time.monotonic() < deadline, writer.counters
        time.sleep(0.05)
    response = httpx.get(url + f"/v1/request/{request_id}?includeBody=true",
                         headers=logged.headers())
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["request_body"]["messages"][0]["content"] == "second"  # newest, and its body
    assert "second" in data["response_body"]["choices"][0]["message"]["content"]


def test_query_api_is_503_when_the_log_server_is_down(tmp_path: Path) -> None:
    """A real gateway whose ClickHouse server does not answer (a closed port): the data plane
    still serves (fail open, the record waits in the journal) and the query API says 503,
    not 500, with no internal address in the message."""
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            tmp_path,
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
            logging_enabled=True,
            clickhouse_url=f"http://default:pw@127.0.0.1:{port}/default",
        )
        key = create_key(settings, org="acme")
        with GatewayServer(settings) as server:
            headers = {"authorization": f"Bearer {key}"}
            answer = httpx.post(server.url + "/v1/chat/completions", headers=headers,
                                json={"model": "gpt-4o-mini",
                                      "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 200, answer.text
            query = httpx.post(server.url + "/v1/request/query-clickhouse", headers=headers,
                               json={"filter": "all"}, timeout=60)
            by_id = httpx.get(
                server.url + f"/v1/request/{answer.headers['helicone-id']}", headers=headers,
                timeout=60,
            )
    for response in (query, by_id):
        assert response.status_code == 503, response.text
        assert response.json()["data"] is None
        assert str(port) not in response.text and "127.0.0.1" not in response.text
