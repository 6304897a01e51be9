"""``gateway serve``'s lifecycle: the configuration checked at start-up (one line per problem,
exit 1, no traceback), and SIGTERM on the real server process while streams are in flight.

The shutdown test starts the real ``gateway serve`` (its log writer in its own process, the
embedded log store), opens two slow streams from the emulator — one that ends within
``GATEWAY_SHUTDOWN_GRACE_SECONDS``, one that cannot — and sends SIGTERM to the server alone,
as Docker and Kubernetes do. It then shows: new connections are refused while the process is
still draining, the short stream completes, the long one is cut at the bound, the process
exits 0 within grace + log drain, and a second gateway on the same data directory finds each
request in the log exactly once.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.cli import main
from gateway.lifecycle import not_ready_on_signal, validation_problems
from gateway.readiness import Readiness
from gateway.settings import Settings
from tests.emulator import Fault, OpenAIEmulator
from tests.test_cli import create_key
from tests.test_kill import Gateway, _query_ids

CHAT = "/v1/chat/completions"
GRACE_SECONDS = 8
DRAIN_SECONDS = 10


@dataclass
class Stream:
    """A streamed chat completion read in a thread; ``started`` is set at its first bytes."""

    url: str
    key: str
    words: int
    started: threading.Event = field(default_factory=threading.Event)
    text: str = ""
    request_id: str = ""
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def open(self) -> Stream:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.started.wait(30), f"no first chunk: {self.error!r}"
        return self

    def _read(self) -> None:
        content = " ".join(f"word{i}" for i in range(self.words))
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": content}],
            "stream": True,
        }
        headers = {"authorization": f"Bearer {self.key}"}
        try:
            with httpx.stream("POST", self.url + CHAT, json=body, headers=headers,
                              timeout=120) as response:  # fmt: skip
                assert response.status_code == 200
                self.request_id = response.headers["helicone-id"]
                for piece in response.iter_text():
                    self.text += piece
                    self.started.set()
        except BaseException as exc:  # the cut stream ends in a protocol error: kept for asserts
            self.error = exc
        finally:
            self.started.set()

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream is still open"


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GATEWAY_", "OPENAI_", "OTEL_")) and name != "DATABASE_URL"
    }
    clean["GATEWAY_DATA_DIR"] = str(tmp_path / "data")
    return clean


def test_sigterm_drains_streams_within_the_grace_then_exits_zero(env: dict[str, str]) -> None:
    with OpenAIEmulator(api_key="sk-emulator") as upstream:
        env.update(
            OPENAI_API_KEY="sk-emulator",
            OPENAI_BASE_URL=upstream.base_url,
            GATEWAY_LOG_FLUSH_MS="200",
            GATEWAY_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
            GATEWAY_SHUTDOWN_LOG_DRAIN_SECONDS=str(DRAIN_SECONDS),
        )
        key = create_key(env)
        gateway = Gateway(env)
        # ~3 s of chunks (ends within the grace); ~40 s (cannot).
        upstream.inject(Fault(path=CHAT, chunk_delay=0.25, times=1))
        upstream.inject(Fault(path=CHAT, chunk_delay=1.0, times=1))
        short = Stream(gateway.url, key, words=8).open()
        long = Stream(gateway.url, key, words=40).open()

        signalled = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        while not _refused(gateway.port):
            assert time.monotonic() - signalled < 10, "still accepting after SIGTERM"
            time.sleep(0.05)
        assert gateway.process.poll() is None  # refusing new connections while it drains

        short.join(GRACE_SECONDS + 5)
        assert short.error is None, short.error
        assert short.text.rstrip().endswith("data: [DONE]")
        bound = GRACE_SECONDS + DRAIN_SECONDS + 10  # + the writer child's stop margin, slack
        gateway.process.wait(timeout=bound)
        stderr = gateway.output()
        gateway.log.close()
        assert gateway.process.returncode == 0, stderr
        long.join(10)
        assert long.error is not None and "[DONE]" not in long.text  # cut at the grace bound
        assert "Traceback" not in stderr

        second = Gateway(env)  # the same data directory: what was not written is written now
        try:
            ids = [short.request_id, long.request_id]
            deadline = time.monotonic() + 60
            while len(found := _query_ids(second.url, key, ids)) < 2:
                assert time.monotonic() < deadline, f"logged: {found}"
                time.sleep(0.5)
            assert sorted(found) == sorted(ids)  # each exactly once
        finally:
            second.stop()


# --- start-up checks ----------------------------------------------------------------------------


def test_serve_prints_one_line_per_problem_and_exits_1(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_DATA_DIR", env["GATEWAY_DATA_DIR"])
    # `serve` restricts the umask and takes SIGTERM over: both put back for the next tests.
    monkeypatch.setattr("gateway.cli.restrict_umask", lambda: None)
    monkeypatch.setattr("gateway.cli.exit_on_signal", lambda: None)
    monkeypatch.setenv("GATEWAY_PORT", "eighty")
    monkeypatch.setenv("GATEWAY_SHUTDOWN_GRACE_SECONDS", "-1")
    monkeypatch.setenv("OPENAI_BASE_URL", "ftp://proxy")
    assert main(["serve"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "error: GATEWAY_PORT: Input should be a valid integer, unable to parse string as an "
        "integer",
        "error: GATEWAY_SHUTDOWN_GRACE_SECONDS: Input should be greater than or equal to 0",
        "error: OPENAI_BASE_URL must be an absolute http(s) URL",
    ]

    for name in ("GATEWAY_PORT", "GATEWAY_SHUTDOWN_GRACE_SECONDS", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_WORKERS", "2")
    monkeypatch.setenv("GATEWAY_ENCRYPTION_KEY", "not-a-key")
    monkeypatch.setenv("S3_ENDPOINT", "http://127.0.0.1:9000")
    monkeypatch.setenv("GATEWAY_TRACES_ENABLED", "true")
    assert main(["serve"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4, lines
    assert all(line.startswith("error: ") for line in lines)
    assert "GATEWAY_ENCRYPTION_KEY" in lines[0] and "not-a-key" not in lines[0]
    assert "--workers 2 needs a ClickHouse server" in lines[1]
    assert "missing S3_BUCKET_NAME, S3_ACCESS_KEY, S3_SECRET_KEY" in lines[2]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in lines[3]
    assert not (Path(env["GATEWAY_DATA_DIR"]) / "gateway.db").exists()  # nothing started


def test_validation_problems_name_the_variable_never_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(  # type: ignore[call-arg]
            _env_file=None, port=0, clickhouse_url=["s3cr3t"], bedrock_region="s3cr3t-region"
        )
    problems = validation_problems(caught.value)
    assert [p.split(":")[0] for p in problems] == [
        "GATEWAY_PORT", "CLICKHOUSE_URL", "GATEWAY_BEDROCK_REGION"
    ]  # fmt: skip
    assert "s3cr3t" not in "".join(problems)


# --- not ready from the signal on ---------------------------------------------------------------


async def test_sigterm_marks_the_process_not_ready_then_reaches_the_server() -> None:
    seen: list[int] = []
    readiness = Readiness()
    original = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        restore = not_ready_on_signal(readiness.stop)
        assert (await readiness.check()).ready
        signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]  # the server's own handler still runs (uvicorn's drain)
        report = await readiness.check()
        assert not report.ready and report.body().startswith(b'{"status":"shutting_down"')
        restore()
        signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, original)
