"""The adapter seam: what every wire format provides so that one OpenAI client reaches it.

Inside the gateway the unified format is OpenAI Chat Completions. A request on
``/v1/chat/completions`` is already in it; a ``/v1/responses`` request for a provider without a
Responses endpoint is first translated to it (:mod:`providers.responses`). An adapter then
turns the unified request into its provider's request and the provider's answer back into a
chat completion (whole) or chat completion chunks (streamed, incrementally).

Contract of the unified chat format beyond OpenAI's own fields (the extension the
translations agree on, documented in the README):

* an assistant message (or a stream delta) may carry ``reasoning_content`` (the model's
  thinking as text) and ``thinking_blocks``: a list of ``{"type": "thinking", "thinking":
  str, "signature": str}`` or ``{"type": "redacted_thinking", "data": str}``, which a client
  sends back unchanged in a follow-up turn so the provider can verify its own thinking. In a
  stream, text arrives as ``reasoning_content`` deltas and each block's signature as a delta
  ``{"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": ...}]}``.
* a chunk ``{"error": {...}}`` (OpenAI error object) is an error in the middle of a stream;
  the openai SDK raises it as an ``APIError``.

An adapter never drops what it cannot express: it raises :class:`TranslationError`, which the
gateway answers with a 400 naming the field and the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from providers.usage import Usage

__all__ = [
    "Adapter",
    "ChatStreamDecoder",
    "EmbeddingsAdapter",
    "StreamSummary",
    "TranslationError",
    "UpstreamRequest",
    "Usage",
]

JSONObject = dict[str, Any]


class TranslationError(ValueError):
    """The request uses something the target format cannot express.

    ``param`` is the request field at fault in OpenAI's dotted form (``messages[2].content``,
    ``tools[0].type``…), returned as the error's ``param``.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ChatStreamDecoder(Protocol):
    """A provider's stream → ``chat.completion.chunk`` objects, one upstream event at a time.

    ``feed`` takes one complete SSE event (its ``event:`` name, or None, and its ``data``
    bytes) and returns the chunks it completes, at once: nothing that could be sent is held
    back. ``close`` is called when the upstream stream ended and returns any closing chunks.
    ``usage`` is what the stream reported so far (None when it reported nothing).
    """

    def feed(self, event: str | None, data: bytes) -> list[JSONObject]: ...

    def close(self) -> list[JSONObject]: ...

    @property
    def usage(self) -> Usage | None: ...


@dataclass(slots=True)
class StreamSummary:
    """What a recorded stream amounted to, in its own wire format: the final object a
    non-streamed call would have returned, its usage (None: the stream reported none), the
    model it named, and the completion text (for an estimate when usage is missing)."""

    final: dict[str, Any] | None = None
    usage: Usage | None = None
    model: str | None = None
    text: str = ""


class UpstreamRequest(NamedTuple):
    """What an adapter sends for one unified request: the path under the provider's base
    URL (it may end in a query string: Gemini's ``:streamGenerateContent?alt=sse``), the
    headers it adds (credential included) and the JSON body.

    A named tuple rather than a frozen dataclass: one is made per translated request, and a
    frozen dataclass's ``__init__`` (an ``object.__setattr__`` per field) costs more than
    the tuple's (as for :class:`~providers.usage.Usage`)."""

    path: str
    headers: dict[str, str]
    body: JSONObject


class Adapter(Protocol):
    """One wire format: the unified chat request in, the provider's answer back out."""

    @property
    def wire(self) -> str: ...

    def build_request(
        self, chat: JSONObject, *, api_key: str | None, default_max_tokens: int
    ) -> UpstreamRequest:
        """The provider's request for a unified chat ``chat`` (its ``model`` is already the
        provider's id). Raises :class:`TranslationError` for what the format cannot say."""
        ...

    def chat_completion(self, answer: JSONObject) -> JSONObject:
        """A whole (non-streamed, successful) answer → a ``chat.completion`` object."""
        ...

    def stream_decoder(self, *, include_usage: bool) -> ChatStreamDecoder:
        """A fresh decoder for one streamed answer."""
        ...

    def error(self, status: int, body: bytes) -> JSONObject:
        """An error answer → OpenAI's ``{"error": {...}}``, original message and type kept."""
        ...


class EmbeddingsAdapter(Protocol):
    """A wire format that also serves ``/v1/embeddings`` by translation (Gemini's
    ``embedContent``); errors are answered by the same adapter's :meth:`Adapter.error`."""

    def build_embeddings_request(
        self, request: JSONObject, *, api_key: str | None
    ) -> UpstreamRequest:
        """The provider's call for an OpenAI embeddings ``request`` (``model`` already the
        provider's id); :class:`TranslationError` for what it cannot express."""
        ...

    def embeddings(self, answer: JSONObject, request: JSONObject) -> JSONObject:
        """A whole successful answer → OpenAI's embeddings ``list`` for ``request``."""
        ...
