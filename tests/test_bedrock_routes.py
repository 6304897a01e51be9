"""The Bedrock adapter's per-model route table gives what deriving the route each time gives.

``BedrockAdapter.build_request`` remembers, per model and Claude API, whether the model is
Claude, which API it goes through and its two paths (``providers.bedrock.adapter.route``, an
LRU cache);
checked here against :func:`is_anthropic` and :func:`model_path` for every model shape, on a
first request and a remembered one, and the table's bound.
"""

from __future__ import annotations

from typing import Literal

import pytest

from providers.bedrock import adapter as bedrock_adapter
from providers.bedrock.adapter import BedrockAdapter
from providers.bedrock.models import is_anthropic, model_path

MODELS = [
    "us.amazon.nova-lite-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "eu.anthropic.claude-3-haiku-20240307-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:imported-model/abc",
    "meta.llama3-8b-instruct-v1:0",
    "odd model/with spaces?",
    "",
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("api", ["invoke", "converse"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_remembered_route_is_the_derived_one(
    model: str, api: Literal["invoke", "converse"], stream: bool
) -> None:
    bedrock_adapter.route.cache_clear()
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    invoke = is_anthropic(model) and api == "invoke"
    if invoke:
        operation = "invoke-with-response-stream" if stream else "invoke"
    else:
        operation = "converse-stream" if stream else "converse"
    for _ in range(2):  # derived, then remembered
        adapter = BedrockAdapter(claude_api=api)
        call = adapter.build_request(chat, api_key=None, default_max_tokens=100)
        assert call.path == model_path(model, operation)  # type: ignore[arg-type]
        assert adapter.api == ("invoke" if invoke else "converse")
        assert call.headers == {
            "content-type": "application/json",
            "accept": "application/vnd.amazon.eventstream" if stream else "application/json",
        }
        assert ("anthropic_version" in call.body) is invoke
    assert bedrock_adapter.route.cache_info().hits >= 1


def test_the_table_is_bounded() -> None:
    bedrock_adapter.route.cache_clear()
    for index in range(bedrock_adapter.ROUTES_SIZE + 7):
        BedrockAdapter().build_request(
            {"model": f"amazon.m{index}", "messages": [{"role": "user", "content": "hi"}]},
            api_key=None, default_max_tokens=100,
        )  # fmt: skip
    assert bedrock_adapter.route.cache_info().currsize == bedrock_adapter.ROUTES_SIZE
