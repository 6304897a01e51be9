"""The Anthropic Messages API behind the adapter protocol (:class:`providers.adapter.Adapter`)
and the log's reader of its answers (:class:`providers.formats.ResponseReader`)."""

from __future__ import annotations

from typing import Any

from providers.adapter import JSONObject, StreamSummary, UpstreamRequest
from providers.anthropic.errors import error_to_openai
from providers.anthropic.headers import request_headers
from providers.anthropic.request import chat_to_messages
from providers.anthropic.response import messages_to_chat
from providers.anthropic.stream import MessagesStreamDecoder
from providers.anthropic.summary import summarise_stream

MESSAGES_PATH = "/v1/messages"
"""Under the provider's base URL (``https://api.anthropic.com``, no version in it)."""


class AnthropicAdapter:
    """Unified chat ⇄ Messages; stateless, so one instance may serve every request."""

    wire = "anthropic"

    def build_request(
        self, chat: JSONObject, *, api_key: str | None, default_max_tokens: int
    ) -> UpstreamRequest:
        body = chat_to_messages(chat, default_max_tokens=default_max_tokens)
        return UpstreamRequest(MESSAGES_PATH, request_headers(api_key or "", body), body)

    def chat_completion(self, answer: JSONObject) -> JSONObject:
        return messages_to_chat(answer)

    def stream_decoder(self, *, include_usage: bool) -> MessagesStreamDecoder:
        return MessagesStreamDecoder(include_usage=include_usage)

    def error(self, status: int, body: bytes) -> JSONObject:
        return error_to_openai(status, body)


def stream_summary(raw: bytes) -> StreamSummary:
    """A recorded Messages stream, as the log's :class:`StreamSummary`."""
    final, usage, model, text = summarise_stream(raw)
    return StreamSummary(final, usage, model, text)


def completion_text(message: Any) -> str:
    """The text blocks of a Message (for a token estimate when it reports no usage)."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if not isinstance(content, list):
        return ""
    return "".join(
        block["text"]
        for block in content
        if isinstance(block, dict) and isinstance(block.get("text"), str)
    )
