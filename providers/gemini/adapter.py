"""The Gemini API (``generateContent``) behind the adapter protocol
(:class:`providers.adapter.Adapter`), its embeddings (:class:`providers.adapter.EmbeddingsAdapter`)
and the log's reader of its answers (:class:`providers.formats.ResponseReader`)."""

from __future__ import annotations

from providers.adapter import JSONObject, UpstreamRequest
from providers.gemini.embeddings import embeddings_to_gemini, gemini_to_embeddings
from providers.gemini.errors import error_to_openai
from providers.gemini.request import chat_to_gemini
from providers.gemini.response import gemini_to_chat
from providers.gemini.stream import GeminiStreamDecoder

API_KEY_HEADER = "x-goog-api-key"
"""How the Gemini API takes its key (never ``?key=``: a query string ends up in logs)."""


def request_headers(api_key: str | None) -> dict[str, str]:
    return {API_KEY_HEADER: api_key or "", "content-type": "application/json"}


class GeminiAdapter:
    """Unified chat ⇄ ``generateContent``; stateless, so one instance may serve every request.

    Paths are under the provider's base URL (``https://generativelanguage.googleapis.com``, no
    version in it): ``/v1beta/models/{model}:generateContent``, or
    ``:streamGenerateContent?alt=sse`` for a streamed request.
    """

    wire = "gemini"

    def build_request(
        self, chat: JSONObject, *, api_key: str | None, default_max_tokens: int
    ) -> UpstreamRequest:
        """``default_max_tokens`` is not used: Gemini needs no output limit (its own default
        is the model's maximum)."""
        path, body = chat_to_gemini(chat)
        headers = {API_KEY_HEADER: api_key or "", "content-type": "application/json"}
        return UpstreamRequest(path, headers, body)  # request_headers(api_key), inline

    def chat_completion(self, answer: JSONObject) -> JSONObject:
        return gemini_to_chat(answer)

    def stream_decoder(self, *, include_usage: bool) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(include_usage=include_usage)

    def error(self, status: int, body: bytes) -> JSONObject:
        return error_to_openai(status, body)

    def build_embeddings_request(
        self, request: JSONObject, *, api_key: str | None
    ) -> UpstreamRequest:
        path, body = embeddings_to_gemini(request)
        return UpstreamRequest(path, request_headers(api_key), body)

    def embeddings(self, answer: JSONObject, request: JSONObject) -> JSONObject:
        return gemini_to_embeddings(answer, request)
