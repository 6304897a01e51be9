"""The translation matrix, end to end: the real openai SDK → a real gateway → the emulator.

A cell is one provider (``mistral``, standing for every OpenAI-compatible chat-only provider:
its chat is relayed as it is, its Responses translated to chat and back; ``anthropic``: both
translated to Messages and back; ``gemini``: both translated to Google AI Studio's
``generateContent`` and back; ``vertex-gemini`` and ``vertex-claude``: the same translations
on Vertex AI's paths, for a representative subset of the scenarios), one client API (chat,
responses), one mode (stream, non-stream) and one scenario of :data:`SCENARIOS` (text, one
tool call, parallel tool calls, text then tool call, a tool-result follow-up, image input,
thinking, and the stop reasons length, content_filter and stop sequence; for Gemini also JSON
schema output and a blocked prompt), or one error case of :data:`ERRORS` (401, 429 with
``retry-after`` where the provider sends one, overloaded, context too long; for Vertex's two
publishers also 400, 403, 404 and 500, each in the shape of whoever refuses it: Vertex itself,
Google's, for authentication, permission, an unknown model and quota, Claude's for the rest)
or an error in the middle of a stream. Gemini's and Vertex's image cells give an http URL the
gateway must fetch (they cannot reference it) from the emulator, through the guarded fetcher's
test seam.

Each cell's client-visible result (status, content type, the SDK's objects; for streams the
stream helper's final object and the raw chunks or the event sequence) and every request
the gateway sent upstream (path, the headers that matter, JSON body) are compared with a
golden file under ``tests/fixtures/matrix/`` (one file per scenario, one key per cell), after
:class:`Normaliser` replaced what changes from run to run (ids, timestamps).
``UPDATE_GOLDEN=1`` rewrites the cells that ran.

Cells that are not what their name says, and why: the Responses API has no stop sequences,
so its ``stop_sequence`` cells pin the clear 400 naming ``stop`` (and that nothing went
upstream); an OpenAI-compatible server says "overloaded" with 503, not Anthropic's 529; an
error in the middle of a stream exists only streamed. The SDK's stream helpers refuse a cut
answer (chat: ``LengthFinishReasonError`` / ``ContentFilterFinishReasonError``; Responses: no
final Response without ``response.completed``), as they do against OpenAI: what they
accumulated (the terminal event's Response) is the cell's result then.

Beyond the golden comparison, every cell checks what must hold whatever the golden says:
shapes validated with the SDK's own types, streamed text equal to the final text, sequence
numbers increasing, no gateway key or ``Helicone-*`` header upstream.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from gateway.fetcher import GuardedFetcher
from providers.addresses import is_public_address
from tests.emulator import Fault, OpenAIEmulator
from tests.emulator.anthropic_errors import prompt_too_long
from tests.emulator.errors import context_length_exceeded
from tests.emulator.gemini_errors import too_many_tokens
from tests.emulator.vertex import TOKEN_PATH
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

FIXTURES = Path(__file__).parent / "fixtures" / "matrix"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
KEY = "sk-emulator-provider"
MODELS = {
    "mistral": "mistral-small-latest/mistral",
    "anthropic": "claude-sonnet-4-5/anthropic",
    "gemini": "gemini-2.5-flash/google-ai-studio",
    "vertex-gemini": "gemini-2.5-flash/vertex",
    "vertex-claude": "claude-sonnet-4/vertex",
}
"""``mistral`` stands for every OpenAI-compatible provider without a Responses endpoint;
``gemini`` is Google AI Studio (the Gemini API, translated both ways); ``vertex-gemini`` and
``vertex-claude`` are Vertex AI's two publishers (the same translations on Vertex's paths,
with an OAuth token minted from a service-account key)."""
PROVIDERS = ("mistral", "anthropic", "gemini")
"""The columns of every scenario and error."""
VERTEX = ("vertex-gemini", "vertex-claude")
VERTEX_SCENARIOS = frozenset(
    {"text", "tool_call", "image_input", "stop_length", "stop_content_filter"}
)
"""Vertex's columns: a representative subset (text, a tool call, image input and the finish
reasons), since its translations are the Gemini and Anthropic columns' own."""
VERTEX_PROJECT, VERTEX_LOCATION = "matrix-project", "us-east5"
APIS = ("chat", "responses")
MODES = ("non-stream", "stream")
UPSTREAM_HEADERS = ("anthropic-beta", "anthropic-version", "authorization", "content-type",
                    "x-api-key", "x-goog-api-key")
"""The upstream request headers a golden file keeps (the rest are the SDK's own)."""

EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()
DATA_URL = f"data:image/png;base64,{PNG}"
IMAGE_URL = "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"

CHAT_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
        },
    }
    for name, description in (("lookup", "Look something up."), ("convert", "Convert units."))
]
RESPONSES_TOOLS: list[Any] = [
    {"type": "function", "strict": False, **tool["function"]} for tool in CHAT_TOOLS
]


# --- normalisation and golden files -----------------------------------------------------------

_TOKEN = re.compile(r"ya29\.emu-\d+")
_SERIAL = re.compile(r"(chatcmpl-emu-|msg_emu_|req_emu_|resp_emu_|toolu_emu|gemini_emu_)(\d+)")
_RANDOM = re.compile(r"[0-9a-f]{48}")
_TIMESTAMPS = frozenset({"created", "created_at", "completed_at"})


@dataclass
class Normaliser:
    """Replaces what differs between runs with placeholders, consistently within one cell:
    the emulator's request serials in its ids (``chatcmpl-emu-<1>``), the gateway's random
    response ids (``resp_<r1>``, and the item ids derived from them) and timestamps. The same
    id gets the same placeholder everywhere, so the links between a response and the next
    request (a tool call id sent back) are pinned too."""

    serials: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)

    def _serial(self, match: re.Match[str]) -> str:
        number = self.serials.setdefault(str(int(match[2])), len(self.serials) + 1)
        return f"{match[1]}<{number}>"

    def _token(self, match: re.Match[str]) -> str:
        return f"<r{self.tokens.setdefault(match[0], len(self.tokens) + 1)}>"

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, str):
            return _RANDOM.sub(self._token, _SERIAL.sub(self._serial, value))
        if key in _TIMESTAMPS and type(value) in (int, float) and value > 0:
            return "<timestamp>"
        return value


def check_golden(scenario: str, cell: str, actual: dict[str, Any]) -> None:
    """Compare ``actual`` with ``cell`` of the scenario's golden file (or record it)."""
    path = FIXTURES / f"{scenario}.json"
    golden: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    actual = json.loads(json.dumps(actual))  # tuples → lists, as the file holds them
    if UPDATE:
        golden[cell] = actual
        FIXTURES.mkdir(parents=True, exist_ok=True)
        text = json.dumps(dict(sorted(golden.items())), indent=1, ensure_ascii=False)
        path.write_text(text + "\n")
        return
    assert cell in golden, f"{path.name} has no cell {cell!r}: record it with UPDATE_GOLDEN=1"
    assert actual == golden[cell]


def dump(model: BaseModel) -> dict[str, Any]:
    """An SDK object as the client sees it: what the answer set, extensions included (the
    stream helpers' generic Parsed* objects make pydantic warn about its own unions)."""
    data: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True, warnings=False)
    return data


# --- fixtures -------------------------------------------------------------------------------


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
        provider_api_keys={
            "anthropic": KEY, "mistral": KEY, "google-ai-studio": KEY,
            "vertex": upstream.vertex.new_service_account(upstream.origin),
        },
        provider_base_urls={
            "anthropic": upstream.anthropic_base_url,
            "mistral": upstream.base_url,
            "google-ai-studio": upstream.gemini_base_url,
            "vertex": upstream.origin,
        },
        vertex_project=VERTEX_PROJECT,
        vertex_location=VERTEX_LOCATION,
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        # Gemini cannot reference image URLs: the gateway fetches them through its guarded
        # fetcher, here built with the fetcher's test seam (``images.test`` is the emulator).
        seam = GuardedFetcher(
            max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout_seconds,
            static_hosts={"images.test": ["127.0.0.1"]},
            address_policy=lambda a: a == IPv4Address("127.0.0.1") or is_public_address(a),
        )
        server.call(server.runtime.fetcher.close())
        server.call(seam.start())
        server.runtime.fetcher = seam
        yield server, key


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


def sent_upstream(
    upstream: OpenAIEmulator, gateway: tuple[GatewayServer, str]
) -> list[dict[str, Any]]:
    """Every request the gateway sent upstream in this cell: path, headers kept, body (Vertex
    tokens minted on the way are not the cell's, and their serial is a placeholder)."""
    _, gateway_key = gateway
    out = []
    for request in upstream.requests:
        if request.path == TOKEN_PATH:
            continue
        for name, value in request.headers.items():
            assert not name.startswith("helicone-"), name
            assert gateway_key not in value, f"the gateway key went upstream in {name}"
        headers = {name: _TOKEN.sub("ya29.emu-<n>", request.headers[name])
                   for name in UPSTREAM_HEADERS if name in request.headers}
        body = request.json if request.body else None  # the image fetch is a bodiless GET
        out.append({"path": request.path, "headers": headers, "body": body})
    return out


# --- running one call -------------------------------------------------------------------------


def chat_call(client: openai.OpenAI, model: str, stream: bool, **kwargs: Any) -> dict[str, Any]:
    """One chat cell as the client sees it. Streamed: the SDK's stream helper (its final
    completion), then the same request iterated chunk by chunk with usage asked for."""
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model=model, **kwargs)
        completion = raw.parse()
        ChatCompletion.model_validate(raw.http_response.json())
        return {
            "status": raw.status_code,
            "content-type": raw.headers["content-type"],
            "completion": dump(completion),
        }
    helper_raised: str | None = None
    with client.chat.completions.stream(model=model, **kwargs) as helper:
        try:
            final = helper.get_final_completion()
        except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
            # The helper refuses to parse a cut answer (as against OpenAI); it still hands
            # over what it accumulated.
            assert exc.completion is not None
            final, helper_raised = exc.completion, type(exc).__name__
    chunks = client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    received = [dump(chunk) for chunk in chunks]
    for chunk in received:
        ChatCompletionChunk.model_validate(chunk)
    streamed_text = "".join(
        choice["delta"].get("content") or "" for chunk in received for choice in chunk["choices"]
    )
    assert streamed_text == (final.choices[0].message.content or "")
    assert received[-1]["choices"] == [] and received[-1]["usage"]["total_tokens"] > 0
    return {
        "status": chunks.response.status_code,
        "content-type": chunks.response.headers["content-type"],
        "final_completion": dump(final),
        "helper_raised": helper_raised,
        "chunks": received,
    }


def _event_line(event: Any) -> str:
    """One stream event, compactly: its type, and its delta when it has one."""
    delta = getattr(event, "delta", None)
    return event.type if delta is None else f"{event.type} {json.dumps(delta)}"


def responses_call(
    client: openai.OpenAI, model: str, stream: bool, **kwargs: Any
) -> dict[str, Any]:
    """One Responses cell as the client sees it. Streamed: ``responses.stream()``, its events
    (type and delta) and its final Response; a response that ends ``incomplete`` has no
    final Response in the SDK's helper (it waits for ``response.completed``), so the
    terminal event's Response is the result then."""
    if not stream:
        raw = client.responses.with_raw_response.create(model=model, **kwargs)
        response = raw.parse()
        Response.model_validate(raw.http_response.json())
        return {
            "status": raw.status_code,
            "content-type": raw.headers["content-type"],
            "response": dump(response),
            "output_text": response.output_text,
        }
    with client.responses.stream(model=model, **kwargs) as helper:
        events = list(helper)
        status = helper._response.status_code  # the SDK keeps the HTTP answer here
        content_type = helper._response.headers["content-type"]
        terminal = events[-1]
        if terminal.type == "response.completed":
            final: Any = helper.get_final_response()
        else:
            final = terminal.response
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events)))
    for event in events:
        EVENT.validate_python(event.model_dump(exclude={"snapshot"}, by_alias=True, warnings=False))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text
    return {
        "status": status,
        "content-type": content_type,
        "events": [_event_line(event) for event in events],
        "final_response": dump(final),
        "output_text": final.output_text,
    }


# --- scenarios --------------------------------------------------------------------------------

Build = Callable[[openai.OpenAI, str, str], dict[str, Any]]
"""(client, model, image URL) → the keyword arguments of the call a cell measures; a scenario
may make calls of its own first (the tool-result follow-up answers a real first turn). The
image URL is the public one, or for a provider the gateway fetches images for, the emulator's
(reached through the fetcher's test seam): the cell's results do not depend on which."""


def _call(**kwargs: Any) -> Build:
    return lambda client, model, image: kwargs


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


FIRST_TURN = "find the answer [[text+tool]]"
"""The first turn of the tool-result follow-up: text and a tool call, so the follow-up sends
back an assistant turn holding both."""


def _chat_tool_result(client: openai.OpenAI, model: str, image: str) -> dict[str, Any]:
    messages = _user(FIRST_TURN)
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


def _responses_tool_result(client: openai.OpenAI, model: str, image: str) -> dict[str, Any]:
    first = client.responses.create(model=model, input=FIRST_TURN, tools=RESPONSES_TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls
    return {
        "tools": RESPONSES_TOOLS,
        "input": [
            {"role": "user", "content": FIRST_TURN},
            *(item.model_dump(exclude_none=True) for item in first.output),
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "found: 42"},
        ],
    }


@dataclass(frozen=True)
class Scenario:
    chat: Build
    responses: Build
    refused: tuple[str, ...] = ()
    """The APIs on which the gateway must refuse the call with a 400 (nothing sent upstream);
    any other error status fails the cell rather than becoming its expected result."""
    only: tuple[str, ...] = PROVIDERS
    """The providers whose emulator plays the scenario (a marker only one of them knows)."""


LONG = "please answer this question with a long and detailed explanation of every step"
CITY_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}},
               "required": ["name"], "additionalProperties": False}
SCENARIOS: dict[str, Scenario] = {
    "text": Scenario(
        _call(messages=[{"role": "system", "content": "Be brief."}, *_user("what is up")]),
        _call(instructions="Be brief.", input="what is up"),
    ),
    "tool_call": Scenario(
        _call(messages=_user("find the answer"), tools=CHAT_TOOLS),
        _call(input="find the answer", tools=RESPONSES_TOOLS),
    ),
    "parallel_tool_calls": Scenario(
        _call(messages=_user("look up both [[parallel]]"), tools=CHAT_TOOLS),
        _call(input="look up both [[parallel]]", tools=RESPONSES_TOOLS),
    ),
    "text_then_tool_call": Scenario(
        _call(messages=_user("say it then call [[text+tool]]"), tools=CHAT_TOOLS),
        _call(input="say it then call [[text+tool]]", tools=RESPONSES_TOOLS),
    ),
    "tool_result_follow_up": Scenario(_chat_tool_result, _responses_tool_result),
    "image_input": Scenario(
        lambda client, model, image: {"messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what are these"},
                    {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": DATA_URL}},
                ],
            }
        ]},
        lambda client, model, image: {"input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what are these"},
                    {"type": "input_image", "image_url": image, "detail": "low"},
                    {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
                ],
            }
        ]},
    ),
    "thinking": Scenario(
        _call(messages=_user("think it over"), reasoning_effort="low"),
        _call(input="think it over", reasoning={"effort": "low"}),
    ),
    "stop_length": Scenario(
        _call(messages=_user(LONG), max_completion_tokens=16),
        _call(input=LONG, max_output_tokens=16),
    ),
    "stop_content_filter": Scenario(
        _call(messages=_user("tell me [[refuse]] now")),
        _call(input="tell me [[refuse]] now"),
    ),
    "stop_sequence": Scenario(
        _call(messages=_user("where to stop"), stop=["You said"]),
        # The Responses API has no stop sequences: the cell pins the clear 400 naming `stop`.
        _call(input="where to stop", extra_body={"stop": ["You said"]}),
        refused=("responses",),
    ),
    "json_schema_output": Scenario(
        _call(messages=_user("a city as json"), response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY_SCHEMA},
        }),
        _call(input="a city as json", text={
            "format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA},
        }),
        only=("gemini",),
    ),
    "safety_block": Scenario(
        _call(messages=_user("[[blocked]] this prompt")),
        _call(input="[[blocked]] this prompt"),
        only=("gemini",),
    ),
}


def _columns(scenario: str) -> tuple[str, ...]:
    """The providers that play ``scenario``."""
    return SCENARIOS[scenario].only + (VERTEX if scenario in VERTEX_SCENARIOS else ())


def _cells() -> list[Any]:
    return [
        pytest.param(scenario, provider, api, mode, id=f"{scenario}-{provider}-{api}-{mode}")
        for scenario in SCENARIOS
        for provider in _columns(scenario)
        for api in APIS
        for mode in MODES
    ]


@pytest.mark.parametrize(("scenario", "provider", "api", "mode"), _cells())
def test_matrix_cell(
    client: openai.OpenAI,
    upstream: OpenAIEmulator,
    gateway: tuple[GatewayServer, str],
    scenario: str,
    provider: str,
    api: str,
    mode: str,
) -> None:
    model, stream, spec = MODELS[provider], mode == "stream", SCENARIOS[scenario]
    image = IMAGE_URL
    if provider in ("gemini", *VERTEX):  # formats whose image URLs the gateway fetches
        image = f"http://images.test:{upstream.port}/images/pixel.png"
    kwargs = getattr(spec, api)(client, model, image)
    call = chat_call if api == "chat" else responses_call
    result: dict[str, Any]
    if api in spec.refused:
        with pytest.raises(openai.BadRequestError) as caught:
            call(client, model, stream, **kwargs)
        result = error_result(caught.value)
        assert upstream.requests == []
    else:
        result = call(client, model, stream, **kwargs)
    cell = {"client": result, "upstream": sent_upstream(upstream, gateway)}
    check_golden(scenario, f"{provider}/{api}/{mode}", Normaliser()(cell))


# --- errors -----------------------------------------------------------------------------------


def error_result(exc: openai.APIError) -> dict[str, Any]:
    """An SDK exception as the client sees it."""
    out: dict[str, Any] = {"exception": type(exc).__name__, "message": exc.message,
                           "body": exc.body}
    if isinstance(exc, openai.APIStatusError):
        out["status"] = exc.status_code
        out["content-type"] = exc.response.headers.get("content-type")
        out["retry-after"] = exc.response.headers.get("retry-after")
    return out


JSON_HEADERS = {"Content-Type": "application/json"}
CLAUDE_ON_VERTEX = (
    f"projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/publishers/anthropic/models/"
    "claude-sonnet-4@20250514"
)
ERRORS: dict[str, dict[str, Fault]] = {
    "unauthorized": {
        "mistral": Fault(status=401),
        "anthropic": Fault(status=401),
        "gemini": Fault(status=401),  # UNAUTHENTICATED (a bad API key is Google's 400)
        "vertex-gemini": Fault(status=401),  # Vertex's own UNAUTHENTICATED, for both publishers
        "vertex-claude": Fault(status=401),
    },
    "rate_limited": {  # the OpenAI and Anthropic emulators add `retry-after: 1`; Google not
        "mistral": Fault(status=429),
        "anthropic": Fault(status=429),
        "gemini": Fault(status=429),
        "vertex-gemini": Fault(status=429),
        "vertex-claude": Fault(status=429),  # Vertex's quota: Google's RESOURCE_EXHAUSTED
    },
    "overloaded": {  # Anthropic's own status; OpenAI-compatible servers and Google say 503
        "mistral": Fault(status=503),
        "anthropic": Fault(status=529),
        "gemini": Fault(status=503),
        "vertex-gemini": Fault(status=503),
        "vertex-claude": Fault(status=529),  # Claude's own overloaded_error, through Vertex
    },
    "context_too_long": {
        "mistral": Fault(
            status=400, body=context_length_exceeded(210_000), headers=JSON_HEADERS
        ),
        "anthropic": Fault(status=400, message=prompt_too_long(210_000)),
        "gemini": Fault(status=400, message=too_many_tokens(2_000_000)),
        "vertex-gemini": Fault(status=400, message=too_many_tokens(2_000_000)),
        "vertex-claude": Fault(status=400, message=prompt_too_long(210_000)),
    },
    # Vertex's remaining statuses: each publisher's own shape for what the model refused,
    # Google's for what Vertex refused before the model saw the request.
    "bad_request": {
        "vertex-gemini": Fault(status=400),  # INVALID_ARGUMENT
        "vertex-claude": Fault(status=400, message="messages.0.content: Field required"),
    },
    "forbidden": {
        "vertex-gemini": Fault(status=403),  # PERMISSION_DENIED
        "vertex-claude": Fault(
            status=403,
            message=f"Permission 'aiplatform.endpoints.predict' denied on resource "
            f"'//aiplatform.googleapis.com/{CLAUDE_ON_VERTEX}' (or it may not exist).",
        ),
    },
    "not_found": {
        "vertex-gemini": Fault(status=404),  # NOT_FOUND
        "vertex-claude": Fault(
            status=404,
            message=f"Publisher Model `{CLAUDE_ON_VERTEX}` not found.",
        ),
    },
    "server_error": {
        "vertex-gemini": Fault(status=500),  # INTERNAL
        "vertex-claude": Fault(status=500),  # Claude's api_error
    },
}
"""Each error case's columns and the fault that plays it."""
ERROR_CLASSES = {
    "unauthorized": openai.AuthenticationError,
    "rate_limited": openai.RateLimitError,
    "overloaded": openai.InternalServerError,
    "context_too_long": openai.BadRequestError,
    "bad_request": openai.BadRequestError,
    "forbidden": openai.PermissionDeniedError,
    "not_found": openai.NotFoundError,
    "server_error": openai.InternalServerError,
}
RETRY_AFTER = ("mistral", "anthropic")
"""The columns whose emulator sends ``retry-after`` with a 429 (Google's APIs send none)."""


def _error_cells() -> list[Any]:
    return [
        pytest.param(kind, provider, api, mode, id=f"{kind}-{provider}-{api}-{mode}")
        for kind in ERRORS
        for provider in ERRORS[kind]
        for api in APIS
        for mode in MODES
    ]


@pytest.mark.parametrize(("kind", "provider", "api", "mode"), _error_cells())
def test_provider_error(
    client: openai.OpenAI,
    upstream: OpenAIEmulator,
    gateway: tuple[GatewayServer, str],
    kind: str,
    provider: str,
    api: str,
    mode: str,
) -> None:
    upstream.inject(ERRORS[kind][provider])
    model, stream = MODELS[provider], mode == "stream"
    with pytest.raises(ERROR_CLASSES[kind]) as caught:
        if api == "chat":
            client.chat.completions.create(
                model=model, messages=_user("what is up"), stream=stream
            )
        else:
            client.responses.create(model=model, input="what is up", stream=stream)
    result = error_result(caught.value)
    if kind == "rate_limited" and provider in RETRY_AFTER:
        assert result["retry-after"] == "1"
    # Whatever the provider's shape, the client gets the upstream status and message in
    # OpenAI's error object.
    assert result["status"] == ERRORS[kind][provider].status
    assert set(result["body"]) == {"message", "type", "param", "code"}
    if ERRORS[kind][provider].message is not None:
        assert result["body"]["message"] == ERRORS[kind][provider].message
    cell = {"client": result, "upstream": sent_upstream(upstream, gateway)}
    check_golden(f"error_{kind}", f"{provider}/{api}/{mode}", Normaliser()(cell))


MID_STREAM = {"mistral": 4, "anthropic": 6, "gemini": 3, "vertex-gemini": 3, "vertex-claude": 6}
"""Events sent before the error: the role chunk and three words (chat), message_start,
content_block_start, ping and three words (Messages, Claude on Vertex), three words (Gemini,
on AI Studio or Vertex)."""


@pytest.mark.parametrize("provider", list(MID_STREAM))
@pytest.mark.parametrize("api", APIS)
def test_error_in_the_middle_of_a_stream(
    client: openai.OpenAI,
    upstream: OpenAIEmulator,
    gateway: tuple[GatewayServer, str],
    provider: str,
    api: str,
) -> None:
    upstream.inject(Fault(error_after_events=MID_STREAM[provider]))
    model = MODELS[provider]
    received: list[Any] = []
    with pytest.raises(openai.APIError) as caught:
        if api == "chat":
            for chunk in client.chat.completions.create(
                model=model, messages=_user("a long answer please"), stream=True
            ):
                received.append(dump(chunk))
        else:
            with client.responses.stream(model=model, input="a long answer please") as stream:
                for event in stream:
                    received.append(_event_line(event))
    assert not isinstance(caught.value, openai.APIStatusError)  # the 200 was already sent
    if api == "chat":
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in received)
    else:
        text = "".join(json.loads(line.split(" ", 1)[1]) for line in received
                       if line.startswith("response.output_text.delta"))
    assert text == "Hello from the"  # what came before the error reached the client
    cell = {
        "client": {"received": received, "error": error_result(caught.value)},
        "upstream": sent_upstream(upstream, gateway),
    }
    check_golden("error_mid_stream", f"{provider}/{api}/stream", Normaliser()(cell))


# --- the request log -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS + VERTEX)
def test_a_translated_responses_stream_is_logged_with_the_usage_the_client_saw(
    client: openai.OpenAI, gateway: tuple[GatewayServer, str], provider: str
) -> None:
    server, _ = gateway
    with client.responses.stream(model=MODELS[provider], input="count me") as stream:
        final = stream.get_final_response()
        request_id = stream._response.headers["helicone-id"]
    assert final.usage is not None
    row = record(server, request_id)
    slug = MODELS[provider].rpartition("/")[2]
    assert row["provider"] == slug and row["is_stream"] is True and row["status"] == 200
    assert row["prompt_tokens"] == final.usage.input_tokens
    assert row["completion_tokens"] == final.usage.output_tokens
    assert row["tokens_estimated"] is False


# --- the golden files themselves --------------------------------------------------------------


def test_golden_files_hold_exactly_the_matrix() -> None:
    """No stale cell or file survives a change of the matrix."""
    expected: dict[str, set[str]] = {}
    for scenario in SCENARIOS:
        expected[scenario] = {
            f"{p}/{a}/{m}" for p in _columns(scenario) for a in APIS for m in MODES
        }
    for kind in ERRORS:
        expected[f"error_{kind}"] = {
            f"{p}/{a}/{m}" for p in ERRORS[kind] for a in APIS for m in MODES
        }
    expected["error_mid_stream"] = {f"{p}/{a}/stream" for p in MID_STREAM for a in APIS}
    found = {
        path.stem: set(orjson.loads(path.read_bytes())) for path in FIXTURES.glob("*.json")
    }
    assert found == expected
