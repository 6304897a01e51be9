"""Malformed fields reach every native translation as a 400 naming the field, never a crash.

Found by feeding the translations thousands of generated inputs: a non-list ``messages`` and a
non-string ``reasoning_effort`` raised ``TypeError`` inside the Claude and Gemini translations,
which the data plane answers as a 500. Each case here goes through the adapter as the gateway
calls it, for every native format and model family.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.translate import adapter_for
from providers.adapter import TranslationError

TARGETS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("bedrock", "amazon.nova-lite-v1:0"),  # Converse
    ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),  # InvokeModel (streamless)
    ("vertex", "claude-sonnet-4-5@20250929"),
    ("vertex", "gemini-2.5-flash"),
]
HI = [{"role": "user", "content": "hi"}]
BAD: list[tuple[dict[str, Any], str]] = [
    ({"messages": 5}, "messages"),
    ({"messages": True}, "messages"),
    ({"messages": HI, "reasoning_effort": ["high"]}, "reasoning_effort"),
    ({"messages": HI, "reasoning_effort": {"level": "high"}}, "reasoning_effort"),
    ({"messages": HI, "reasoning_effort": 3}, "reasoning_effort"),
    ({"messages": HI, "tools": 7}, "tools"),
    ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": {"user": 1}, "content": "hi"}]}, "messages[0].role"),
]


@pytest.mark.parametrize(("wire", "model"), TARGETS)
@pytest.mark.parametrize(("fields", "param"), BAD)
def test_malformed_field_is_a_translation_error(
    wire: str, model: str, fields: dict[str, Any], param: str
) -> None:
    chat = {"model": model, **fields}
    with pytest.raises(TranslationError) as refused:
        adapter_for(wire).build_request(chat, api_key="k", default_max_tokens=1024)
    assert (refused.value.param or "").startswith(param), refused.value
