"""``python -m bench.forwarder``, the bench's reference, against the upstream emulator.

The bench divides the gateway's figures by the forwarder's, so the forwarder must really
forward: same request bytes upstream, same status, headers and body back, streams included.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.procs import HOST, free_port, spawn, stop, wait_for_port
from tests.emulator import OpenAIEmulator

KEY = "sk-forwarder"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def forwarder_port(
    upstream: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    port = free_port()
    log = tmp_path_factory.mktemp("forwarder") / "forwarder.log"
    argv = [sys.executable, "-m", "bench.forwarder", "--port", str(port),
            "--upstream", upstream.origin]  # fmt: skip
    proc = spawn(argv, log, cwd=REPO)
    try:
        wait_for_port(port, proc, "bench.forwarder", log)
        yield port
    finally:
        stop(proc)


def _post(port: int, body: bytes, key: str = KEY) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _normalised(body: bytes) -> bytes:
    """Per-request parts of the emulator's answer (serial number, clock) made equal."""
    body = re.sub(rb"emu-\d+", b"emu-N", body)
    return re.sub(rb'"created": ?\d+', b'"created":0', body)


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_forwarder_passes_a_chat_completion_through_unchanged(
    upstream: OpenAIEmulator, forwarder_port: int, stream: bool
) -> None:
    request: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello there"}],
    }
    if stream:
        request |= {"stream": True, "stream_options": {"include_usage": True}}
    body = json.dumps(request).encode()
    upstream.reset()
    status, headers, via = _post(forwarder_port, body)
    assert status == 200, via
    sent = upstream.requests[-1]
    assert (sent.path, sent.body) == ("/v1/chat/completions", body)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    direct_status, direct_headers, direct = _post(upstream.port, body)
    assert direct_status == 200
    assert headers["content-type"] == direct_headers["content-type"]
    # the upstream's own header, relayed: the emulator numbers its answers
    serial = int(direct_headers["x-request-id"].removeprefix("req_emu_"))
    assert headers["x-request-id"] == f"req_emu_{serial - 1}"
    assert _normalised(via) == _normalised(direct)
    if stream:
        assert headers["content-type"].startswith("text/event-stream")
        assert via.endswith(b"data: [DONE]\n\n") and b'"usage":{' in via.replace(b" ", b"")


def test_forwarder_relays_an_upstream_error(forwarder_port: int) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    status, _, answer = _post(forwarder_port, body, key="sk-wrong")
    assert status == 401
    assert json.loads(answer)["error"]["code"] == "invalid_api_key"
