"""End to end: Helicone's own manual-logger SDKs against a real gateway (issue 16, items 1, 4
and 5 for the manual logger).

``helicone-helpers`` (Python) and ``@helicone/helpers`` (Node, ``tests/node``) post to the
gateway exactly as they post to Helicone: ``logging_endpoint`` / ``loggingEndpoint`` is the
only thing changed. The calls they log are real OpenAI SDK calls answered by the emulator.
Every record is then read back through the query API (``/v1/request/query-ids``,
``GET /v1/request/{id}?includeBody=true``, ``/v1/session/query``): model, tokens, cost,
latency, time to first token, status, properties, session, body. Every wait is a bounded
poll; nothing is asserted about speed.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from helicone_helpers import HeliconeManualLogger
from helicone_helpers.manual_logger import HeliconeResultRecorder, LoggingOptions

from providers.registry import Registry
from providers.usage import Usage
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings, wait_for

UPSTREAM_KEY = "sk-emulator"
NODE_DIR = Path(__file__).resolve().parent / "node"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@dataclass
class Gateway:
    server: GatewayServer
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return httpx.post(self.server.url + path, json=body, headers=self.headers | headers,
                          timeout=30)  # fmt: skip

    def record(self, request_id: str) -> dict[str, Any]:
        """The request as ``GET /v1/request/{id}?includeBody=true`` shows it, once written."""

        def fetch() -> dict[str, Any] | None:
            response = httpx.get(
                f"{self.server.url}/v1/request/{request_id}",
                params={"includeBody": "true"}, headers=self.headers, timeout=30,
            )  # fmt: skip
            if response.status_code == 404:
                return None
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()["data"]
            return data

        return wait_for(f"record {request_id}", fetch)

    def rows(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        response = self.post("/v1/request/query-ids", {"requestIds": request_ids})
        assert response.status_code == 200, response.text
        return {row["request_id"]: row for row in response.json()["data"]}

    def counters(self) -> dict[str, Any]:
        response = httpx.get(self.server.url + "/healthz", timeout=10)
        return dict(response.json()["logging"])


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=UPSTREAM_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = make_settings(
        tmp_path_factory.mktemp("manual-log"), logging_enabled=True, log_flush_ms=20,
        manual_log_max_bytes=64 * 1024,
    )  # fmt: skip
    key = create_key(settings, org="acme")
    with GatewayServer(settings) as server:
        yield Gateway(server, key)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
def client(upstream: OpenAIEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url, api_key=UPSTREAM_KEY, max_retries=0) as c:
        yield c


def logger(gateway: Gateway, **headers: str) -> HeliconeManualLogger:
    return HeliconeManualLogger(
        api_key=gateway.key, headers=headers, logging_endpoint=gateway.server.url
    )


def cost_usd(registry: Registry, provider: str, model: str, prompt: int, completion: int) -> float:
    return registry.cost(provider, model, Usage(prompt, completion)).nano_usd / 1e9


# --- helicone-helpers (Python) -----------------------------------------------------------------


def test_python_log_request_wraps_a_real_openai_call(
    gateway: Gateway, client: openai.OpenAI, registry: Registry
) -> None:
    request_id, session = str(uuid.uuid4()), f"py-session-{uuid.uuid4()}"
    request = {"model": "gpt-4o-mini", "messages": MESSAGES}

    def operation(recorder: HeliconeResultRecorder) -> Any:
        answer = client.chat.completions.create(**recorder.request)
        recorder.append_results(json.loads(answer.to_json()))
        return answer

    answer = logger(gateway, **{"Helicone-Property-App": "python"}).log_request(
        provider="openai", request=request, operation=operation,
        additional_headers={
            "Helicone-Request-Id": request_id, "Helicone-User-Id": "py-user",
            "Helicone-Session-Id": session, "Helicone-Session-Path": "/py",
            "Helicone-Session-Name": "py session",
        },
    )  # fmt: skip
    assert answer.usage is not None
    record = gateway.record(request_id)
    assert record["model"] == answer.model and record["provider"] == "openai"
    assert record["request_path"] == "/oai/v1/log"
    assert record["prompt_tokens"] == answer.usage.prompt_tokens
    assert record["completion_tokens"] == answer.usage.completion_tokens
    assert record["cost"] == pytest.approx(cost_usd(
        registry, "openai", answer.model, answer.usage.prompt_tokens,
        answer.usage.completion_tokens))  # fmt: skip
    assert record["cost"] > 0 and not record["tokens_estimated"]
    assert record["response_status"] == 200 and record["delay_ms"] >= 0
    assert record["request_user_id"] == "py-user"
    assert record["properties"] == {
        "app": "python", "Helicone-Session-Id": session, "Helicone-Session-Path": "/py",
        "Helicone-Session-Name": "py session",
    }  # fmt: skip
    assert record["request_body"]["messages"] == MESSAGES
    assert record["response_body"]["id"] == answer.id
    # A logged call was not proxied: no HTTP headers of its own are kept (not the log
    # request's, which carry the gateway key).
    assert record["request_headers"] is None and record["response_headers"] is None
    sessions = gateway.post("/v1/session/query", {
        "search": session, "timeFilter": {"startTimeUnixMs": 0,
        "endTimeUnixMs": int(time.time() * 1000) + 60_000}, "timezoneDifference": 0,
        "filter": "all",
    })  # fmt: skip
    assert sessions.status_code == 200, sessions.text
    [found] = [s for s in sessions.json()["data"] if s["session_id"] == session]
    assert found["total_requests"] == 1 and found["session_name"] == "py session"


@pytest.mark.parametrize(
    ("provider", "response", "path", "stored_provider", "model", "usage"),
    [
        (None, {"model": "my-model", "prompt_token_count": 7, "generation_token_count": 3},
         "/custom/v1/log", "custom", "my-model", Usage(7, 3)),
        ("openai", {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 12,
         "completion_tokens": 4, "total_tokens": 16}}, "/oai/v1/log", "openai", "gpt-4o-mini",
         Usage(12, 4)),
        ("anthropic", {"type": "message", "model": "claude-sonnet-4-5", "usage": {
         "input_tokens": 20, "output_tokens": 5, "cache_read_input_tokens": 10}},
         "/anthropic/v1/log", "anthropic", "claude-sonnet-4-5", Usage(30, 5, cache_read_tokens=10)),
        ("google", {"modelVersion": "gemini-2.5-flash", "usageMetadata": {
         "promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11}},
         "/custom/v1/log", "google-ai-studio", "gemini-2.5-flash", Usage(9, 2)),
    ],
    ids=["custom", "openai", "anthropic", "google"],
)  # fmt: skip
def test_python_send_log_with_each_provider_hint(
    gateway: Gateway, registry: Registry, provider: str | None, response: dict[str, Any],
    path: str, stored_provider: str, model: str, usage: Usage,
) -> None:  # fmt: skip
    request_id = str(uuid.uuid4())
    start = time.time() - 2
    logger(gateway).send_log(
        provider=provider,
        request={"model": model, "messages": MESSAGES},
        response=response,
        options=LoggingOptions(
            start_time=start, end_time=start + 1.25,
            additional_headers={"Helicone-Request-Id": request_id,
                                "Helicone-Property-Hint": str(provider)},
        ),
    )  # fmt: skip
    record = gateway.record(request_id)
    assert record["request_path"] == path
    assert (record["provider"], record["model"]) == (stored_provider, model)
    assert (record["prompt_tokens"], record["completion_tokens"]) == usage[:2]
    assert record["prompt_cache_read_tokens"] == usage.cache_read_tokens
    assert record["delay_ms"] == 1250
    assert record["properties"] == {"hint": str(provider)}
    priced = registry.cost(stored_provider, model, usage)
    if priced.known:
        assert record["cost"] == pytest.approx(priced.nano_usd / 1e9) and record["cost"] > 0
    else:
        assert record["cost"] is None  # "cost not supported": the model has no price


def test_python_string_response_with_time_to_first_token(gateway: Gateway) -> None:
    """helicone-helpers' documented "Direct Logging with String Response": a custom model, a
    string answer, ``time_to_first_token_ms=150``, no stream. The time to first token is
    recorded, the string counted for the estimate, and the unpriced model costs "unknown"."""
    request_id = str(uuid.uuid4())
    start = time.time() - 3
    joke = "Why did the chicken cross the road? To get to the other side!"
    logger(gateway).send_log(
        provider=None,
        request={"model": "custom-model", "prompt": "Tell me a joke"},
        response=joke,
        options=LoggingOptions(
            start_time=start, end_time=start + 1, time_to_first_token_ms=150,
            additional_headers={"Helicone-User-Id": "user-123", "Helicone-Request-Id": request_id},
        ),
    )  # fmt: skip
    record = gateway.record(request_id)
    assert (record["time_to_first_token"], record["delay_ms"]) == (150, 1000)
    assert record["request_user_id"] == "user-123" and record["response_body"] == joke
    assert record["tokens_estimated"] and record["completion_tokens"] > 0
    assert record["prompt_tokens"] > 0 and record["cost"] is None


def test_python_stream_with_time_to_first_token(
    gateway: Gateway, client: openai.OpenAI, registry: Registry
) -> None:
    request_id = str(uuid.uuid4())
    request = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True,
               "stream_options": {"include_usage": True}}  # fmt: skip
    start = time.time()
    chunks, first = [], None
    for chunk in client.chat.completions.create(**request):  # type: ignore[call-overload]
        first = first or time.time()
        chunks.append(chunk.model_dump_json())
    ttft_ms = (first - start) * 1000 + 40  # a known, distinct value (ms)
    logger(gateway).send_log(
        provider="openai", request=request, response="\n".join(chunks),
        options=LoggingOptions(start_time=start, end_time=start + 2, time_to_first_token_ms=ttft_ms,
                               additional_headers={"Helicone-Request-Id": request_id}),
    )  # fmt: skip
    record = gateway.record(request_id)
    usage = json.loads(chunks[-1])["usage"]
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        usage["prompt_tokens"], usage["completion_tokens"])  # fmt: skip
    assert record["time_to_first_token"] == round(ttft_ms)
    assert record["delay_ms"] == 2000 and record["cost"] > 0
    text = "".join(
        (json.loads(c)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for c in chunks
    )
    response = record["response_body"]
    assert response["reconstructed"]["choices"][0]["message"]["content"] == text


def test_python_documented_stream_recipe_with_log_request(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    """The Python page's "Streaming Responses" example: chunks and the time to first token
    recorded as the operation's results, posted as ``json`` by ``log_request``."""
    request_id = str(uuid.uuid4())
    request = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True,
               "stream_options": {"include_usage": True}}  # fmt: skip

    def stream_operation(recorder: HeliconeResultRecorder) -> list[Any]:
        chunks = list(client.chat.completions.create(**request))  # type: ignore[call-overload]
        # The logged call must outlast the reported time to first token: a first token after
        # the end is clamped to the end (an instant emulator answers within 7 ms).
        time.sleep(0.02)
        recorder.append_results({"chunks": [c.model_dump() for c in chunks],
                                 "time_to_first_token_ms": 7})  # fmt: skip
        return chunks

    chunks = logger(gateway).log_request(
        provider="openai", request=request, operation=stream_operation,
        additional_headers={"Helicone-Request-Id": request_id},
    )  # fmt: skip
    record = gateway.record(request_id)
    usage = chunks[-1].usage
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        usage.prompt_tokens, usage.completion_tokens)  # fmt: skip
    assert record["time_to_first_token"] == 7 and not record["tokens_estimated"]
    assert record["response_body"]["reconstructed"]["choices"][0]["message"]["content"]


def test_python_documented_anthropic_recipe(
    gateway: Gateway, upstream: OpenAIEmulator, registry: Registry
) -> None:
    """The Python page's "Using with Anthropic" example, the Messages call answered by the
    emulator."""
    request_id = str(uuid.uuid4())
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": MESSAGES}

    def anthropic_operation(recorder: HeliconeResultRecorder) -> Any:
        with anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key=UPSTREAM_KEY,
                                 max_retries=0) as sdk:  # fmt: skip
            response = sdk.messages.create(**request)  # type: ignore[call-overload]
        recorder.append_results({
            "id": response.id,
            "content": [{"text": block.text, "type": block.type} for block in response.content],
            "model": response.model, "role": response.role,
            "usage": {"input_tokens": response.usage.input_tokens,
                      "output_tokens": response.usage.output_tokens},
        })  # fmt: skip
        return response

    response = logger(gateway).log_request(
        provider="anthropic", request=request, operation=anthropic_operation,
        additional_headers={"Helicone-Request-Id": request_id},
    )  # fmt: skip
    record = gateway.record(request_id)
    assert record["request_path"] == "/anthropic/v1/log" and record["provider"] == "anthropic"
    assert record["model"] == response.model
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        response.usage.input_tokens, response.usage.output_tokens)  # fmt: skip
    priced = registry.cost("anthropic", response.model, Usage(
        response.usage.input_tokens, response.usage.output_tokens))  # fmt: skip
    assert priced.known and record["cost"] == pytest.approx(priced.nano_usd / 1e9)
    assert record["response_body"]["content"][0]["text"] == response.content[0].text  # type: ignore[union-attr]


# --- @helicone/helpers (Node) ------------------------------------------------------------------


def test_node_helpers_log_request_stream_and_builder(
    gateway: Gateway, upstream: OpenAIEmulator, registry: Registry
) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is required for the @helicone/helpers tests"
    assert (NODE_DIR / "node_modules" / "@helicone" / "helpers").is_dir(), (
        "tests/node/node_modules is missing: run `npm ci --prefix tests/node` (make install "
        "and .ci/run do)"
    )
    session = f"node-session-{uuid.uuid4()}"
    done = subprocess.run(
        [node, str(NODE_DIR / "manual_logger.mjs")], cwd=NODE_DIR, capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "GATEWAY_URL": gateway.server.url, "GATEWAY_KEY": gateway.key,
             "UPSTREAM_URL": upstream.base_url, "UPSTREAM_KEY": UPSTREAM_KEY,
             "SESSION_ID": session},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ids: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    records = {name: gateway.record(request_id) for name, request_id in ids.items()}

    for name in ("logRequest", "logStream", "logBuilder"):
        record = records[name]
        assert record["model"].startswith("gpt-4o-mini"), name
        assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0, name
        assert not record["tokens_estimated"], name
        assert record["cost"] == pytest.approx(cost_usd(
            registry, "openai", record["model"], record["prompt_tokens"],
            record["completion_tokens"])), name  # fmt: skip
        assert record["response_status"] == 200 and record["delay_ms"] >= 0, name
        assert record["request_user_id"] == "node-user", name
        assert record["properties"]["client"] == "node", name
        assert record["properties"]["Helicone-Session-Id"] == session, name
    assert records["logRequest"]["request_path"] == "/oai/v1/log"
    assert records["logRequest"]["response_body"]["choices"][0]["message"]["content"]
    for name in ("logStream", "logBuilder"):
        record = records[name]
        assert record["time_to_first_token"] is not None, name
        assert record["time_to_first_token"] <= record["delay_ms"], name
        reconstructed = record["response_body"]["reconstructed"]
        assert reconstructed["choices"][0]["message"]["content"], name

    error = records["logBuilderError"]
    assert error["response_status"] == 500
    assert "upstream exploded" in json.dumps(error["response_body"])

    tool = records["tool"]
    assert tool["model"] == "tool:calculator" and tool["cost"] == 0  # not an LLM call: known 0
    assert (tool["prompt_tokens"], tool["completion_tokens"]) == (0, 0)
    assert tool["delay_ms"] == 25
    assert tool["request_body"]["input"] == {"expression": "2 + 2"}
    assert tool["response_body"] == {"result": 4}

    google = records["google"]
    assert google["request_path"] == "/googleapis/v1/log"
    assert (google["provider"], google["model"]) == ("google-ai-studio", "gemini-2.5-flash")
    assert (google["prompt_tokens"], google["completion_tokens"]) == (11, 3)
    assert google["cost"] > 0


# --- refusals and isolation --------------------------------------------------------------------


def test_bad_bodies_are_clear_400s_and_do_not_stop_good_ones(gateway: Gateway) -> None:
    good = {"providerRequest": {"url": "custom-model-nopath", "json": {"model": "m"},
                                "meta": {}},
            "providerResponse": {"headers": {}, "status": 200, "json": {"ok": True}}}  # fmt: skip
    bad: list[Any] = [
        {"providerRequest": {"json": {}}},
        {**good, "timing": {"startTime": {"seconds": "soon"}}},
        {"providerRequest": {"json": "x"}, "providerResponse": {}},
    ]

    def send(index: int) -> tuple[int, httpx.Response, str | None]:
        request_id = str(uuid.uuid4()) if index % 2 == 0 else None
        if request_id is not None:
            return index, gateway.post("/custom/v1/log", good,
                                       **{"Helicone-Request-Id": request_id}), request_id
        return index, gateway.post("/custom/v1/log", bad[index % len(bad)]), None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(24)))
    for _, response, request_id in results:
        if request_id is None:
            assert response.status_code == 400, response.text
            assert response.json()["data"] is None
            assert "providerRe" in response.json()["error"] or "timing" in response.json()["error"]
        else:
            assert response.status_code == 200, response.text
            assert response.json() == {"data": {"request_id": request_id}, "error": None}
    for _, _, request_id in results:
        if request_id is not None:
            assert gateway.record(request_id)["model"] == "m"


def test_refusals_use_the_envelope(gateway: Gateway) -> None:
    body = {"providerRequest": {"json": {}}, "providerResponse": {"json": {"pad": "x" * 70_000}}}
    too_big = gateway.post("/custom/v1/log", body)
    assert too_big.status_code == 413
    assert "GATEWAY_MANUAL_LOG_MAX_BYTES" in too_big.json()["error"]
    not_json = httpx.post(gateway.server.url + "/custom/v1/log", content=b"{",
                          headers=gateway.headers | {"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    wrong_type = httpx.post(gateway.server.url + "/custom/v1/log", content=b"a=b",
                            headers=gateway.headers | {"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    unknown = httpx.post(gateway.server.url + "/custom/v1/log", json={},
                         headers={"authorization": "Bearer sk-helicone-nope"})
    assert unknown.status_code == 401 and unknown.json()["data"] is None


def test_the_key_needs_trace_write_and_scopes_the_record(gateway: Gateway) -> None:
    store = gateway.server.runtime.store
    reader, _ = gateway.server.call(store.create_key("acme", scopes=frozenset({"trace:read"})))
    writer, _ = gateway.server.call(store.create_key("other", scopes=frozenset({"trace:write"})))
    body = {"providerRequest": {"json": {"model": "m"}}, "providerResponse": {"json": {}}}
    refused = gateway.post("/custom/v1/log", body, authorization=f"Bearer {reader}")
    assert refused.status_code == 403 and "trace:write" in refused.json()["error"]
    request_id = str(uuid.uuid4())
    accepted = gateway.post("/custom/v1/log", body, authorization=f"Bearer {writer}",
                            **{"Helicone-Request-Id": request_id})  # fmt: skip
    assert accepted.status_code == 200, accepted.text
    # Logged under the writer key's organisation: another organisation's key never sees it.
    other = Gateway(gateway.server, writer)
    assert other.record(request_id)["model"] == "m"
    assert gateway.rows([request_id]) == {}


def test_records_accepted_are_records_written(gateway: Gateway) -> None:
    before = gateway.counters()
    ids = [str(uuid.uuid4()) for _ in range(20)]
    body = {"providerRequest": {"json": {"model": "gpt-4o-mini"}},
            "providerResponse": {"json": {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}}}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(
            lambda i: gateway.post("/custom/v1/log", body, **{"Helicone-Request-Id": i}), ids))
    assert all(a.status_code == 200 for a in answers)

    def caught_up() -> dict[str, Any] | None:
        now = gateway.counters()
        done = now["written"] - now.get("replayed", 0) + now["lost"]
        return now if done >= now["enqueued"] else None

    after = wait_for("the writer to catch up", caught_up)
    assert after["enqueued"] - before["enqueued"] == len(ids)  # one record per log call
    assert after["lost"] == before["lost"] and after["written"] - before["written"] >= len(ids)
    assert set(gateway.rows(ids)) == set(ids)
