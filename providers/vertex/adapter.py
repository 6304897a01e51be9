"""Vertex AI behind the adapter protocol (:class:`providers.adapter.Adapter`): the Gemini and
Anthropic translations on Vertex's resource paths.

Google's models get the Gemini adapter's ``generateContent`` body unchanged (Vertex takes the
same ``contents``, ``systemInstruction``, ``tools``, ``generationConfig``); Claude gets the
Anthropic adapter's Messages body with the two changes Anthropic documents for Vertex:
``anthropic_version: "vertex-2023-10-16"`` in the body instead of a header, and no ``model``
(it is in the path), sent to ``:rawPredict`` or ``:streamRawPredict``. Answers and streams are
those formats' own, so they are read by those adapters.

Paths start at ``/publishers/…``: the caller puts ``/v1/projects/{project}/locations/
{location}`` (:func:`providers.vertex.paths.location_path`) in the base URL, with the host of
that location. The credential is not applied here either: an OAuth access token, minted by the
gateway from a service-account key or sent by the client, is added once known. Which format
answers depends on the model, so an instance remembers it from :meth:`build_request`: use one
instance per request (``adapter_for`` makes a fresh one each time).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from providers.adapter import ChatStreamDecoder, JSONObject, TranslationError, UpstreamRequest
from providers.anthropic import (
    CONTEXT_MANAGEMENT_BETA,
    MessagesStreamDecoder,
    messages_to_chat,
)
from providers.anthropic import error_to_openai as anthropic_error
from providers.anthropic.request import platform_body
from providers.gemini import GeminiStreamDecoder, chat_to_gemini, gemini_to_chat
from providers.gemini import error_to_openai as google_error_to_openai
from providers.gemini.errors import google_error
from providers.vertex.embeddings import embeddings_to_vertex, vertex_to_embeddings
from providers.vertex.paths import is_model_id, model_path, publisher_of

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
"""The ``anthropic_version`` Claude on Vertex requires in the body."""

_GEMINI_PREFIX = "/v1beta/models/"
_JSON = {"content-type": "application/json"}


def chat_to_vertex_claude(chat: JSONObject, *, default_max_tokens: int) -> JSONObject:
    """The ``rawPredict`` body for Claude for an OpenAI chat request: the Messages body with
    ``anthropic_version`` and without ``model``. ``service_tier`` is Anthropic's API's own
    (Vertex has its own quotas) and is refused unless it asks for the default."""
    return platform_body(
        chat,
        platform="Vertex AI",
        anthropic_version=VERTEX_ANTHROPIC_VERSION,
        default_max_tokens=default_max_tokens,
        dropped=frozenset({"model"}),
    )


class VertexAdapter:
    """Unified chat ⇄ Vertex AI (Gemini or Claude, by the model); one per request."""

    def __init__(self) -> None:
        self._claude = False

    @property
    def wire(self) -> Literal["anthropic", "gemini"]:
        """The format the last built request is answered in (what the log reads it as)."""
        return "anthropic" if self._claude else "gemini"

    def build_request(
        self, chat: JSONObject, *, api_key: str | None, default_max_tokens: int
    ) -> UpstreamRequest:
        model = chat.get("model")
        if not isinstance(model, str) or not is_model_id(model):
            raise TranslationError(f"Invalid Vertex AI model id {_shown(model)}.", param="model")
        self._claude = publisher_of(model) == "anthropic"
        if self._claude:
            body = chat_to_vertex_claude(chat, default_max_tokens=default_max_tokens)
            method = "streamRawPredict" if body.get("stream") is True else "rawPredict"
            headers = dict(_JSON)
            if body.get("context_management") is not None:
                headers["anthropic-beta"] = CONTEXT_MANAGEMENT_BETA
            return UpstreamRequest(model_path("anthropic", model, method), headers, body)
        path, body = chat_to_gemini(chat)
        method = path.removeprefix(_GEMINI_PREFIX).partition(":")[2]
        return UpstreamRequest(model_path("google", model, method), dict(_JSON), body)

    def chat_completion(self, answer: JSONObject) -> JSONObject:
        return messages_to_chat(answer) if self._claude else gemini_to_chat(answer)

    def stream_decoder(self, *, include_usage: bool) -> ChatStreamDecoder:
        if self._claude:
            return MessagesStreamDecoder(include_usage=include_usage)
        return GeminiStreamDecoder(include_usage=include_usage)

    def build_embeddings_request(
        self, request: JSONObject, *, api_key: str | None
    ) -> UpstreamRequest:
        """Vertex's text embeddings ``:predict`` (:mod:`providers.vertex.embeddings`); Google's
        models only (Anthropic publishes no embedding model on Vertex)."""
        model = request.get("model")
        if not isinstance(model, str) or not is_model_id(model):
            raise TranslationError(f"Invalid Vertex AI model id {_shown(model)}.", param="model")
        if publisher_of(model) != "google":
            raise TranslationError(f"{model} is not an embedding model.", param="model")
        self._claude = False
        path, body = embeddings_to_vertex(request)
        return UpstreamRequest(path, dict(_JSON), body)

    def embeddings(self, answer: JSONObject, request: JSONObject) -> JSONObject:
        return vertex_to_embeddings(answer, request)

    def error(self, status: int, body: bytes) -> JSONObject:
        """Google's error shape for Gemini, and for Claude whatever Vertex itself refused
        (authentication, quota: Google's shape); Anthropic's for what Claude answered."""
        if not self._claude or _is_google_error(body):
            return google_error_to_openai(status, body)
        return anthropic_error(status, body)


def _is_google_error(body: bytes) -> bool:
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return google_error(parsed)[1] is not None


def _shown(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)[:200]
    except (TypeError, ValueError):
        return repr(value)[:200]
