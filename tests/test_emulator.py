"""The upstream emulator, driven over real sockets by the real OpenAI SDK (and raw HTTP).

The gateway's end-to-end tests trust the emulator to be OpenAI; these tests are what earns
that trust: every answer must parse with the official SDK exactly as OpenAI's would.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import openai
import orjson
import pytest

from tests.emulator import Fault, OpenAIEmulator
from tests.emulator.faults import FaultQueue

KEY = "sk-emulator"
MODEL = "gpt-4o-mini"
EXPECTED = "Hello from the emulator. You said: what is up"
USER = [{"role": "user", "content": "what is up"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def running() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def emulator(running: OpenAIEmulator) -> OpenAIEmulator:
    running.reset()
    return running


@pytest.fixture
def client(emulator: OpenAIEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def aclient(emulator: OpenAIEmulator) -> Any:
    async with openai.AsyncOpenAI(base_url=emulator.base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def sse_payloads(body: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded except ``[DONE]``."""
    out: list[Any] = []
    for event in body.decode().split("\n\n"):
        for line in event.splitlines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def raw_post(emulator: OpenAIEmulator, path: str, body: Any, key: str = KEY) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return httpx.post(emulator.base_url + path, content=content, headers=headers, timeout=10)


class TestLifecycle:
    def test_urls_name_the_bound_port(self, emulator: OpenAIEmulator) -> None:
        assert emulator.port > 0
        assert emulator.origin == f"http://127.0.0.1:{emulator.port}"
        assert emulator.base_url == f"{emulator.origin}/v1"

    def test_stop_closes_the_socket(self) -> None:
        emulator = OpenAIEmulator().start()
        url = emulator.base_url
        assert httpx.get(url + "/models", headers={"Authorization": f"Bearer {KEY}"}).is_success
        emulator.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/models", timeout=2)

    def test_no_api_key_means_no_auth(self) -> None:
        with OpenAIEmulator(api_key=None) as emulator:
            assert httpx.get(emulator.base_url + "/models").status_code == 200


class TestChat:
    def test_plain(self, client: openai.OpenAI) -> None:
        completion = client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
        assert completion.id.startswith("chatcmpl-emu-")
        assert completion.object == "chat.completion"
        assert completion.model == MODEL
        assert abs(completion.created - time.time()) < 60
        choice = completion.choices[0]
        assert choice.message.role == "assistant"
        assert choice.message.content == EXPECTED
        assert choice.finish_reason == "stop"
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == 3
        assert completion.usage.completion_tokens == 9
        assert completion.usage.total_tokens == 12

    async def test_plain_async(self, aclient: openai.AsyncOpenAI) -> None:
        completion = await aclient.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "what is up"}]},
            ],
        )
        assert completion.choices[0].message.content == EXPECTED
        assert completion.usage is not None and completion.usage.prompt_tokens == 5

    def test_last_user_message_is_echoed(self, client: openai.OpenAI) -> None:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "second one"},
            ],
        )
        assert completion.choices[0].message.content == (
            "Hello from the emulator. You said: second one"
        )

    def test_streaming_deltas_concatenate_to_the_plain_text(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == EXPECTED
        assert len(chunks) == 1 + len(EXPECTED.split()) + 1
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
        assert {c.id for c in chunks} == {chunks[0].id}

    async def test_streaming_async(self, aclient: openai.AsyncOpenAI) -> None:
        stream = await aclient.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == EXPECTED

    def test_stream_helper_final_completion(self, client: openai.OpenAI) -> None:
        with client.chat.completions.stream(model=MODEL, messages=USER) as stream:  # type: ignore[arg-type]
            final = stream.get_final_completion()
        assert final.choices[0].message.content == EXPECTED
        assert final.choices[0].finish_reason == "stop"

    def test_tool_call(self, client: openai.OpenAI) -> None:
        completion = client.chat.completions.create(model=MODEL, messages=USER, tools=TOOLS)  # type: ignore[arg-type]
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls
        assert calls is not None and len(calls) == 1
        call = calls[0]
        assert call.type == "function" and call.id == "call_emu_1"
        assert call.function.name == "lookup"
        assert call.function.arguments == '{"echo": "what is up"}'
        assert completion.usage is not None and completion.usage.completion_tokens == 5

    def test_streamed_tool_call_accumulates(self, client: openai.OpenAI) -> None:
        with client.chat.completions.stream(model=MODEL, messages=USER, tools=TOOLS) as stream:  # type: ignore[arg-type]
            final = stream.get_final_completion()
        calls = final.choices[0].message.tool_calls
        assert calls is not None
        assert calls[0].id == "call_emu_1"
        assert json.loads(calls[0].function.arguments) == {"echo": "what is up"}
        assert final.choices[0].finish_reason == "tool_calls"

    def test_no_tool_call_after_a_tool_answer_or_with_tool_choice_none(
        self, client: openai.OpenAI
    ) -> None:
        after_tool = client.chat.completions.create(
            model=MODEL,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[
                *USER,  # type: ignore[list-item]
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_emu_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_emu_1", "content": "42"},
            ],
        )
        assert after_tool.choices[0].message.content == EXPECTED
        declined = client.chat.completions.create(
            model=MODEL,
            messages=USER,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice="none",
        )
        assert declined.choices[0].message.content == EXPECTED

    def test_usage_chunk_only_when_asked(self, emulator: OpenAIEmulator) -> None:
        body = {"model": MODEL, "messages": USER, "stream": True}
        plain = sse_payloads(raw_post(emulator, "/chat/completions", body).content)
        assert plain[-1] == "[DONE]"
        assert all("usage" not in chunk for chunk in plain[:-1])

        asked = {**body, "stream_options": {"include_usage": True}}
        response = raw_post(emulator, "/chat/completions", asked)
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = sse_payloads(response.content)
        assert chunks[-1] == "[DONE]"
        *others, usage_chunk = chunks[:-1]
        assert usage_chunk["choices"] == []
        assert usage_chunk["usage"]["prompt_tokens"] == 3
        assert usage_chunk["usage"]["completion_tokens"] == 9
        assert usage_chunk["usage"]["total_tokens"] == 12
        assert all("usage" in c and c["usage"] is None for c in others)

    def test_usage_chunk_through_the_sdk(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
        assert all(c.usage is None for c in chunks[:-1])


class TestChatScenarios:
    """The marker words and request parameters of :mod:`tests.emulator.chat_plan`, each
    answer the same whether whole or streamed (the SDK's stream helper rebuilds it)."""

    TWO_TOOLS: list[Any] = [
        *TOOLS,
        {"type": "function", "function": {"name": "convert", "parameters": {"type": "object"}}},
    ]

    def both(self, client: openai.OpenAI, **kwargs: Any) -> Any:
        whole = client.chat.completions.create(model=MODEL, **kwargs)
        with client.chat.completions.stream(model=MODEL, **kwargs) as stream:
            try:
                streamed = stream.get_final_completion()
            except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
                assert exc.completion is not None
                streamed = exc.completion
        for kept in (whole, streamed):
            assert kept.choices[0].finish_reason == whole.choices[0].finish_reason
            assert kept.choices[0].message.content == whole.choices[0].message.content
            calls = kept.choices[0].message.tool_calls or []
            assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
                (c.id, c.function.name, c.function.arguments)
                for c in whole.choices[0].message.tool_calls or []
            ]
        return whole

    def test_parallel_tool_calls(self, client: openai.OpenAI) -> None:
        text = "both [[parallel]]"
        answer = self.both(client, messages=[{"role": "user", "content": text}],
                           tools=self.TWO_TOOLS)
        calls = answer.choices[0].message.tool_calls
        assert [(c.id, c.function.name) for c in calls] == [
            ("call_emu_1", "lookup"), ("call_emu_2", "convert")
        ]
        assert [json.loads(c.function.arguments) for c in calls] == [
            {"echo": text, "call": 1}, {"echo": text, "call": 2}
        ]
        assert answer.choices[0].finish_reason == "tool_calls"
        assert answer.usage.completion_tokens == 10
        single = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], tools=self.TWO_TOOLS,
            parallel_tool_calls=False,
        )
        assert len(single.choices[0].message.tool_calls or []) == 1

    def test_text_then_tool_call(self, client: openai.OpenAI) -> None:
        text = "say it [[text+tool]]"
        answer = self.both(client, messages=[{"role": "user", "content": text}], tools=TOOLS)
        message = answer.choices[0].message
        assert message.content == f"Hello from the emulator. You said: {text}"
        assert message.tool_calls and message.tool_calls[0].function.name == "lookup"
        forced = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], tools=TOOLS,
            tool_choice="required",
        )
        assert forced.choices[0].message.content is None

    def test_refusal_is_a_content_filter_stop(self, client: openai.OpenAI) -> None:
        answer = self.both(
            client, messages=[{"role": "user", "content": "say [[refuse]] this"}], tools=TOOLS
        )
        assert answer.choices[0].finish_reason == "content_filter"
        assert answer.choices[0].message.content == "Hello from the emulator. You said: say"
        assert answer.choices[0].message.tool_calls is None

    def test_reasoning_content(self, client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
        answer = self.both(client, messages=USER, reasoning_effort="low")
        message: Any = answer.choices[0].message
        assert message.reasoning_content == "The user said: what is up"
        assert message.content == EXPECTED
        assert answer.usage.completion_tokens_details.reasoning_tokens == 6
        assert answer.usage.completion_tokens == 15
        body = {"model": MODEL, "messages": USER, "stream": True, "reasoning_effort": "low"}
        chunks = sse_payloads(raw_post(emulator, "/chat/completions", body).content)[:-1]
        reasoning = [c["choices"][0]["delta"].get("reasoning_content") for c in chunks]
        assert "".join(r for r in reasoning if r) == "The user said: what is up"
        none = client.chat.completions.create(model=MODEL, messages=USER, reasoning_effort="none")
        assert "reasoning_content" not in none.choices[0].message.model_dump()

    def test_stop_sequence_cuts_the_text(self, client: openai.OpenAI) -> None:
        answer = self.both(client, messages=USER, stop=["said", "emulator"])
        assert answer.choices[0].message.content == "Hello from the "
        assert answer.choices[0].finish_reason == "stop"

    def test_max_tokens_cut(self, client: openai.OpenAI) -> None:
        answer = self.both(client, messages=USER, max_completion_tokens=3)
        assert answer.choices[0].message.content == "Hello from the"
        assert answer.choices[0].finish_reason == "length"
        assert answer.usage.completion_tokens == 3
        thinking = client.chat.completions.create(
            model=MODEL, messages=USER, max_tokens=7, reasoning_effort="high"
        )
        message: Any = thinking.choices[0].message
        assert message.reasoning_content == "The user said: what is up"
        assert message.content == "Hello"  # the one word the reasoning left
        tool = client.chat.completions.create(
            model=MODEL, messages=USER, tools=TOOLS, max_completion_tokens=4
        )
        assert tool.choices[0].message.tool_calls is None  # a call that does not fit whole
        assert tool.choices[0].finish_reason == "length"

    def test_error_after_events(self, emulator: OpenAIEmulator, client: openai.OpenAI) -> None:
        emulator.inject(Fault(error_after_events=3, message="boom", error_type="server_error"))
        received: list[str] = []
        with pytest.raises(openai.APIError, match="boom") as caught:
            for chunk in client.chat.completions.create(model=MODEL, messages=USER, stream=True):  # type: ignore[arg-type]
                received.append(chunk.choices[0].delta.content or "")
        assert "".join(received) == "Hello from"
        assert caught.value.body == {
            "message": "boom", "type": "server_error", "param": None, "code": None
        }
        emulator.inject(Fault(error_after_events=1))
        raw = raw_post(emulator, "/chat/completions", {"model": MODEL, "messages": USER,
                                                        "stream": True})
        payloads = sse_payloads(raw.content)
        assert payloads[-1]["error"]["type"] == "server_error" and "[DONE]" not in payloads


class TestResponses:
    def test_plain(self, client: openai.OpenAI) -> None:
        response = client.responses.create(model=MODEL, input="what is up")
        assert response.id.startswith("resp_emu_")
        assert response.status == "completed"
        assert response.output_text == EXPECTED
        assert response.model == MODEL
        assert response.usage is not None
        assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 9)
        assert response.usage.total_tokens == 12
        assert response.usage.input_tokens_details.cached_tokens == 0
        assert response.usage.output_tokens_details.reasoning_tokens == 0

    def test_item_list_input(self, client: openai.OpenAI) -> None:
        response = client.responses.create(
            model=MODEL,
            instructions="be brief",
            input=[
                {"role": "user", "content": "earlier"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "what is up"}],
                },
            ],
        )
        assert response.output_text == EXPECTED
        assert response.instructions == "be brief"
        assert response.usage is not None and response.usage.input_tokens == 6

    def test_stream_helper_final_response(self, client: openai.OpenAI) -> None:
        with client.responses.stream(model=MODEL, input="what is up") as stream:
            events = list(stream)
            final = stream.get_final_response()
        assert final.output_text == EXPECTED
        assert final.usage is not None and final.usage.output_tokens == 9
        types = [event.type for event in events]
        words = len(EXPECTED.split())
        assert types == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            *["response.output_text.delta"] * words,
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        numbers = [event.sequence_number for event in events]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)

    async def test_stream_async(self, aclient: openai.AsyncOpenAI) -> None:
        async with aclient.responses.stream(model=MODEL, input="what is up") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            final = await stream.get_final_response()
        assert "".join(deltas) == EXPECTED == final.output_text

    def test_stream_wire_names_each_event(self, emulator: OpenAIEmulator) -> None:
        body = {"model": MODEL, "input": "what is up", "stream": True}
        raw = raw_post(emulator, "/responses", body).content.decode()
        for event in raw.strip().split("\n\n"):
            name, data = event.split("\n")
            assert name.startswith("event: ") and data.startswith("data: ")
            assert orjson.loads(data[len("data: ") :])["type"] == name[len("event: ") :]
        assert "[DONE]" not in raw


class TestEmbeddings:
    def test_float_and_base64_are_identical(self, client: openai.OpenAI) -> None:
        inputs = ["alpha", "beta gamma"]
        default = client.embeddings.create(model="text-embedding-3-small", input=inputs)
        floats = client.embeddings.create(
            model="text-embedding-3-small", input=inputs, encoding_format="float"
        )
        assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
        assert [d.index for d in floats.data] == [0, 1]
        assert len(floats.data[0].embedding) == 8
        assert floats.data[0].embedding != floats.data[1].embedding
        assert floats.usage.prompt_tokens == floats.usage.total_tokens == 3

    def test_sdk_asks_for_base64_and_gets_a_string(self, emulator: OpenAIEmulator) -> None:
        body = {"model": "m", "input": "alpha", "encoding_format": "base64"}
        data = raw_post(emulator, "/embeddings", body).json()["data"][0]
        assert isinstance(data["embedding"], str)

    def test_deterministic_dimensions_and_token_input(self, client: openai.OpenAI) -> None:
        first = client.embeddings.create(model="m", input="same", dimensions=16)
        again = client.embeddings.create(model="m", input="same", dimensions=16)
        assert len(first.data[0].embedding) == 16
        assert first.data[0].embedding == again.data[0].embedding
        norm = sum(v * v for v in first.data[0].embedding)
        assert abs(norm - 1.0) < 1e-5
        tokens = client.embeddings.create(model="m", input=[[1, 2, 3], [4]])
        assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 4


class TestModels:
    def test_list_and_retrieve(self, client: openai.OpenAI) -> None:
        models = client.models.list().data
        assert "gpt-4o-mini" in {m.id for m in models}
        first = models[0]
        assert (first.id, first.object, first.created, first.owned_by) == (
            "gpt-4o-mini",
            "model",
            1721172741,
            "system",
        )
        assert client.models.retrieve("gpt-4o").id == "gpt-4o"
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("no-such-model")
        assert caught.value.code == "model_not_found"


class TestErrors:
    def test_wrong_key_is_401(self, emulator: OpenAIEmulator) -> None:
        wrong = openai.OpenAI(base_url=emulator.base_url, api_key="sk-wrong-1234", max_retries=0)
        with wrong, pytest.raises(openai.AuthenticationError) as caught:
            wrong.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_api_key"
        assert isinstance(caught.value.body, dict)
        assert str(caught.value.body["message"]).startswith("Incorrect API key provided: ")
        assert caught.value.body["type"] == "invalid_request_error"
        assert caught.value.body["param"] is None

    def test_missing_key_is_401(self, emulator: OpenAIEmulator) -> None:
        response = httpx.post(emulator.base_url + "/chat/completions", json={})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_request_error"

    def test_unknown_top_level_param_is_400(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=MODEL,
                messages=USER,  # type: ignore[arg-type]
                extra_body={"bogus": 1},
            )
        assert caught.value.body == {
            "message": "Unrecognized request argument supplied: bogus",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }

    def test_unknown_params_rejected_on_every_endpoint(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model=MODEL, input="x", extra_body={"bogus": 1})
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model="m", input="x", extra_body={"bogus": 1})

    def test_invalid_nested_message_is_400(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "bogus", "content": "hi"}],  # type: ignore[list-item]
            )
        assert caught.value.param == "messages[0].role"
        assert "'bogus'" in caught.value.message and "'user'" in caught.value.message

    def test_invalid_nested_content_part_and_unknown_nested_key(
        self, emulator: OpenAIEmulator
    ) -> None:
        bad_part = [{"role": "user", "content": [{"type": "txt", "text": "hi"}]}]
        error = raw_post(emulator, "/chat/completions", {"model": MODEL, "messages": bad_part})
        assert error.status_code == 400
        assert error.json()["error"]["param"] == "messages[0].content[0].type"
        extra = [{"role": "user", "content": "hi", "colour": "red"}]
        error = raw_post(emulator, "/chat/completions", {"model": MODEL, "messages": extra})
        assert error.status_code == 400
        assert error.json()["error"]["param"] == "messages[0].colour"

    def test_wrong_types_and_missing_fields_are_400(self, emulator: OpenAIEmulator) -> None:
        as_string = {"model": MODEL, "messages": USER, "temperature": "0.5"}
        error = raw_post(emulator, "/chat/completions", as_string).json()["error"]
        assert error["param"] == "temperature"
        error = raw_post(emulator, "/chat/completions", {"messages": USER}).json()["error"]
        assert (error["param"], error["message"]) == (
            "model",
            "Missing required parameter: 'model'.",
        )
        empty = raw_post(emulator, "/chat/completions", {"model": MODEL, "messages": []})
        assert empty.status_code == 400

    def test_invalid_json_is_400(self, emulator: OpenAIEmulator) -> None:
        response = raw_post(emulator, "/chat/completions", b"{not json")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] is None
        assert "could not parse the JSON body" in error["message"]

    def test_unknown_path_is_404(self, emulator: OpenAIEmulator) -> None:
        response = raw_post(emulator, "/nothing/here", {})
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Invalid URL (POST /v1/nothing/here)"


class TestFaults:
    def test_status_fault_then_recovery(
        self, emulator: OpenAIEmulator, client: openai.OpenAI
    ) -> None:
        emulator.inject(Fault(status=503))
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
        assert caught.value.status_code == 503
        assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "server_error"
        completion = client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == EXPECTED

    def test_rate_limit_fault_has_retry_after(self, emulator: OpenAIEmulator) -> None:
        emulator.inject(Fault(status=429, headers={"x-ratelimit-remaining-requests": "0"}))
        response = raw_post(emulator, "/chat/completions", {"model": MODEL, "messages": USER})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.json()["error"]["code"] == "rate_limit_exceeded"

    def test_custom_body_path_and_times(
        self, emulator: OpenAIEmulator, client: openai.OpenAI
    ) -> None:
        emulator.inject(Fault(status=500, body=b"upstream exploded", path="/embeddings", times=2))
        assert client.models.list().data  # a different path: fault untouched
        for _ in range(2):
            response = raw_post(emulator, "/embeddings", {"model": "m", "input": "x"})
            assert (response.status_code, response.content) == (500, b"upstream exploded")
        assert raw_post(emulator, "/embeddings", {"model": "m", "input": "x"}).status_code == 200

    def test_delay(self, emulator: OpenAIEmulator, client: openai.OpenAI) -> None:
        emulator.inject(Fault(delay=0.4))
        started = time.monotonic()
        client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
        assert time.monotonic() - started >= 0.4
        started = time.monotonic()
        client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
        assert time.monotonic() - started < 0.4

    def test_chunk_delay_paces_the_stream(
        self, emulator: OpenAIEmulator, client: openai.OpenAI
    ) -> None:
        emulator.inject(Fault(chunk_delay=0.05))
        started = time.monotonic()
        stream = client.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
        arrivals = [time.monotonic() - started for _ in stream]
        events = len(arrivals) + 1  # + [DONE]
        assert arrivals[-1] >= 0.05 * (events - 2)

    def test_drop_after_events(self, emulator: OpenAIEmulator, client: openai.OpenAI) -> None:
        emulator.inject(Fault(drop_after_events=3, path="/chat/completions"))
        received = []
        with pytest.raises(openai.APIConnectionError):
            stream = client.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
            for chunk in stream:
                received.append(chunk)
        assert len(received) == 3
        assert emulator.disconnects == 0

    def test_drop_on_responses_stream(
        self, emulator: OpenAIEmulator, client: openai.OpenAI
    ) -> None:
        emulator.inject(Fault(drop_after_events=5))
        with pytest.raises(openai.APIConnectionError):
            with client.responses.stream(model=MODEL, input="what is up") as stream:
                stream.get_final_response()

    def test_faults_are_consumed_once_across_threads(self) -> None:
        queue = FaultQueue()
        queue.add(Fault(status=500, times=50))
        taken: list[Fault | None] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(20):
                fault = queue.take("/v1/chat/completions")
                with lock:
                    taken.append(fault)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(fault is not None for fault in taken) == 50

    def test_reset_clears_faults(self, emulator: OpenAIEmulator, client: openai.OpenAI) -> None:
        emulator.inject(Fault(status=500))
        emulator.reset()
        assert client.models.list().data


class TestRecording:
    def test_requests_are_recorded_with_bodies_and_headers(
        self, emulator: OpenAIEmulator, client: openai.OpenAI
    ) -> None:
        client.chat.completions.create(
            model=MODEL,
            messages=USER,  # type: ignore[arg-type]
            extra_headers={"X-Trace": "abc"},
            extra_query={"api-version": "1"},
        )
        client.models.list()
        first, second = emulator.requests
        assert (first.method, first.path, first.query) == (
            "POST",
            "/v1/chat/completions",
            "api-version=1",
        )
        assert first.headers["authorization"] == f"Bearer {KEY}"
        assert first.headers["x-trace"] == "abc"
        assert first.headers["content-type"] == "application/json"
        assert first.json == {"model": MODEL, "messages": USER}
        assert (second.method, second.path, second.body) == ("GET", "/v1/models", b"")

    def test_rejected_requests_are_recorded_too(self, emulator: OpenAIEmulator) -> None:
        raw_post(emulator, "/chat/completions", b"junk", key="wrong")
        assert [r.body for r in emulator.requests] == [b"junk"]


class TestDisconnects:
    async def test_client_leaving_mid_stream_is_counted(self, emulator: OpenAIEmulator) -> None:
        emulator.inject(Fault(chunk_delay=0.3))
        body = {"model": MODEL, "messages": USER, "stream": True}
        headers = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                emulator.base_url + "/chat/completions", json=body, headers=headers
            )
            first = await response.content.readuntil(b"\n\n")
            assert first.startswith(b"data: {")
            response.close()  # drops the connection, mid-stream
        for _ in range(100):  # up to 2 s
            if emulator.disconnects:
                break
            await asyncio.sleep(0.02)
        assert emulator.disconnects == 1

    def test_completed_streams_are_not_disconnects(
        self, emulator: OpenAIEmulator, client: openai.OpenAI
    ) -> None:
        list(client.chat.completions.create(model=MODEL, messages=USER, stream=True))  # type: ignore[arg-type]
        with client.responses.stream(model=MODEL, input="x") as stream:
            stream.get_final_response()
        time.sleep(0.1)
        assert emulator.disconnects == 0
