"""End to end: requests through the gateway become records in ClickHouse + bodies.

The whole suite runs once per storage combination the gateway supports (see ``BACKENDS``):
the embedded engine (chdb) or a ClickHouse server over HTTP (clickhouse-connect talking to
:class:`tests.clickhouse_http.ChdbHttpServer`) for records, and the SQLite or file body store
on local disk or S3 (a moto server process) for bodies.

chdb allows one engine data path per process at a time, so the embedded-engine gateways and
the HTTP server must never overlap: ``backend`` is module-scoped and parametrised, and pytest
finishes one param's fixtures (the gateway first, then what it used) before creating the next
param's. ``_CHDB_USERS`` checks that at runtime.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from logging_pipeline.bodies import (
    LocalBodyStore,
    S3BodyStore,
    SqliteBodyStore,
    body_key,
    decode_bodies,
)
from logging_pipeline.schema import REQUEST_TABLE
from tests.clickhouse_http import ChdbHttpServer
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.s3_server import ACCESS_KEY, SECRET_KEY, MotoS3Server, moto_s3_server, s3_client

KEY = "sk-emulator"
MESSAGES = [{"role": "user", "content": "log me please"}]


@dataclass(frozen=True)
class Backend:
    """One storage combination: where records go, where bodies go."""

    name: str
    clickhouse_server: bool
    """Records through clickhouse-connect to a ChdbHttpServer (else embedded chdb)."""
    s3: bool
    """Bodies in S3 on the moto server (else on local disk)."""
    body_store: str = "sqlite"
    """The local body store ("sqlite" or "files") when ``s3`` is false."""

    @property
    def storage_location(self) -> str:
        return "s3" if self.s3 else "local"

    @property
    def body_store_type(self) -> type:
        if self.s3:
            return S3BodyStore
        return LocalBodyStore if self.body_store == "files" else SqliteBodyStore


BACKENDS = (
    Backend("chdb-sqlite", clickhouse_server=False, s3=False),
    Backend("chdb-s3", clickhouse_server=False, s3=True),
    Backend("clickhouse-s3", clickhouse_server=True, s3=True),
    Backend("chdb-files", clickhouse_server=False, s3=False, body_store="files"),
)

_CHDB_USERS: list[str] = []
"""What holds the process's chdb engine right now (an embedded gateway or the HTTP server)."""


class _ChdbUse:
    """Registers one holder of the chdb engine and fails if another one is still alive."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        assert not _CHDB_USERS, f"{self.what} would overlap chdb users still alive: {_CHDB_USERS}"
        _CHDB_USERS.append(self.what)

    def __exit__(self, *exc: object) -> None:
        _CHDB_USERS.remove(self.what)


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def s3_server() -> Iterator[MotoS3Server]:
    """Only started when an S3 backend asks for it (and stopped at the end of the module)."""
    yield from moto_s3_server()


@pytest.fixture(scope="module", params=BACKENDS, ids=[b.name for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    return backend


@dataclass
class Stores:
    """The running stores behind one gateway, for checks that bypass the gateway."""

    clickhouse: ChdbHttpServer | None
    s3: MotoS3Server | None
    bucket: str | None


@pytest.fixture(scope="module")
def stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[Stores]:
    s3 = request.getfixturevalue("s3_server") if backend.s3 else None
    bucket = f"bodies-{backend.name}-{uuid.uuid4().hex[:8]}" if backend.s3 else None
    if not backend.clickhouse_server:
        yield Stores(None, s3, bucket)
        return
    with _ChdbUse(f"ChdbHttpServer[{backend.name}]"):
        server = ChdbHttpServer(tmp_path_factory.mktemp("clickhouse")).start()
        try:
            yield Stores(server, s3, bucket)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIEmulator,
    backend: Backend,
    stores: Stores,
) -> Iterator[tuple[GatewayServer, str]]:
    storage: dict[str, Any] = {"body_store": backend.body_store}
    if stores.clickhouse is not None:
        storage["clickhouse_url"] = stores.clickhouse.url
    if stores.s3 is not None:
        storage.update(
            s3_endpoint=stores.s3.endpoint,
            s3_bucket_name=stores.bucket,
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
        )
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
        allowed_target_hosts=[upstream.origin],
        logging_enabled=True,
        log_flush_ms=20,
        **storage,
    )
    key = create_key(settings)
    if stores.clickhouse is not None:
        with GatewayServer(settings) as server:
            yield server, key
        return
    with _ChdbUse(f"embedded chdb gateway[{backend.name}]"), GatewayServer(settings) as server:
        yield server, key


@pytest.fixture
def client(gateway: tuple[GatewayServer, str]) -> openai.OpenAI:
    server, key = gateway
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_backend_is_the_one_configured(
    gateway: tuple[GatewayServer, str], backend: Backend, stores: Stores, client: openai.OpenAI
) -> None:
    """The parametrisation really switches the stores (not just the settings)."""
    server, _ = gateway
    writer = server.runtime.writer
    assert writer is not None
    assert type(writer.bodies) is backend.body_store_type
    assert writer.transport.name == ("clickhouse" if backend.clickhouse_server else "chdb")
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    row = record(server, raw.headers["helicone-id"])
    org, request_id = row["organization_id"], row["request_id"]
    if stores.clickhouse is not None:
        inserts = [r for r in stores.clickhouse.requests
                   if r.sql_text.lstrip().upper().startswith("INSERT") and r.status == 200]
        assert inserts, "no INSERT reached the ClickHouse server"
    if stores.s3 is not None:
        # The object is in the bucket, read back with a plain client (not the gateway's).
        blob = s3_client(stores.s3.endpoint).get_object(
            Bucket=stores.bucket, Key=body_key(org, request_id)
        )["Body"].read()
        assert decode_bodies(blob)["request"]["messages"] == MESSAGES
    elif backend.body_store == "files":
        assert isinstance(writer.bodies, LocalBodyStore)
        assert writer.bodies.path(org, request_id).is_file()
    else:
        assert (server.settings.data_dir / "bodies").exists()


def record(server: GatewayServer, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The ClickHouse row of ``request_id`` once the writer has flushed it."""
    writer = server.runtime.writer
    assert writer is not None
    deadline = time.monotonic() + timeout
    while True:
        found = server.call(
            writer.transport.query(
                f"SELECT *, total_tokens, session_id, session_path, session_name "
                f"FROM {REQUEST_TABLE} FINAL WHERE request_id = {{id:UUID}}",
                {"id": request_id},
            )
        )
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no record for {request_id}; counters {writer.counters}")
        time.sleep(0.05)


def bodies(server: GatewayServer, org: str, request_id: str) -> dict[str, Any] | None:
    writer = server.runtime.writer
    assert writer is not None
    blob = server.call(writer.bodies.get(org, request_id))
    return None if blob is None else decode_bodies(blob)


def test_plain_chat_record(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, backend: Backend
) -> None:
    server, _ = gateway
    session = str(uuid.uuid4())
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={
            "Helicone-User-Id": "alice@example.com",
            "Helicone-Property-Environment": "prod",
            "Helicone-Session-Id": session,
            "Helicone-Session-Path": "/plan/step-1",
            "Helicone-Session-Name": "Trip plan",
        },
    )
    completion = raw.parse()
    row = record(server, raw.headers["helicone-id"])
    assert row["status"] == 200
    assert row["provider"] == "openai"
    assert row["model"] == row["request_model"] == row["response_model"] == "gpt-4o-mini"
    assert row["request_path"] == "/v1/chat/completions"
    assert row["user_id"] == "alice@example.com"
    assert row["properties"]["environment"] == "prod"
    assert (row["session_id"], row["session_path"], row["session_name"]) == (
        session, "/plan/step-1", "Trip plan"
    )
    assert completion.usage is not None
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert row["total_tokens"] == completion.usage.total_tokens
    assert row["tokens_estimated"] is False
    assert row["cost"] > 0 and row["cost_known"] is True
    assert row["latency"] is not None and row["latency"] >= 0
    assert row["is_stream"] is False
    assert row["storage_location"] == backend.storage_location
    stored = bodies(server, row["organization_id"], row["request_id"])
    assert stored is not None
    assert stored["request"]["messages"] == MESSAGES
    assert stored["response"]["choices"][0]["message"]["content"] == (
        completion.choices[0].message.content
    )


def test_stream_record_with_usage_injected_and_stripped(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    upstream.inject(Fault(chunk_delay=0.05, path="/chat/completions"))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        request_id = response.headers["helicone-id"]
        chunks = list(response.parse())
    # The client did not ask for usage: it gets no usage chunk…
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    # …but the gateway asked upstream for it, and logged it.
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}
    row = record(server, request_id)
    assert row["is_stream"] is True
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["tokens_estimated"] is False
    assert row["cost"] > 0
    assert row["time_to_first_token"] is not None
    assert row["latency"] >= row["time_to_first_token"]
    assert row["latency"] >= 100  # the emulator paced its events 50 ms apart
    stored = bodies(server, row["organization_id"], request_id)
    assert stored is not None
    assert "data: [DONE]" in stored["response"]["stream"]
    assert stored["response"]["reconstructed"]["choices"][0]["message"]["content"] == text


def test_stream_usage_kept_when_client_asked(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_responses_stream_record(gateway: tuple[GatewayServer, str], client: openai.OpenAI) -> None:
    server, _ = gateway
    with client.responses.with_streaming_response.create(
        model="gpt-4o-mini", input="log me please", stream=True
    ) as response:
        request_id = response.headers["helicone-id"]
        events = list(response.parse())
    final = events[-1].response  # type: ignore[union-attr]
    row = record(server, request_id)
    assert row["prompt_tokens"] == final.usage.input_tokens
    assert row["completion_tokens"] == final.usage.output_tokens
    assert row["request_path"] == "/v1/responses"


def test_omit_headers_keep_bodies_out_but_metrics_in(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES,
        extra_headers={"Helicone-Omit-Request": "true"},
    )
    row = record(server, raw.headers["helicone-id"])
    stored = bodies(server, row["organization_id"], row["request_id"])
    assert stored is not None and stored["request"] is None and stored["response"] is not None
    assert row["prompt_tokens"] > 0 and row["cost"] > 0
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES,
        extra_headers={"Helicone-Omit-Request": "true", "Helicone-Omit-Response": "true"},
    )
    row = record(server, raw.headers["helicone-id"])
    assert bodies(server, row["organization_id"], row["request_id"]) is None
    assert row["storage_location"] == "omitted"
    assert row["completion_tokens"] > 0


def test_model_override_is_used_for_cost(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    raw = client.chat.completions.with_raw_response.create(
        model="my-finetune", messages=MESSAGES,
        extra_headers={"Helicone-Model-Override": "gpt-4o"},
    )
    row = record(server, raw.headers["helicone-id"])
    assert row["model"] == "gpt-4o" and row["model_override"] == "gpt-4o"
    assert row["cost_known"] is True and row["cost"] > 0
    raw = client.chat.completions.with_raw_response.create(model="my-finetune", messages=MESSAGES)
    row = record(server, raw.headers["helicone-id"])
    assert row["cost_known"] is False and row["cost"] == 0


def test_failures_are_logged(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.inject(Fault(status=429, path="/chat/completions"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    row = record(server, info.value.response.headers["helicone-id"])
    assert row["status"] == 429
    assert row["prompt_tokens"] is None  # no usage on errors, and no estimate either
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "x/nowhere", "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}"},
    )
    row = record(server, response.headers["helicone-id"])
    assert row["status"] == 400


def test_request_id_is_preassigned(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    request_id = str(uuid.uuid4())
    client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"Helicone-Request-Id": request_id}
    )
    assert record(server, request_id)["request_id"] == request_id


def test_passthrough_is_logged(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    sdk = openai.OpenAI(
        base_url=server.url + "/oai/v1", api_key=KEY,
        default_headers={"Helicone-Auth": f"Bearer {key}"}, max_retries=0,
    )
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    row = record(server, raw.headers["helicone-id"])
    assert row["request_path"] == "/oai/v1/chat/completions"
    assert row["request_model"] == "gpt-4o-mini"
    assert row["prompt_tokens"] > 0


def test_no_usage_means_estimated_tokens(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    """A stream without usage is estimated with tiktoken.

    ``Helicone-Target-Url`` relays any format, so the gateway does not ask for usage there
    (the provider routes do, see tests/test_sse.py).
    """
    server, key = gateway
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={"authorization": f"Bearer {KEY}", "helicone-auth": f"Bearer {key}",
                 "helicone-target-url": upstream.origin},
    ) as response:
        request_id = response.headers["helicone-id"]
        response.read()
    row = record(server, request_id)
    assert row["tokens_estimated"] is True
    assert row["prompt_tokens"] == 3  # "log me please" in o200k_base
    assert row["completion_tokens"] > 0


def test_concurrent_answers_come_after_their_records_are_journaled(
    gateway: tuple[GatewayServer, str],
) -> None:
    """Under concurrency the server groups the journal's appends of one loop turn
    (logging_pipeline/journal.py ``GroupCommit``, handed to the protocol through the lifespan
    state): however they are grouped, every answer reaches its client only once its record is
    in the journal, and every record is written."""
    server, key = gateway
    writer = server.runtime.writer
    assert writer is not None
    journal = writer.journal
    before = journal.appended
    journaled_at_answer: list[int] = []

    async def ask(client: httpx.AsyncClient) -> str:
        response = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
        )
        journaled_at_answer.append(journal.appended - before)  # read in the client's thread
        assert response.status_code == 200, response.text
        return response.headers["helicone-id"]

    async def ask_all() -> list[str]:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            return await asyncio.gather(*(ask(client) for _ in range(24)))

    request_ids = asyncio.run(ask_all())
    assert journal.group.serving
    # The n-th answer to arrive found at least n records journaled.
    assert all(seen >= n for n, seen in enumerate(journaled_at_answer, start=1))
    for request_id in request_ids:
        assert record(server, request_id)["status"] == 200


def test_counters_account_for_every_request(gateway: tuple[GatewayServer, str]) -> None:
    server, _ = gateway
    writer = server.runtime.writer
    assert writer is not None
    deadline = time.monotonic() + 10
    while writer.counters.written < writer.counters.enqueued and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.counters.written == writer.counters.enqueued
    assert writer.counters.lost == 0 and writer.counters.pending_bytes == 0
