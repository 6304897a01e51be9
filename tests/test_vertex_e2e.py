"""Vertex AI end to end: the openai SDK, the anthropic SDK's ``AnthropicVertex`` and raw HTTP →
a real gateway → the emulator speaking Vertex AI (Gemini and Claude on Vertex's paths, Google's
token endpoint verifying the service account's signed JWTs), logging on.

The gateway's managed key is a real service-account key (a fresh RSA key the emulator
registered); ``VERTEX_BASE_URL`` points Vertex at the emulator, the project and location
(``emu-project``, ``us-east5``) come from the settings, a BYOK deployment's from the key store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from google.oauth2.credentials import Credentials as OAuthCredentials
from openai.types import CreateEmbeddingResponse

from gateway.settings import Settings
from gateway.store import Deployment
from tests.emulator import Fault, OpenAIEmulator
from tests.emulator.embeddings import vector
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

PROJECT, LOCATION = "emu-project", "us-east5"
ANTHROPIC_KEY = "sk-ant-emulator"
ECHO = "Hello from the emulator. You said: "
PREFIX = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers"
GEMINI = "gemini-2.5-flash/vertex"
CLAUDE = "claude-sonnet-4/vertex"
TOOLS: list[Any] = [{
    "type": "function",
    "function": {"name": "lookup", "description": "Look something up.",
                 "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}}},
}]


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=ANTHROPIC_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def service_account(upstream: OpenAIEmulator) -> str:
    return upstream.vertex.new_service_account(upstream.origin, project="sa-own-project")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator, service_account: str
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"vertex": service_account, "anthropic": ANTHROPIC_KEY},
        provider_base_urls={"vertex": upstream.origin, "anthropic": upstream.anthropic_base_url},
        vertex_project=PROJECT,
        vertex_location=LOCATION,
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
    upstream.vertex.token_lifetime = 3600


@pytest.fixture
def client(gateway: tuple[GatewayServer, str]) -> Iterator[openai.OpenAI]:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


def _model_calls(upstream: OpenAIEmulator) -> list[Any]:
    return [r for r in upstream.requests if r.path != "/oauth2/token"]


# --- Gemini on Vertex ----------------------------------------------------------------------------


def test_gemini_chat_goes_to_the_projects_location_with_a_minted_token(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    raw = client.chat.completions.with_raw_response.create(
        model=GEMINI, messages=[{"role": "system", "content": "Be brief."}, *_user("what is up")]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == ECHO + "what is up"
    sent = _model_calls(upstream)[-1]
    assert sent.path == f"{PREFIX}/google/models/gemini-2.5-flash:generateContent"
    assert sent.headers["authorization"].startswith("Bearer ya29.emu-")
    assert "x-goog-api-key" not in sent.headers and "helicone-auth" not in sent.headers
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    row = record(server, raw.headers["helicone-id"])
    assert (row["provider"], row["wire_format"]) == ("vertex", "gemini")
    assert row["prompt_tokens"] == completion.usage.prompt_tokens > 0  # type: ignore[union-attr]
    assert row["tokens_estimated"] is False and row["cost"] > 0
    assert row["target_url"] == (
        "{VERTEX_BASE_URL}" + f"{PREFIX}/google/models/gemini-2.5-flash:generateContent"
    )


def test_gemini_streams_and_tools_through_the_sdks_helpers(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    with client.chat.completions.stream(
        model=GEMINI, messages=_user("find it"), tools=TOOLS
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls" and call and call[0].type == "function"
    assert call[0].function.name == "lookup"
    sent = _model_calls(upstream)[-1]
    assert sent.path.endswith(":streamGenerateContent") and sent.query == "alt=sse"
    response = client.responses.create(model=GEMINI, input="and now the Responses API")
    assert response.output_text == ECHO + "and now the Responses API"


# --- Claude on Vertex ----------------------------------------------------------------------------


def test_claude_goes_to_raw_predict_with_vertexs_anthropic_version_and_no_model(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    raw = client.chat.completions.with_raw_response.create(
        model=CLAUDE, messages=_user("hello claude"), max_completion_tokens=100
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == ECHO + "hello claude"
    sent = _model_calls(upstream)[-1]
    assert sent.path == f"{PREFIX}/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    assert sent.json["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent.json
    assert sent.json["max_tokens"] == 100
    assert "x-api-key" not in sent.headers and "anthropic-version" not in sent.headers
    row = record(server, raw.headers["helicone-id"])
    assert (row["provider"], row["wire_format"]) == ("vertex", "anthropic")
    assert row["prompt_tokens"] == completion.usage.prompt_tokens > 0  # type: ignore[union-attr]
    assert row["tokens_estimated"] is False and row["cost"] > 0


def test_claude_streams_through_stream_raw_predict(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    chunks = client.chat.completions.create(
        model=CLAUDE, messages=_user("stream it"), stream=True,
        stream_options={"include_usage": True},
    )
    received = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == ECHO + "stream it"
    assert received[-1].usage is not None and received[-1].usage.total_tokens > 0
    sent = _model_calls(upstream)[-1]
    assert sent.path.endswith("claude-sonnet-4@20250514:streamRawPredict")
    assert sent.json["stream"] is True
    row = record(server, chunks.response.headers["helicone-id"])
    assert row["wire_format"] == "anthropic" and row["is_stream"] is True
    assert row["completion_tokens"] == received[-1].usage.completion_tokens


def test_claude_errors_keep_anthropics_message_and_vertexs_own_are_googles(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(status=529, path=":rawPredict"))
    with pytest.raises(openai.InternalServerError) as overloaded:
        client.chat.completions.create(model=CLAUDE, messages=_user("busy?"))
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["type"] == "overloaded_error"  # type: ignore[index]
    upstream.inject(Fault(status=403, path=":rawPredict"))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model=CLAUDE, messages=_user("allowed?"))
    assert denied.value.body["code"] == "PERMISSION_DENIED"  # type: ignore[index]


def test_claude_fails_over_from_anthropic_to_vertex(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    upstream.inject(Fault(status=529, path="/v1/messages"))
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4/anthropic,claude-sonnet-4/vertex", messages=_user("either way")
    )
    assert raw.parse().choices[0].message.content == ECHO + "either way"
    assert raw.headers["helicone-fallback-index"] == "1"
    paths = [r.path for r in _model_calls(upstream)]
    vertex_path = f"{PREFIX}/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    assert paths == ["/v1/messages", vertex_path]
    row = record(server, raw.headers["helicone-id"])
    assert (row["provider"], row["wire_format"]) == ("vertex", "anthropic")


# --- embeddings: Vertex's text embeddings API (:predict) ---------------------------------------


def test_embeddings_go_to_predict_and_come_back_as_openais_object(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    one = client.embeddings.with_raw_response.create(
        model="text-embedding-005/vertex", input="hello there", dimensions=8
    )  # the SDK asks for base64 and decodes it
    embedded = one.parse()
    expected = vector("text-embedding-005", "hello there", 8)
    assert embedded.data[0].embedding == pytest.approx(expected)
    assert embedded.model == "text-embedding-005" and embedded.object == "list"
    assert embedded.usage.prompt_tokens == embedded.usage.total_tokens == 2
    sent = _model_calls(upstream)[-1]
    assert sent.path == f"{PREFIX}/google/models/text-embedding-005:predict"
    assert sent.headers["authorization"].startswith("Bearer ya29.emu-")
    assert sent.json == {
        "instances": [{"content": "hello there"}],
        "parameters": {"autoTruncate": False, "outputDimensionality": 8},
    }
    row = record(server, one.headers["helicone-id"])
    assert (row["provider"], row["wire_format"], row["model"]) == (
        "vertex", "gemini", "text-embedding-005"
    )
    assert row["prompt_tokens"] == 2 and row["tokens_estimated"] is False and row["cost"] > 0
    many = client.embeddings.with_raw_response.create(
        model="text-embedding-005/vertex", input=["first one", "and the second"],
        encoding_format="float",
        extra_body={"task_type": "RETRIEVAL_DOCUMENT", "title": "notes", "auto_truncate": True},
    )
    body = many.http_response.json()  # the exact OpenAI object, as floats
    CreateEmbeddingResponse.model_validate(body)
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][1]["embedding"]) == 768  # the model's own size
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert _model_calls(upstream)[-1].json == {
        "instances": [
            {"content": "first one", "task_type": "RETRIEVAL_DOCUMENT", "title": "notes"},
            {"content": "and the second", "task_type": "RETRIEVAL_DOCUMENT", "title": "notes"},
        ],
        "parameters": {"autoTruncate": True},
    }


def test_embeddings_input_vertex_cannot_take_is_a_clear_400(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    one = client.embeddings.create(model="gemini-embedding-001/vertex", input="just one")
    assert len(one.data[0].embedding) == 3072
    refused: list[tuple[dict[str, Any], str, str]] = [
        ({"model": "gemini-embedding-001/vertex", "input": ["a", "b"]}, "input", "at most 1"),
        ({"model": "text-embedding-005/vertex", "input": [1, 2, 3]}, "input", "token ids"),
        ({"model": "text-embedding-005/vertex", "input": "x",
          "extra_body": {"task_type": "SUMMARY"}}, "task_type", "task_type"),
        ({"model": "text-embedding-005/vertex", "input": "x",
          "extra_body": {"title": "no task"}}, "title", "RETRIEVAL_DOCUMENT"),
    ]
    before = len(_model_calls(upstream))
    for kwargs, param, words in refused:
        with pytest.raises(openai.BadRequestError) as caught:
            client.embeddings.create(**kwargs)
        assert caught.value.status_code == 400 and words in caught.value.message
        assert caught.value.body["param"] == param  # type: ignore[index]
    assert len(_model_calls(upstream)) == before  # nothing went upstream
    # Over the model's limit: Vertex's own 400 (no silent truncation, as with OpenAI).
    with pytest.raises(openai.BadRequestError) as long:
        client.embeddings.create(model="text-embedding-005/vertex", input="word " * 2100)
    assert "input token count is 2100" in long.value.message
    assert long.value.body["code"] == "INVALID_ARGUMENT"  # type: ignore[index]


def test_embeddings_errors_keep_googles_status_and_message(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(status=429, path=":predict"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.embeddings.create(model="text-embedding-005/vertex", input="busy")
    assert caught.value.body == {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "rate_limit_error", "param": None, "code": "RESOURCE_EXHAUSTED",
    }


def test_google_genai_embeddings_in_vertex_mode_through_the_passthrough(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.vertex.access_tokens.add("ya29.embed")
    sdk = genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION,
        credentials=OAuthCredentials("ya29.embed"),  # type: ignore[no-untyped-call]
        http_options=genai_types.HttpOptions(
            base_url=server.url + "/v1/gateway/vertex/", api_version="v1",
            headers={"helicone-auth": f"Bearer {key}"},
        ),
    )
    answer = sdk.models.embed_content(
        model="text-embedding-005", contents=["embed me please"],
        config=genai_types.EmbedContentConfig(output_dimensionality=4),
    )
    assert answer.embeddings and answer.embeddings[0].values == pytest.approx(
        vector("text-embedding-005", "embed me please", 4)
    )
    assert _model_calls(upstream)[-1].path == f"{PREFIX}/google/models/text-embedding-005:predict"
    row = record(server, answer.sdk_http_response.headers["helicone-id"])  # type: ignore[union-attr, index]
    assert (row["provider"], row["wire_format"], row["model"]) == (
        "vertex", "gemini", "text-embedding-005"
    )
    assert row["prompt_tokens"] == 3 and row["tokens_estimated"] is False and row["cost"] > 0


def test_a_multi_region_deployment_sends_its_location_in_the_path(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator,
    service_account: str,
) -> None:
    server, _ = gateway
    _byok(server, service_account, "eu-pool", project="org-project", location="eu")
    answer = client.chat.completions.create(
        model="claude-sonnet-4/vertex/eu-pool", messages=_user("in europe")
    )
    assert answer.choices[0].message.content == ECHO + "in europe"
    assert _model_calls(upstream)[-1].path == (
        "/v1/projects/org-project/locations/eu/publishers/anthropic/models/"
        "claude-sonnet-4@20250514:rawPredict"
    )


# --- tokens: minted once, refreshed before expiry, failures are clear ---------------------------


def test_one_token_serves_many_requests(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    client.chat.completions.create(model=GEMINI, messages=_user("warm up"))
    before = upstream.vertex.mints
    for i in range(5):
        client.chat.completions.create(model=GEMINI if i % 2 else CLAUDE, messages=_user("again"))
    assert upstream.vertex.mints == before
    assert len({r.headers["authorization"] for r in _model_calls(upstream)}) == 1


def _byok(server: GatewayServer, api_key: str, deployment_id: str, **place: str) -> None:
    store = server.runtime.store
    org_id = server.call(store.ensure_org("default"))
    server.call(
        store.provider_keys.create(
            org_id, provider="vertex", name=deployment_id, api_key=api_key,
            deployment=Deployment(**place), deployment_id=deployment_id,
        )
    )
    server.runtime.provider_keys.invalidate(org_id)


def test_a_token_about_to_expire_is_replaced_before_use(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    own = upstream.vertex.new_service_account(upstream.origin, project="short-lived")
    _byok(server, own, "short", project="org-project", location="europe-west4")
    upstream.vertex.token_lifetime = 60  # inside the gateway's five minutes of margin
    before = upstream.vertex.mints
    for _ in range(2):
        client.chat.completions.create(model="gemini-2.5-flash/vertex/short", messages=_user("x"))
    assert upstream.vertex.mints - before == 2
    calls = _model_calls(upstream)
    assert calls[0].headers["authorization"] != calls[1].headers["authorization"]
    # The deployment's own project and location.
    assert calls[0].path.startswith("/v1/projects/org-project/locations/europe-west4/")


def test_a_key_the_token_endpoint_refuses_is_a_401_with_the_reason(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    stranger = OpenAIEmulator().vertex.new_service_account(upstream.origin)  # unknown key
    _byok(server, stranger, "stranger", project="org-project", location="global")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(
            model="gemini-2.5-flash/vertex/stranger", messages=_user("x")
        )
    assert caught.value.status_code == 401
    assert "Invalid JWT Signature" in caught.value.message
    assert _model_calls(upstream) == []


def test_an_unreachable_token_endpoint_is_a_502(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    info = json.loads(upstream.vertex.new_service_account(upstream.origin))
    info["token_uri"] = "http://127.0.0.1:9/oauth2/token"  # discard: nothing listens
    _byok(server, json.dumps(info), "unreachable", project="org-project", location="global")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gemini-2.5-flash/vertex/unreachable", messages=_user("x")
        )
    assert caught.value.status_code == 502
    assert "token endpoint could not be reached" in caught.value.message


def test_a_client_sends_its_own_access_token(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.vertex.access_tokens.add("ya29.client-own")
    before = upstream.vertex.mints
    with openai.OpenAI(
        base_url=server.url + "/v1", api_key="ya29.client-own", max_retries=0,
        default_headers={"helicone-auth": f"Bearer {key}"},
    ) as sdk:
        answer = sdk.chat.completions.create(model=CLAUDE, messages=_user("mine"))
    assert answer.choices[0].message.content == ECHO + "mine"
    assert _model_calls(upstream)[-1].headers["authorization"] == "Bearer ya29.client-own"
    assert upstream.vertex.mints == before


# --- native passthrough -----------------------------------------------------------------------


def test_the_vertex_path_is_forwarded_unchanged_and_logged_with_googles_usage(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.vertex.access_tokens.add("ya29.passthrough")
    path = f"{PREFIX}/google/models/gemini-2.5-flash:generateContent"
    response = httpx.post(
        server.url + "/v1/gateway/vertex" + path,
        headers={"helicone-auth": f"Bearer {key}", "authorization": "Bearer ya29.passthrough"},
        json={"contents": [{"role": "user", "parts": [{"text": "relayed"}]}]},
    )
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]
    assert sent.path == path and sent.headers["authorization"] == "Bearer ya29.passthrough"
    row = record(server, response.headers["helicone-id"])
    assert (row["provider"], row["wire_format"]) == ("vertex", "gemini")
    assert row["request_model"] == "gemini-2.5-flash" and row["model"] == "gemini-2.5-flash"
    usage = response.json()["usageMetadata"]
    assert row["prompt_tokens"] == usage["promptTokenCount"] and row["cost"] > 0
    assert row["tokens_estimated"] is False


def test_anthropic_vertex_sdk_through_the_passthrough_logs_claudes_usage(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.vertex.access_tokens.add("ya29.sdk")
    sdk = anthropic.AnthropicVertex(
        project_id=PROJECT, region=LOCATION, access_token="ya29.sdk", max_retries=0,
        base_url=server.url + "/v1/gateway/vertex/v1",
        default_headers={"helicone-auth": f"Bearer {key}"},
    )
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-4@20250514", max_tokens=64,
        messages=[{"role": "user", "content": "through the sdk"}],
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == ECHO + "through the sdk"
    with sdk.messages.stream(
        model="claude-sonnet-4@20250514", max_tokens=64,
        messages=[{"role": "user", "content": "streamed sdk"}],
    ) as stream:
        streamed = stream.get_final_message()
        stream_id = stream.response.headers["helicone-id"]
    assert upstream.requests[-1].path.endswith(":streamRawPredict")
    row = record(server, raw.headers["helicone-id"])
    assert (row["provider"], row["wire_format"]) == ("vertex", "anthropic")
    assert row["request_model"] == "claude-sonnet-4@20250514"
    assert row["prompt_tokens"] == message.usage.input_tokens and row["cost"] > 0
    row = record(server, stream_id)
    assert row["is_stream"] is True and row["completion_tokens"] == streamed.usage.output_tokens
    assert row["cost"] > 0 and row["tokens_estimated"] is False


def test_the_target_url_form_of_the_vertex_path(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.vertex.access_tokens.add("ya29.target")
    path = f"{PREFIX}/google/models/gemini-2.5-flash:streamGenerateContent"
    with httpx.stream(
        "POST", server.url + path + "?alt=sse",
        headers={"helicone-auth": f"Bearer {key}", "authorization": "Bearer ya29.target",
                 "helicone-target-url": upstream.origin, "helicone-target-provider": "vertex"},
        json={"contents": [{"role": "user", "parts": [{"text": "by target url"}]}]},
    ) as response:
        body = response.read()
    assert response.status_code == 200 and b"data: " in body
    row = record(server, response.headers["helicone-id"])
    assert row["wire_format"] == "gemini" and row["request_model"] == "gemini-2.5-flash"
    assert row["is_stream"] is True and row["completion_tokens"] > 0 and row["cost"] > 0


def test_a_passthrough_path_without_a_location_is_a_400(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    key = create_key(settings)
    with GatewayServer(settings) as bare:  # Vertex's own hosts, chosen by the path
        response = httpx.post(
            bare.url + "/v1/gateway/vertex/v1/models/gemini-2.5-flash:generateContent",
            headers={"helicone-auth": f"Bearer {key}", "authorization": "Bearer t"}, json={},
        )
    assert response.status_code == 400 and "locations/{location}" in response.text


# --- configuration ---------------------------------------------------------------------------


def test_the_key_file_project_and_location_come_from_googles_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, service_account: str
) -> None:
    monkeypatch.delenv("VERTEX_API_KEY", raising=False)
    path = tmp_path / "sa.json"
    path.write_text(service_account)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.provider_api_keys["vertex"] == service_account
    assert (settings.vertex_project, settings.vertex_location) == ("env-project", "europe-west4")
    monkeypatch.setenv("VERTEX_API_KEY", "ya29.inline")
    monkeypatch.setenv("GATEWAY_VERTEX_LOCATION", "global")
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.provider_api_keys["vertex"] == "ya29.inline"
    assert settings.vertex_location == "global"
    monkeypatch.setenv("GATEWAY_VERTEX_LOCATION", "evil.example.com/")
    with pytest.raises(ValueError, match="Vertex location"):
        Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    monkeypatch.setenv("GATEWAY_VERTEX_LOCATION", "global")
    monkeypatch.delenv("VERTEX_API_KEY")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]


def test_the_project_defaults_to_the_service_accounts_own(
    tmp_path: Path, upstream: OpenAIEmulator, service_account: str
) -> None:
    settings = make_settings(
        tmp_path,
        provider_api_keys={"vertex": service_account},
        provider_base_urls={"vertex": upstream.origin},
    )
    key = create_key(settings)
    with GatewayServer(settings) as server, openai.OpenAI(
        base_url=server.url + "/v1", api_key=key, max_retries=0
    ) as sdk:
        sdk.chat.completions.create(model=GEMINI, messages=_user("whose project"))
    assert _model_calls(upstream)[-1].path.startswith(
        "/v1/projects/sa-own-project/locations/global/publishers/google/"
    )


def test_the_google_genai_sdk_in_vertex_mode_through_the_passthrough(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.vertex.access_tokens.add("ya29.genai")
    sdk = genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION,
        credentials=OAuthCredentials("ya29.genai"),  # type: ignore[no-untyped-call]
        http_options=genai_types.HttpOptions(
            base_url=server.url + "/v1/gateway/vertex/", api_version="v1",
            headers={"helicone-auth": f"Bearer {key}"},
        ),
    )
    whole = sdk.models.generate_content(model="gemini-2.5-flash", contents="vertex genai")
    pieces = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="again"))
    assert whole.text == ECHO + "vertex genai"
    assert "".join(piece.text or "" for piece in pieces) == ECHO + "again"
    sent = upstream.requests[-1]
    assert sent.path == f"{PREFIX}/google/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.headers["authorization"] == "Bearer ya29.genai"
    whole_id = whole.sdk_http_response.headers["helicone-id"]  # type: ignore[union-attr]
    row = record(server, whole_id)
    assert (row["provider"], row["wire_format"], row["model"]) == (
        "vertex", "gemini", "gemini-2.5-flash"
    )
    assert row["cost"] > 0 and row["tokens_estimated"] is False
