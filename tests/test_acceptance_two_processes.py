"""Issue 14's acceptance: two real ``gateway serve`` processes sharing every store, one of
them stopped with SIGTERM in the middle of a stream.

The stores are the ones a scaled-out deployment shares (README, "Scaling out"): PostgreSQL
(``DATABASE_URL``: keys), a private ``redis-server`` (``REDIS_URL``: cache, rate limits,
readiness), the moto S3 server (``S3_*``: bodies) and ClickHouse over HTTP through
clickhouse-connect (``CLICKHOUSE_URL``: records; the chdb-served endpoint of the logging
tests). Each process has its own data directory, so its own record journal, as replicas do.

The test sends plain and streamed chat completions through both with the openai SDK (one
answer cached by one process and served by the other: they share Redis), opens a slow stream
on the first and sends it SIGTERM while the stream is in flight, and shows:

* the stream completes: every chunk, the whole text, ``data: [DONE]``; the process exits 0;
* every request is in ClickHouse exactly once (rows counted without ``FINAL``, so a record
  written twice would show), and on each process's request log line exactly once;
* ``gateway_requests_total`` summed over its labels equals the requests each process
  answered: scraped on the stopped process with the stream in flight (a request is counted
  when it is over, so exactly the others), and on the surviving one at the end;
* ``/readyz`` on the surviving process answers 503 (``redis`` not ok) once Redis is stopped,
  still serves requests meanwhile (the cache fails open), and 200 again once Redis is back.

Every wait is a bounded poll with a generous bound (a loaded 2-core machine); nothing is
asserted about speed.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import clickhouse_connect
import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionChunk
from prometheus_client.parser import text_string_to_metric_families

from logging_pipeline.schema import REQUEST_TABLE
from tests import harness
from tests.clickhouse_http import ChdbHttpServer
from tests.emulator import Fault, OpenAIEmulator
from tests.redis_server import RedisProcess
from tests.s3_server import ACCESS_KEY, SECRET_KEY, MotoS3Server, s3_client
from tests.test_cli import GATEWAY, _free_port, _healthy, create_key

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-emulator"
MODEL = "gpt-4o-mini"
CHAT = "/chat/completions"
SLOW_WORDS = 24
CHUNK_DELAY = 0.3
"""The slow stream: ~30 events 0.3 s apart, ~9 s in all, far inside the shutdown grace."""
GRACE_SECONDS = 60
DRAIN_SECONDS = 20
WAIT = 60.0
"""The bound of every poll: generous, a failure still ends it at once."""
START = 120.0
"""Two processes importing and migrating at once on a loaded 2-core machine take a while."""

T = TypeVar("T")

def wait_for(what: str, check: Callable[[], T | None], bound: float = WAIT) -> T:
    """:func:`tests.harness.wait_for` at this module's bound, polling every 0.2 s."""
    return harness.wait_for(what, check, bound, interval=0.2)


class Gateway:
    """One ``gateway serve`` process; its standard error goes to a file (the request lines
    included), which never fills up and stalls the server the way an unread pipe can."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = workdir / f"{name}.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [GATEWAY, "serve", "--port", str(self.port)],
                env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip

    def wait_healthy(self) -> None:
        wait_for(f"{self.name} to be healthy",
                 lambda: self._alive() and _healthy(self.url + "/healthz"), START)  # fmt: skip

    def _alive(self) -> bool:
        assert self.process.poll() is None, f"{self.name} exited:\n{self.stderr()}"
        return True

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def readyz(self) -> tuple[int, dict[str, Any]]:
        response = httpx.get(self.url + "/readyz", timeout=10)
        return response.status_code, response.json()

    def ready(self) -> bool:
        return self.readyz()[0] == 200

    def not_ready(self) -> dict[str, Any] | None:
        """The ``/readyz`` body if it says 503."""
        status, body = self.readyz()
        return body if status == 503 else None

    def requests_total(self) -> float:
        """``gateway_requests_total`` summed over every label set."""
        response = httpx.get(self.url + "/metrics", timeout=10)
        assert response.status_code == 200, response.text
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "gateway_requests_total"
        )

    def request_line_ids(self) -> list[str]:
        """The request id of every request log line (gateway/accesslog.py), in order."""
        ids = []
        for line in self.stderr().splitlines():
            if line.startswith("{") and '"event":"request"' in line.replace(" ", ""):
                ids.append(orjson.loads(line)["request_id"])
        return ids

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Stores:
    redis: RedisProcess
    s3: MotoS3Server
    clickhouse: ChdbHttpServer
    bucket: str
    workdir: Path


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    redis = RedisProcess(tmp_path).start()
    s3 = MotoS3Server().start()
    clickhouse = ChdbHttpServer(tmp_path / "clickhouse").start()
    try:
        yield Stores(redis, s3, clickhouse, f"bodies-{uuid.uuid4().hex[:8]}", tmp_path)
    finally:
        clickhouse.stop()
        s3.stop()
        redis.stop()


@pytest.fixture
def env(stores: Stores, postgres_database_url: str) -> dict[str, str]:
    """Both processes: every shared store, this checkout's code, nothing of the machine's own
    gateway or provider settings."""
    ignored = ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL", "PROMETHEUS_MULTIPROC_DIR")
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GATEWAY_", "OPENAI_", "OTEL_", "S3_")) and name not in ignored
    }
    clean.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=postgres_database_url,
        GATEWAY_ENCRYPTION_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        REDIS_URL=stores.redis.url,
        CLICKHOUSE_URL=stores.clickhouse.url,
        S3_ENDPOINT=stores.s3.endpoint,
        S3_BUCKET_NAME=stores.bucket,
        S3_ACCESS_KEY=ACCESS_KEY,
        S3_SECRET_KEY=SECRET_KEY,
        # One data directory, as compose's replicas on one host share the /data volume: each
        # process journals in its own directory under it, and a live one adopts the journal
        # of one that is gone (the stopped process's must not be written twice).
        GATEWAY_DATA_DIR=str(stores.workdir / "data"),
        GATEWAY_LOG_FLUSH_MS="100",
        GATEWAY_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        GATEWAY_SHUTDOWN_LOG_DRAIN_SECONDS=str(DRAIN_SECONDS),
    )
    return clean


@dataclass
class SlowStream:
    """A streamed chat completion read on a thread with the SDK's raw streaming response:
    every SSE line is kept (for ``[DONE]``) and each data line is validated as the SDK's
    ``ChatCompletionChunk``."""

    client: openai.OpenAI
    content: str
    started: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)
    request_id: str = ""
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def open(self) -> SlowStream:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.started.wait(WAIT), f"no first chunk: {self.error!r}"
        assert self.error is None, self.error
        return self

    def _read(self) -> None:
        try:
            with self.client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=[{"role": "user", "content": self.content}], stream=True
            ) as response:
                self.request_id = response.headers["helicone-id"]
                for line in response.iter_lines():
                    self.lines.append(line)
                    self.started.set()
        except BaseException as exc:  # kept for the asserts on the test's thread
            self.error = exc
        finally:
            self.started.set()

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the stream is still open"

    def text(self) -> str:
        data = [line.removeprefix("data: ") for line in self.lines if line.startswith("data: ")]
        assert data and data[-1] == "[DONE]", self.lines[-3:]
        chunks = [ChatCompletionChunk.model_validate_json(item) for item in data[:-1]]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def plain(client: openai.OpenAI, content: str, **headers: str) -> tuple[str, str, Any]:
    """(request id, answer text, response headers) of one non-streamed chat completion."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": content}], extra_headers=headers
    )
    completion = raw.parse()
    return raw.headers["helicone-id"], completion.choices[0].message.content or "", raw.headers


def streamed(client: openai.OpenAI, content: str) -> tuple[str, str]:
    """(request id, whole text) of one streamed chat completion, read with the SDK."""
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": content}], stream=True
    ) as response:
        request_id = response.headers["helicone-id"]
        chunks = list(response.parse())
    return request_id, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def clickhouse(server: ChdbHttpServer) -> Any:
    """A clickhouse-connect client of the log store, as any other client would read it."""
    parts = urlsplit(server.url)
    return clickhouse_connect.get_client(
        host=parts.hostname, port=parts.port, username=unquote(parts.username or ""),
        password=unquote(parts.password or ""), database=parts.path.strip("/"),
    )  # fmt: skip


def logged(server: ChdbHttpServer) -> dict[str, int]:
    """Rows per request id in ClickHouse (this test's own, fresh), without ``FINAL``: with
    merges stopped (:func:`_run`), a record inserted twice is two rows."""
    client = clickhouse(server)
    try:
        result = client.query(
            f"SELECT toString(request_id), count() FROM {REQUEST_TABLE} GROUP BY request_id"
        )
        return {str(row[0]): int(row[1]) for row in result.result_rows}
    finally:
        client.close()


def recorded(server: ChdbHttpServer, request_id: str) -> tuple[int, bool]:
    """(status, is_stream) of one record."""
    client = clickhouse(server)
    try:
        result = client.query(
            f"SELECT status, is_stream FROM {REQUEST_TABLE} WHERE request_id = {{id:UUID}}",
            parameters={"id": request_id},
        )
        ((status, is_stream),) = result.result_rows
        return int(status), bool(is_stream)
    finally:
        client.close()


def test_two_processes_share_the_stores_and_one_stops_gracefully_mid_stream(
    tmp_path: Path, stores: Stores, env: dict[str, str]
) -> None:
    with OpenAIEmulator(api_key=KEY) as upstream:
        env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=upstream.base_url)
        key = create_key(env, "--org", "acceptance")  # in PostgreSQL: both processes see it
        # Started together (as replicas are): the schema is migrated already, and the
        # bucket's creation by both at once is expected (logging_pipeline/bodies.py).
        first = Gateway("first", env, tmp_path)
        second: Gateway | None = None
        try:
            second = Gateway("second", env, tmp_path)
            first.wait_healthy()
            second.wait_healthy()
            _run(upstream, stores, key, first, second)
        finally:
            for gateway in (first, second):
                if gateway is not None:
                    gateway.kill()


def _run(
    upstream: OpenAIEmulator, stores: Stores, key: str, first: Gateway, second: Gateway
) -> None:
    for gateway in (first, second):  # every store answers both (the log writer starts late)
        wait_for(f"{gateway.name} to be ready", gateway.ready)
    # The table is a ReplacingMergeTree: a merge would fold a duplicate away and hide it.
    store = clickhouse(stores.clickhouse)
    try:
        store.command(f"SYSTEM STOP MERGES {REQUEST_TABLE}")
    finally:
        store.close()
    clients = {
        gateway.name: openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        for gateway in (first, second)
    }
    sent: dict[str, list[str]] = {"first": [], "second": []}
    texts: dict[str, str] = {}

    # A mix of plain and streamed requests through both; the answers of either kind agree.
    slow_prompt = " ".join(f"word{i}" for i in range(SLOW_WORDS))
    for round_ in range(3):
        for name, client in clients.items():
            request_id, text, _ = plain(client, f"plain {name} {round_}")
            sent[name].append(request_id)
            texts[request_id] = text
            request_id, text = streamed(client, f"plain {name} {round_}")
            sent[name].append(request_id)
            assert text == texts[sent[name][-2]]
    request_id, slow_answer, _ = plain(clients["second"], slow_prompt)
    sent["second"].append(request_id)
    assert slow_prompt in slow_answer

    # One Redis: an answer cached by the first process is a hit on the second.
    cached = f"cached {uuid.uuid4()}"
    request_id, _, headers = plain(clients["first"], cached, **{"Helicone-Cache-Enabled": "true"})
    sent["first"].append(request_id)
    assert headers["helicone-cache"] == "MISS"

    def hit_on_second() -> bool:
        request_id, _, headers = plain(
            clients["second"], cached, **{"Helicone-Cache-Enabled": "true"}
        )
        sent["second"].append(request_id)
        return bool(headers["helicone-cache"] == "HIT")

    wait_for("the first process's cached answer on the second", hit_on_second)
    upstream_before = len(upstream.requests)

    # Each process's counter: exactly the requests it answered. The first process's is read
    # now, the last moment it can be: the slow stream is its only request after this, and
    # it cannot be scraped once signalled (the stream is in its request line and the log).
    assert first.requests_total() == len(sent["first"])
    assert second.requests_total() == len(sent["second"])

    # A slow stream on the first process, and SIGTERM to it while the stream is in flight.
    upstream.inject(Fault(path=CHAT, chunk_delay=CHUNK_DELAY, times=1))
    slow = SlowStream(clients["first"], slow_prompt).open()
    first.terminate()
    at_signal = list(slow.lines)
    assert "data: [DONE]" not in at_signal, "the stream ended before the signal"
    slow.join()
    assert slow.error is None, slow.error
    assert slow.text() == slow_answer  # every chunk, then [DONE]
    assert len(slow.lines) > len(at_signal)  # it went on after the signal
    sent["first"].append(slow.request_id)
    assert first.wait(GRACE_SECONDS + DRAIN_SECONDS + 30) == 0, first.stderr()
    assert "Traceback" not in first.stderr()
    assert sorted(first.request_line_ids()) == sorted(sent["first"])
    assert len(upstream.requests) == upstream_before + 1

    # Redis goes away: the survivor says not ready (and still serves); back: ready again.
    assert second.readyz()[0] == 200
    stores.redis.stop()
    body = wait_for("503 without Redis", second.not_ready)
    assert body["status"] == "not_ready" and body["checks"]["redis"] != "ok", body
    assert all(value == "ok" for name, value in body["checks"].items() if name != "redis"), body
    request_id, _, _ = plain(clients["second"], "no redis", **{"Helicone-Cache-Enabled": "true"})
    sent["second"].append(request_id)
    stores.redis.start()
    wait_for("200 with Redis back", second.ready)

    # Every request in ClickHouse exactly once, whichever process wrote it, the stopped
    # one's included (it drained its writer before exiting); the stream as a stream.
    every = sent["first"] + sent["second"]
    assert len(set(every)) == len(every)
    wait_for("every record", lambda: set(every) <= set(logged(stores.clickhouse)))
    rows = logged(stores.clickhouse)
    assert rows == dict.fromkeys(every, 1)
    assert recorded(stores.clickhouse, slow.request_id) == (200, True)
    assert second.requests_total() == len(sent["second"])

    # Bodies in the shared bucket: one object per request, whichever process wrote it.
    listed = s3_client(stores.s3.endpoint).list_objects_v2(Bucket=stores.bucket)
    objects = [item["Key"].split("/")[3] for item in listed.get("Contents", [])]
    assert sorted(objects) == sorted(every)

    second.terminate()
    assert second.wait(DRAIN_SECONDS + 30) == 0, second.stderr()
    assert "Traceback" not in second.stderr()
    assert sorted(second.request_line_ids()) == sorted(sent["second"])
    assert logged(stores.clickhouse) == dict.fromkeys(every, 1)  # not again
