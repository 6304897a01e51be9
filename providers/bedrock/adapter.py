"""AWS Bedrock behind the adapter protocol (:class:`providers.adapter.Adapter`).

Two Bedrock APIs, chosen per model: Claude goes through InvokeModel with Anthropic's own
Messages body (every Messages feature — cache breakpoints, thinking with signatures, document
blocks — kept exactly; :mod:`.invoke`), every other family (Llama, Mistral, Nova, DeepSeek…)
through Converse (:mod:`.converse`). ``claude_api="converse"`` sends Claude through Converse
too. Bedrock's answers name neither the model nor the API, so an instance remembers both from
:meth:`BedrockAdapter.build_request`: use one instance per request (``adapter_for`` makes a
fresh one each time).

The credential is not applied here: SigV4 covers the final URL (region, encoded path) and
body, so the caller signs once those are fixed (:func:`providers.bedrock.signing.auth_headers`).
"""

from __future__ import annotations

import functools
from typing import Literal

from providers.adapter import ChatStreamDecoder, JSONObject, UpstreamRequest
from providers.anthropic import messages_to_chat
from providers.bedrock.converse import chat_to_converse
from providers.bedrock.errors import error_to_openai
from providers.bedrock.eventstream import CONTENT_TYPE
from providers.bedrock.invoke import chat_to_invoke
from providers.bedrock.models import is_anthropic, model_path
from providers.bedrock.response import converse_to_chat
from providers.bedrock.stream import ConverseStreamDecoder, InvokeStreamDecoder

_JSON = "application/json"

ROUTES_SIZE = 1024
"""Models whose route is remembered (a client may name any; the least recently used goes)."""


@functools.lru_cache(maxsize=ROUTES_SIZE)
def route(model: str, claude_api: str) -> tuple[bool, bool, str, str]:
    """Whether ``model`` is Claude, whether it goes through InvokeModel, and its path whole
    and streamed: derived once per model and remembered, not per request (a Bedrock
    request's model is one of a few)."""
    claude = is_anthropic(model)
    invoke = claude and claude_api == "invoke"
    if invoke:
        return (claude, invoke, model_path(model, "invoke"),
                model_path(model, "invoke-with-response-stream"))  # fmt: skip
    return (claude, invoke, model_path(model, "converse"),
            model_path(model, "converse-stream"))  # fmt: skip


class BedrockAdapter:
    """Unified chat ⇄ Bedrock (Converse, or InvokeModel for Claude); one per request."""

    wire = "bedrock"

    def __init__(self, *, claude_api: Literal["invoke", "converse"] = "invoke") -> None:
        self._claude_api = claude_api
        self._model = ""
        self._invoke = False

    @property
    def api(self) -> Literal["invoke", "converse"]:
        """The API the last built request uses."""
        return "invoke" if self._invoke else "converse"

    def build_request(
        self, chat: JSONObject, *, api_key: str | None, default_max_tokens: int
    ) -> UpstreamRequest:
        model = chat.get("model")
        model = model if isinstance(model, str) else ""
        stream = chat.get("stream") is True
        claude, invoke, path, stream_path = route(model, self._claude_api)
        self._model = model
        self._invoke = invoke
        if invoke:
            body = chat_to_invoke(chat, default_max_tokens=default_max_tokens)
        else:
            body = chat_to_converse(chat, claude=claude, default_max_tokens=default_max_tokens)
        if stream:
            return UpstreamRequest(stream_path, {"content-type": _JSON, "accept": CONTENT_TYPE},
                                   body)  # fmt: skip
        return UpstreamRequest(path, {"content-type": _JSON, "accept": _JSON}, body)

    def chat_completion(self, answer: JSONObject) -> JSONObject:
        if self._invoke:
            return messages_to_chat(answer)
        return converse_to_chat(answer, model=self._model)

    def stream_decoder(self, *, include_usage: bool) -> ChatStreamDecoder:
        if self._invoke:
            return InvokeStreamDecoder(include_usage=include_usage)
        return ConverseStreamDecoder(include_usage=include_usage, model=self._model)

    def error(self, status: int, body: bytes) -> JSONObject:
        return error_to_openai(status, body)
