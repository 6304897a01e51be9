"""AWS Bedrock end to end: the openai SDK and boto3 → a real gateway → the emulator's Bedrock
runtime (bodies validated with botocore's service model, SigV4 recomputed with botocore,
streams as real binary event streams), logging on.

The matrix: {converse (``nova-pro/bedrock``), invoke (``claude-sonnet-4-5/bedrock``: Claude
through InvokeModel with Anthropic's body)} x {chat, responses} x {stream, non-stream} x
{text, tool call, parallel tool calls, tool-result follow-up, image input (a data URL and an
http URL the gateway fetches through its guarded fetcher), JSON schema output, and the finish
reasons length, content_filter (a guardrail), safety block, stop sequence}. Each cell's client
result and the requests the gateway sent upstream are compared with golden files under
``tests/fixtures/bedrock/matrix/`` (the matrix test's normaliser, ``UPDATE_GOLDEN=1``). Then
errors (status, message kept), an exception in the middle of an event stream, the request log
(usage and cost from Bedrock's own counts) and the boto3 passthrough
(``/bedrock/v1/{region}``, re-signed by the gateway).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import openai
import pytest
from botocore.config import Config

from gateway.fetcher import GuardedFetcher
from gateway.settings import Settings
from gateway.store import Deployment
from tests.emulator import BEDROCK_ACCESS_KEY, BEDROCK_SECRET_KEY, Fault, OpenAIEmulator
from tests.emulator.server import PIXEL_PATH
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record
from tests.test_translation_matrix import (
    CHAT_TOOLS,
    DATA_URL,
    RESPONSES_TOOLS,
    Normaliser,
    chat_call,
    error_result,
    responses_call,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bedrock" / "matrix"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
KEY = f"{BEDROCK_ACCESS_KEY}:{BEDROCK_SECRET_KEY}"
MODELS = {"converse": "nova-pro/bedrock", "invoke": "claude-sonnet-4-5/bedrock"}
IMAGE_HOST = "images.test"
UPSTREAM_HEADERS = ("accept", "content-type")


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"bedrock": KEY},
        provider_base_urls={"bedrock": upstream.origin},
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        # Image URLs are fetched by the gateway: let its fetcher reach the emulator's image.
        async def loopback_fetcher() -> GuardedFetcher:
            fetcher = GuardedFetcher(
                max_bytes=1 << 20,
                timeout=5,
                static_hosts={IMAGE_HOST: ["127.0.0.1"]},
                address_policy=lambda address: True,
            )
            await fetcher.start()
            return fetcher

        production = server.runtime.fetcher
        server.runtime.fetcher = server.call(loopback_fetcher())
        yield server, key
        server.call(server.runtime.fetcher.close())
        server.runtime.fetcher = production


@pytest.fixture(scope="module")
def client(gateway: tuple[GatewayServer, str]) -> Iterator[openai.OpenAI]:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture(autouse=True)
def _clean(upstream: OpenAIEmulator) -> Iterator[None]:
    upstream.reset()
    yield
    upstream.reset()


def sent_upstream(upstream: OpenAIEmulator, gateway_key: str) -> list[dict[str, Any]]:
    """What the gateway sent: raw path, the headers that matter, body. Every request carries
    a SigV4 signature (the emulator verified it) and nothing of the gateway's."""
    out = []
    for request in upstream.requests:
        if request.path == PIXEL_PATH:
            continue
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
        for name, value in request.headers.items():
            assert not name.startswith(("helicone-", "aws-")), name
            assert gateway_key not in value, f"the gateway key went upstream in {name}"
        headers = {
            name: request.headers[name] for name in UPSTREAM_HEADERS if name in request.headers
        }
        out.append({"path": request.raw_path, "headers": headers, "body": request.json})
    return out


def check_golden(scenario: str, cell: str, actual: dict[str, Any]) -> None:
    path = FIXTURES / f"{scenario}.json"
    golden: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    actual = json.loads(json.dumps(actual))
    if UPDATE:
        golden[cell] = actual
        FIXTURES.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(dict(sorted(golden.items())), indent=1, ensure_ascii=False) + "\n"
        )
        return
    assert cell in golden, f"{path.name} has no cell {cell!r}: record it with UPDATE_GOLDEN=1"
    assert actual == golden[cell]


# --- the matrix -----------------------------------------------------------------------------------


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _image_url(upstream: OpenAIEmulator) -> str:
    return f"http://{IMAGE_HOST}:{upstream.port}{PIXEL_PATH}"


def _chat_follow_up(client: openai.OpenAI, model: str, upstream: OpenAIEmulator) -> dict[str, Any]:
    messages = _user("find the answer [[text+tool]]")
    first = client.chat.completions.create(model=model, messages=messages, tools=CHAT_TOOLS)
    message = first.choices[0].message
    assert message.tool_calls
    return {
        "tools": CHAT_TOOLS,
        "messages": [
            *messages,
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [call.model_dump() for call in message.tool_calls],
            },
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "found: 42"},
        ],
    }


def _responses_follow_up(
    client: openai.OpenAI, model: str, upstream: OpenAIEmulator
) -> dict[str, Any]:
    first = client.responses.create(
        model=model, input="find the answer [[text+tool]]", tools=RESPONSES_TOOLS
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls
    return {
        "tools": RESPONSES_TOOLS,
        "input": [
            {"role": "user", "content": "find the answer [[text+tool]]"},
            *(item.model_dump(exclude_none=True) for item in first.output),
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "found: 42"},
        ],
    }


SCHEMA = {
    "type": "object",
    "properties": {"echo": {"type": "string"}},
    "required": ["echo"],
    "additionalProperties": False,
}
LONG = "please answer this question with a long and detailed explanation of every step"


def _scenario(
    name: str, api: str, upstream: OpenAIEmulator, client: openai.OpenAI, model: str
) -> dict[str, Any]:
    chat = api == "chat"
    if name == "text":
        if chat:
            return {"messages": [{"role": "system", "content": "Be brief."}, *_user("what is up")]}
        return {"instructions": "Be brief.", "input": "what is up"}
    if name in ("tool_call", "parallel_tool_calls"):
        text = "look up both [[parallel]]" if name == "parallel_tool_calls" else "find the answer"
        return (
            {"messages": _user(text), "tools": CHAT_TOOLS}
            if chat
            else {"input": text, "tools": RESPONSES_TOOLS}
        )
    if name == "tool_result_follow_up":
        return (_chat_follow_up if chat else _responses_follow_up)(client, model, upstream)
    if name == "image_input":
        if chat:
            return {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what are these"},
                            {
                                "type": "image_url",
                                "image_url": {"url": _image_url(upstream), "detail": "low"},
                            },
                            {"type": "image_url", "image_url": {"url": DATA_URL}},
                        ],
                    }
                ]
            }
        return {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what are these"},
                        {"type": "input_image", "image_url": _image_url(upstream), "detail": "low"},
                        {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
                    ],
                }
            ]
        }
    if name == "json_schema":
        if chat:
            return {
                "messages": _user("answer in JSON"),
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": SCHEMA},
                },
            }
        return {
            "input": "answer in JSON",
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA}},
        }
    if name == "stop_length":
        return (
            {"messages": _user(LONG), "max_completion_tokens": 16}
            if chat
            else {"input": LONG, "max_output_tokens": 16}
        )
    if name == "stop_content_filter":  # a guardrail intervenes
        return (
            {"messages": _user("tell me [[refuse]] now")}
            if chat
            else {"input": "tell me [[refuse]] now"}
        )
    if name == "safety_block":  # content filtered before any text
        return (
            {"messages": _user("something [[blocked]]")}
            if chat
            else {"input": "something [[blocked]]"}
        )
    assert name == "stop_sequence" and chat  # the Responses API has no stop sequences
    return {"messages": _user("where to stop"), "stop": ["You said"]}


SCENARIOS = {
    "text": ("converse", "invoke"),
    "tool_call": ("converse", "invoke"),
    "parallel_tool_calls": ("converse", "invoke"),
    "tool_result_follow_up": ("converse", "invoke"),
    "image_input": ("converse", "invoke"),
    "json_schema": ("converse",),
    "stop_length": ("converse", "invoke"),
    "stop_content_filter": ("converse", "invoke"),
    "safety_block": ("converse",),
    "stop_sequence": ("converse", "invoke"),
}
"""Scenario → the APIs it runs on (Converse's guardrail block and JSON output have no
InvokeModel counterpart in the emulator)."""


def _cells() -> list[Any]:
    return [
        pytest.param(scenario, api_kind, api, mode, id=f"{scenario}-{api_kind}-{api}-{mode}")
        for scenario, kinds in SCENARIOS.items()
        for api_kind in kinds
        for api in ("chat", "responses")
        if not (scenario == "stop_sequence" and api == "responses")
        for mode in ("non-stream", "stream")
    ]


@pytest.mark.parametrize(("scenario", "kind", "api", "mode"), _cells())
def test_matrix_cell(
    client: openai.OpenAI,
    upstream: OpenAIEmulator,
    gateway: tuple[GatewayServer, str],
    scenario: str,
    kind: str,
    api: str,
    mode: str,
) -> None:
    model = MODELS[kind]
    kwargs = _scenario(scenario, api, upstream, client, model)
    call = chat_call if api == "chat" else responses_call
    result = call(client, model, mode == "stream", **kwargs)
    sent = sent_upstream(upstream, gateway[1])
    operation = sent[-1]["path"].rsplit("/", 1)[-1]
    expected = {"converse": "converse", "invoke": "invoke"}[kind]
    assert operation.startswith(expected)
    assert operation.endswith("stream") == (mode == "stream")
    if scenario == "image_input":
        assert any(r.path == PIXEL_PATH for r in upstream.requests)  # fetched by the gateway
        assert _image_url(upstream) not in json.dumps(sent)  # …and sent as bytes
    if scenario == "json_schema":
        text = result.get("output_text") or (
            result.get("completion") or result.get("final_completion") or {}
        )
        if isinstance(text, dict):
            text = text["choices"][0]["message"]["content"]
        assert isinstance(json.loads(text), dict)
    cell = {"client": result, "upstream": sent}
    check_golden(scenario, f"{kind}/{api}/{mode}", Normaliser()(cell))


def test_golden_files_hold_exactly_the_matrix() -> None:
    expected: dict[str, set[str]] = {}
    for param in _cells():
        scenario, kind, api, mode = param.values
        expected.setdefault(scenario, set()).add(f"{kind}/{api}/{mode}")
    found = {path.stem: set(json.loads(path.read_text())) for path in FIXTURES.glob("*.json")}
    assert found == expected


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize(
    ("fault", "error_class", "error_type"),
    [
        (Fault(status=429), openai.RateLimitError, "ThrottlingException"),
        (Fault(status=403), openai.PermissionDeniedError, "AccessDeniedException"),
        (
            Fault(status=400, message="Input is too long for requested model."),
            openai.BadRequestError,
            "ValidationException",
        ),
        (Fault(status=424), openai.APIStatusError, "ModelErrorException"),
        (Fault(status=503), openai.InternalServerError, "ServiceUnavailableException"),
    ],
    ids=["429", "403", "400-too-long", "424", "503"],
)
def test_provider_errors_keep_status_message_and_type(
    client: openai.OpenAI,
    upstream: OpenAIEmulator,
    kind: str,
    stream: bool,
    fault: Fault,
    error_class: type[openai.APIStatusError],
    error_type: str,
) -> None:
    upstream.inject(Fault(status=fault.status, message=fault.message))
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(model=MODELS[kind], messages=_user("hi"), stream=stream)
    assert caught.value.status_code == fault.status
    body: Any = caught.value.body
    assert body["type"] == error_type
    if fault.message:
        assert body["message"] == fault.message and body["code"] == "context_length_exceeded"


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_exception_in_the_middle_of_an_event_stream(
    client: openai.OpenAI, upstream: OpenAIEmulator, kind: str, api: str
) -> None:
    # Converse: messageStart + three words; invoke: message_start, block start, ping, 3 words.
    upstream.inject(
        Fault(
            error_after_events=4 if kind == "converse" else 6,
            error_type="throttlingException",
            message="Slow down.",
        )
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        if api == "chat":
            for chunk in client.chat.completions.create(
                model=MODELS[kind], messages=_user("a long answer please"), stream=True
            ):
                received += [c.delta.content or "" for c in chunk.choices]
        else:
            with client.responses.stream(model=MODELS[kind], input="a long answer please") as s:
                for event in s:
                    if event.type == "response.output_text.delta":
                        received.append(event.delta)
    assert not isinstance(caught.value, openai.APIStatusError)  # the 200 was already sent
    assert "".join(received) == "Hello from the"
    assert "Slow down." in str(caught.value.message)
    assert error_result(caught.value)["exception"] == "APIError"


# --- the request log ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_records_carry_bedrocks_usage_and_cost(
    client: openai.OpenAI, gateway: tuple[GatewayServer, str], kind: str, stream: bool
) -> None:
    server, _ = gateway
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model=MODELS[kind], messages=_user("count me please"), stream=True
        ) as response:
            request_id = response.headers["helicone-id"]
            chunks = list(response.parse())
        assert all(chunk.usage is None for chunk in chunks)  # the client did not ask
    else:
        raw = client.chat.completions.with_raw_response.create(
            model=MODELS[kind], messages=_user("count me please")
        )
        request_id = raw.headers["helicone-id"]
    row = record(server, request_id)
    assert row["provider"] == "bedrock" and row["wire_format"] == "bedrock"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 9)  # the emulator's words
    assert row["tokens_estimated"] is False and row["is_stream"] is stream
    assert row["cost"] > 0 and row["cost_known"] is True
    assert row["target_url"].endswith(("/converse", "/invoke", "-stream"))


# --- boto3 through the passthrough ----------------------------------------------------------------


@pytest.fixture
def boto(gateway: tuple[GatewayServer, str]) -> Any:
    """boto3's bedrock-runtime client pointed at the gateway, as the reference documents it:
    its own (here: dummy) credentials sign for the gateway; the real ones ride in headers."""
    server, key = gateway
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=f"{server.url}/bedrock/v1/us-east-1",
        aws_access_key_id="AKIDDUMMY",
        aws_secret_access_key="dummy",
        config=Config(retries={"max_attempts": 1}),
    )

    def add_headers(request: Any, **_: Any) -> None:
        request.headers["Helicone-Auth"] = f"Bearer {key}"
        request.headers["aws-access-key"] = BEDROCK_ACCESS_KEY
        request.headers["aws-secret-key"] = BEDROCK_SECRET_KEY

    client.meta.events.register("before-sign.bedrock-runtime.*", add_headers)
    return client


def test_boto3_converse_through_the_gateway(
    boto: Any, upstream: OpenAIEmulator, gateway: tuple[GatewayServer, str]
) -> None:
    server, _ = gateway
    answer = boto.converse(
        modelId="us.amazon.nova-pro-v1:0",
        messages=[{"role": "user", "content": [{"text": "hi there"}]}],
    )
    assert answer["output"]["message"]["content"] == [
        {"text": "Hello from the emulator. You said: hi there"}
    ]
    sent = upstream.requests[-1]
    assert sent.raw_path == "/model/us.amazon.nova-pro-v1%3A0/converse"  # as boto3 encoded it
    assert f"Credential={BEDROCK_ACCESS_KEY}/" in sent.headers["authorization"]  # re-signed
    assert not {"aws-access-key", "aws-secret-key", "helicone-auth"} & set(sent.headers)
    row = record(server, answer["ResponseMetadata"]["HTTPHeaders"]["helicone-id"])
    assert (row["provider"], row["model"], row["wire_format"]) == (
        "bedrock",
        "us.amazon.nova-pro-v1:0",
        "bedrock",
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (2, 8) and row["cost"] > 0


def test_boto3_converse_stream_through_the_gateway(
    boto: Any, gateway: tuple[GatewayServer, str]
) -> None:
    server, _ = gateway
    answer = boto.converse_stream(
        modelId="us.amazon.nova-pro-v1:0",
        messages=[{"role": "user", "content": [{"text": "stream it"}]}],
    )
    events = list(answer["stream"])
    text = "".join(
        e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
    )
    assert text == "Hello from the emulator. You said: stream it"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 8
    row = record(server, answer["ResponseMetadata"]["HTTPHeaders"]["helicone-id"])
    assert row["is_stream"] is True and row["completion_tokens"] == 8 and row["cost"] > 0


def test_boto3_invoke_with_response_stream_through_the_gateway(
    boto: Any, gateway: tuple[GatewayServer, str]
) -> None:
    server, _ = gateway
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "yo"}],
    }
    answer = boto.invoke_model_with_response_stream(
        modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0", body=json.dumps(body)
    )
    events = [json.loads(e["chunk"]["bytes"]) for e in answer["body"]]
    assert events[-1]["type"] == "message_stop"
    row = record(server, answer["ResponseMetadata"]["HTTPHeaders"]["helicone-id"])
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1, 7) and row["cost"] > 0


def test_passthrough_without_aws_credentials_is_refused(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=f"{server.url}/bedrock/v1/us-east-1",
        aws_access_key_id="AKIDDUMMY",
        aws_secret_access_key="dummy",
        config=Config(retries={"max_attempts": 1}),
    )
    client.meta.events.register(
        "before-sign.bedrock-runtime.*",
        lambda request, **_: request.headers.__setitem__("Helicone-Auth", f"Bearer {key}"),
    )
    with pytest.raises(client.exceptions.ClientError) as caught:
        client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert upstream.requests == []


# --- configuration: managed credentials from AWS's variables, BYOK regions ----------------------


def test_managed_credentials_and_region_come_from_awss_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BEDROCK_API_KEY", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env/secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.provider_api_keys["bedrock"] == "AKIDENV:env/secret:env-token"
    assert settings.bedrock_region == "eu-central-1"
    monkeypatch.setenv("BEDROCK_API_KEY", "bedrock-api-key")
    monkeypatch.setenv("GATEWAY_BEDROCK_REGION", "ap-south-1")
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.provider_api_keys["bedrock"] == "bedrock-api-key"
    assert settings.bedrock_region == "ap-south-1"
    monkeypatch.setenv("GATEWAY_BEDROCK_REGION", "evil.example.com/")
    with pytest.raises(ValueError, match="AWS region"):
        Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]


def test_a_byok_deployment_signs_with_its_own_credentials_for_its_region(
    tmp_path: Path, upstream: OpenAIEmulator
) -> None:
    settings = make_settings(
        tmp_path,
        provider_api_keys={"bedrock": KEY},
        provider_base_urls={"bedrock": upstream.origin},
    )
    key = create_key(settings)
    upstream.bedrock_credentials["AKIDORGOWN"] = ("org/secret", None)
    upstream.bedrock_region = "eu-west-1"
    try:
        with GatewayServer(settings) as server:
            store = server.runtime.store
            org_id = server.call(store.ensure_org("default"))
            server.call(
                store.provider_keys.create(
                    org_id,
                    provider="bedrock",
                    name="EU Bedrock",
                    api_key="AKIDORGOWN:org/secret",
                    deployment=Deployment(region="eu-west-1"),
                    deployment_id="eu-bedrock",
                )
            )
            server.runtime.provider_keys.invalidate(org_id)
            with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
                answer = sdk.chat.completions.create(
                    model="nova-pro/bedrock/eu-bedrock", messages=_user("from the EU")
                )
    finally:
        upstream.bedrock_region = "us-east-1"
        del upstream.bedrock_credentials["AKIDORGOWN"]
    assert answer.choices[0].message.content == "Hello from the emulator. You said: from the EU"
    authorization = upstream.requests[-1].headers["authorization"]
    assert "Credential=AKIDORGOWN/" in authorization and "/eu-west-1/bedrock/" in authorization
