"""Slow clients cannot hold the server: ``gateway serve`` (a real subprocess) against raw sockets.

The gateway runs with one-second client timeouts and a four-connection limit, so every case
below settles in a couple of seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator import OpenAIEmulator

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 4
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key="sk-emulator") as emulator:
        yield emulator


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator) -> Iterator[int]:
    """``gateway serve`` on a fresh data directory, anonymous, logging off."""
    data = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name not in ("DATABASE_URL", "CLICKHOUSE_URL")
    }
    env.update(
        GATEWAY_DATA_DIR=str(data / "data"),
        GATEWAY_PORT=str(port),
        GATEWAY_ALLOW_ANONYMOUS="true",
        GATEWAY_LOGGING_ENABLED="false",
        GATEWAY_LOG_LEVEL="warning",
        GATEWAY_CLIENT_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        GATEWAY_CLIENT_BODY_TIMEOUT=str(BODY_TIMEOUT),
        GATEWAY_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        OPENAI_API_KEY="sk-emulator",
        OPENAI_BASE_URL=upstream.base_url,
    )
    log = (data / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(Path(log.name).read_text()) from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _readable(sock: socket.socket) -> bool:
    """Whether the server has sent something (or closed) yet, without waiting.

    ``poll`` rather than ``select``: by this point in a full run the test process may hold
    more than 1,024 descriptors, which ``select`` cannot watch.
    """
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket timeout: 5 s)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(status_line.split()[1]), headers, body


def _status_and_json(raw: bytes) -> tuple[int, dict[str, str], object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def _request(path: str, body: str, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n{body}"
    ).encode()


# --- headers ------------------------------------------------------------------------------


def test_trickling_headers_are_cut_off_with_408(port: int) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")
        for index in range(40):  # one header line every 0.1 s: 4 s if nobody stops it
            time.sleep(0.1)
            if _readable(sock):
                break
            sock.sendall(f"X-Slow-{index}: 1\r\n".encode())
        answer = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + 1.5
    status, headers, body = _status_and_json(answer)
    assert status == 408
    assert headers["connection"] == "close"
    assert body == {
        "error": {
            "message": f"The request headers did not arrive within {HEADER_TIMEOUT:g} s "
            "(GATEWAY_CLIENT_HEADER_TIMEOUT).",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }


def test_many_slow_connections_are_all_cut_off(port: int) -> None:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(_connect(port)) for _ in range(30)]
        started = time.monotonic()
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")  # never finished
        answers = [_read_until_closed(sock) for sock in socks]
        assert time.monotonic() - started < HEADER_TIMEOUT + 1.5
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock) == b""  # nothing was asked: closed without an answer
        assert HEADER_TIMEOUT * 0.9 <= time.monotonic() - started < HEADER_TIMEOUT + 1.5


# --- bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/request/query"])
def test_a_body_shorter_than_its_content_length_is_cut_off_with_408(port: int, path: str) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(_request(path, CHAT, length=len(CHAT) + 100))
        answer = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + 1.5
    status, headers, body = _status_and_json(answer)
    assert (status, headers["connection"]) == (408, "close")
    assert isinstance(body, dict) and body["error"]["code"] == "request_timeout"
    assert "GATEWAY_CLIENT_BODY_TIMEOUT" in body["error"]["message"]


def test_a_trickling_body_is_cut_off_with_408(port: int) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(_request("/v1/chat/completions", "", length=len(CHAT)))
        for byte in CHAT:  # one byte every 0.1 s: every read succeeds, the whole takes ~8 s
            sock.sendall(byte.encode())
            time.sleep(0.1)
            if _readable(sock):
                break
        answer = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + 1.5
    status, _, body = _status_and_json(answer)
    assert status == 408
    assert isinstance(body, dict) and body["error"]["code"] == "request_timeout"


# --- connection limit ---------------------------------------------------------------------


def test_connections_past_the_limit_are_refused_with_503(port: int) -> None:
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(MAX_CONNECTIONS):
            sock = stack.enter_context(_connect(port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
            assert _read_response(sock)[0] == 200  # now an open keep-alive connection
            held.append(sock)
        with _connect(port) as extra:
            extra.sendall(_request("/v1/chat/completions", CHAT))
            status, headers, body = _status_and_json(_read_until_closed(extra))
        assert status == 503
        assert headers["connection"] == "close"
        assert headers["retry-after"] == "1"
        assert isinstance(body, dict)
        assert body["error"]["code"] == "too_many_connections"
        assert f"{MAX_CONNECTIONS} connections" in body["error"]["message"]
        assert "GATEWAY_MAX_CONNECTIONS" in body["error"]["message"]
        # The connections being served are not affected.
        held[0].sendall(_request("/v1/chat/completions", CHAT))
        assert _read_response(held[0])[0] == 200
    time.sleep(0.2)  # let the server see the closes
    with _connect(port) as again:  # below the limit again
        again.sendall(_request("/v1/chat/completions", CHAT))
        assert _read_response(again)[0] == 200


# --- normal clients -----------------------------------------------------------------------


def test_normal_requests_are_served_and_keep_alive_outlasts_the_header_timeout(
    port: int,
) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/v1/chat/completions", CHAT))
        status, _, body = _read_response(sock)
        assert status == 200 and json.loads(body)["object"] == "chat.completion"
        # Idle between requests for longer than the header timeout: uvicorn's keep-alive
        # timeout (5 s) governs idle connections; the header clock starts with a request.
        time.sleep(HEADER_TIMEOUT + 0.3)
        request = _request("/v1/chat/completions", CHAT)
        head_end = request.index(b"\r\n\r\n")
        for part in (request[:20], request[20:head_end], request[head_end:-10], request[-10:]):
            sock.sendall(part)  # headers and body in pieces, each well within the timeouts
            time.sleep(0.25)
        assert _read_response(sock)[0] == 200


# --- proxy headers ------------------------------------------------------------------------


def test_forwarded_scheme_reaches_the_control_plane(port: int) -> None:
    """uvicorn's proxy headers are off; the app applies ``X-Forwarded-Proto`` (from a trusted
    peer: 127.0.0.1 by default) in front of the control plane itself, so URLs it builds — a
    trailing-slash redirect here — still carry the scheme the client used at the proxy."""
    for forwarded, scheme in ((None, "http"), ("https", "https")):
        with _connect(port) as sock:
            extra = f"X-Forwarded-Proto: {forwarded}\r\n" if forwarded else ""
            sock.sendall(f"GET /healthz/ HTTP/1.1\r\nHost: gw.example\r\n{extra}\r\n".encode())
            status, headers, _ = _read_response(sock)
        assert status == 307, (forwarded, status, headers)
        assert headers["location"] == f"{scheme}://gw.example/healthz"
