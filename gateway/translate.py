"""Serving a unified request through translation: the request built by the provider's adapter,
the answer turned back into what the client asked for.

Two client formats (Chat Completions, the Responses API) meet the providers' wire formats in
the middle, the unified chat format (:mod:`providers.adapter`):

* client side: a Responses request becomes a chat request (:mod:`providers.responses`) and
  the chat answer becomes a Response object or the Responses event sequence; a chat client
  gets chat completions, or chunks then ``data: [DONE]``;
* provider side: the adapter of the provider's wire format builds its request and decodes
  its answer into chat completions (whole) or chunks (one upstream event at a time).

Streams go through one translator stage of the staged relay (:class:`EventTranslator`): the
framer of the provider's stream hands it each upstream event as soon as it is complete (SSE;
for Bedrock, AWS event-stream messages decoded by botocore's parser, :class:`EventStreamEvents`),
the decoder turns it into chunks, the client encoder into events, and each upstream event's
translation is sent as soon as it is made (:meth:`EventTranslator.feed_each`: when one network
read holds many events, the first is not kept waiting while the others are parsed), all of it
before the next upstream chunk is read. Plain chat on an OpenAI-compatible provider never comes here
(zero-copy relay).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, Protocol

import orjson
from yarl import URL

from gateway.errors import GatewayError
from gateway.fetcher import GuardedFetcher
from gateway.sse import SSEFramer
from providers.adapter import (
    Adapter,
    ChatStreamDecoder,
    EmbeddingsAdapter,
    JSONObject,
    TranslationError,
)
from providers.anthropic import AnthropicAdapter
from providers.bedrock import BedrockAdapter, EventStreamFramer
from providers.gemini import GeminiAdapter, is_file_uri
from providers.openai_format import OpenAIChatAdapter
from providers.responses import ChatToResponsesStream, chat_to_response, encode_event
from providers.vertex import VertexAdapter

logger = logging.getLogger("gateway.translate")

_DONE = b"data: [DONE]\n\n"


def adapter_for(wire: str) -> Adapter:
    """The adapter of a routed wire format (the provider table admits no other)."""
    if wire == "anthropic":
        return AnthropicAdapter()
    if wire == "gemini":
        return GeminiAdapter()
    if wire == "bedrock":
        return BedrockAdapter()  # one per request: it remembers the model and API it chose
    if wire == "vertex":
        return VertexAdapter()  # one per request: it remembers the publisher it chose
    return OpenAIChatAdapter()


def embeddings_adapter_for(wire: str) -> EmbeddingsAdapter | None:
    """The embeddings translation of a wire format (None: it has none)."""
    if wire == "gemini":
        return GeminiAdapter()
    return VertexAdapter() if wire == "vertex" else None


def parse_event(raw: bytes) -> tuple[str | None, bytes] | None:
    """``(event name, data)`` of one framed SSE event; None for a comment or empty event."""
    name: str | None = None
    data: list[bytes] = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if not data:
        return None
    return name, b"\n".join(data)


class ClientEncoder(Protocol):
    """Chat chunks → the client's stream bytes (chat SSE or Responses events)."""

    def feed(self, chunk: JSONObject) -> bytes: ...

    def close(self) -> bytes: ...


class ChatEncoder:
    """Chat chunks as OpenAI streams them: ``data: {...}`` events, then ``[DONE]``."""

    __slots__ = ()

    def feed(self, chunk: JSONObject) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def close(self) -> bytes:
        return _DONE


class ResponsesEncoder:
    """Chat chunks as the Responses API's event sequence."""

    __slots__ = ("_stream",)

    def __init__(self, request: JSONObject) -> None:
        self._stream = ChatToResponsesStream(request)

    def feed(self, chunk: JSONObject) -> bytes:
        return b"".join(encode_event(event) for event in self._stream.feed(chunk))

    def close(self) -> bytes:
        return b"".join(encode_event(event) for event in self._stream.close())


class EventFramer(Protocol):
    """A provider's stream bytes → complete ``(event name, data)`` events, incrementally."""

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]: ...

    def events(self, chunk: bytes) -> Iterator[tuple[str | None, bytes]]:
        """What :meth:`feed` returns, one event at a time (an event may be framed lazily)."""
        ...

    def flush(self) -> list[tuple[str | None, bytes]]: ...


class SSEEvents:
    """Server-sent events (every provider but Bedrock): the one SSE framer, then
    :func:`parse_event`; comments and empty events are skipped."""

    __slots__ = ("_framer",)

    def __init__(self) -> None:
        self._framer = SSEFramer()

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        return [event for raw in self._framer.feed(chunk) if (event := parse_event(raw))]

    def events(self, chunk: bytes) -> Iterator[tuple[str | None, bytes]]:
        for raw in self._framer.feed(chunk):  # framing is a cheap split; parsing waits
            if event := parse_event(raw):
                yield event

    def flush(self) -> list[tuple[str | None, bytes]]:
        return [event for raw in self._framer.flush() if (event := parse_event(raw))]


EventStreamEvents = EventStreamFramer
"""AWS event streams (``application/vnd.amazon.eventstream``, Bedrock): binary messages,
decoded incrementally by botocore's parser (:mod:`providers.bedrock.eventstream`)."""

def framer_for(wire: str) -> EventFramer:
    """A fresh framer for one streamed answer in ``wire`` format."""
    return EventStreamEvents() if wire == "bedrock" else SSEEvents()


class EventTranslator:
    """The translator stage: upstream events in, client events out, one event at a time."""

    __slots__ = ("_decoder", "_encoder", "_framer")

    def __init__(
        self,
        decoder: ChatStreamDecoder,
        encoder: ClientEncoder,
        framer: EventFramer | None = None,
    ) -> None:
        self._framer = framer if framer is not None else SSEEvents()
        self._decoder = decoder
        self._encoder = encoder

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self.feed_each(chunk))

    def feed_each(self, chunk: bytes) -> Iterator[bytes]:
        """The client bytes of each upstream event ``chunk`` completes, one upstream event at
        a time (events that translate to nothing are skipped): the relay sends the first
        before the next is framed, parsed and translated."""
        return self._translate(self._framer.events(chunk))

    def flush(self) -> bytes:
        out = b"".join(self._translate(self._framer.flush()))
        encoder = self._encoder
        closing = b"".join(encoder.feed(c) for c in self._decoder.close())
        return out + closing + encoder.close()

    def _translate(self, events: Iterable[tuple[str | None, bytes]]) -> Iterator[bytes]:
        decoder, encoder = self._decoder, self._encoder
        for event in events:
            try:
                chunks = decoder.feed(*event)
            except (ValueError, TypeError, KeyError) as exc:  # a malformed upstream event
                logger.info("untranslatable upstream event skipped: %r", exc)
                continue
            if chunks:
                out = b"".join([encoder.feed(c) for c in chunks])
                if out:
                    yield out


@dataclass(slots=True)
class ExchangeTranslation:
    """One request's :class:`gateway.relay.Translation`: provider answer → client format."""

    adapter: Adapter
    include_usage: bool
    responses_request: JSONObject | None = None
    """The client's Responses request, when the client speaks the Responses API."""
    embeddings: tuple[EmbeddingsAdapter, JSONObject] | None = None
    """An embeddings request: its translation and the request (model as the provider's)."""

    def whole(self, status: int, body: bytes) -> bytes:
        if not 200 <= status < 300:
            return orjson.dumps(self.adapter.error(status, body))
        try:
            answer = orjson.loads(body)
            if not isinstance(answer, dict):
                raise TypeError(f"a JSON {type(answer).__name__}, not an object")
            if self.embeddings is not None:
                embedder, request = self.embeddings
                return orjson.dumps(embedder.embeddings(answer, request))
            chat = self.adapter.chat_completion(answer)
            if self.responses_request is not None:
                return orjson.dumps(chat_to_response(chat, self.responses_request))
            return orjson.dumps(chat)
        except (ValueError, TypeError, KeyError) as exc:
            logger.info("untranslatable %s answer: %r", self.adapter.wire, exc)
            raise GatewayError(
                502,
                f"The provider's answer could not be read as {self.adapter.wire} format.",
                code="upstream_bad_response",
            ) from exc

    def stream(self) -> EventTranslator:
        encoder: ClientEncoder
        if self.responses_request is not None:
            encoder = ResponsesEncoder(self.responses_request)
        else:
            encoder = ChatEncoder()
        return EventTranslator(
            self.adapter.stream_decoder(include_usage=self.include_usage),
            encoder,
            framer_for(self.adapter.wire),
        )


FILE_TYPES = ("application/pdf", "text/plain", "image/*")
"""What a Responses ``input_file.file_url`` may point at when the gateway fetches it."""


async def inline_file_urls(request: JSONObject, fetcher: GuardedFetcher) -> None:
    """Replace every ``input_file.file_url`` of a Responses request by ``file_data``.

    A chat-only provider takes files as data, not URLs, so the gateway fetches them itself,
    through its one guarded fetcher (public addresses only, size and time limits; a refusal
    is a 400 naming the field). Other parts are left for the translation.
    """
    items = request.get("input")
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        content = item.get("content") if isinstance(item, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "input_file"):
                continue
            url = part.get("file_url")
            if not isinstance(url, str):
                continue
            fetched = await fetcher.fetch(
                url, accept=FILE_TYPES, param=f"input[{i}].content[{j}].file_url"
            )
            del part["file_url"]
            encoded = base64.b64encode(fetched.data).decode("ascii")
            part["file_data"] = f"data:{fetched.content_type};base64,{encoded}"
            if not part.get("filename"):
                part["filename"] = PurePosixPath(URL(fetched.url).path).name or "file"


IMAGE_TYPES = ("image/*",)
"""What an ``image_url`` may point at when the gateway fetches it."""

def _reads_none(url: str) -> bool:
    return False


_READS_URLS_ITSELF: Mapping[str, Callable[[str], bool]] = MappingProxyType(
    {"gemini": is_file_uri, "bedrock": _reads_none, "vertex": is_file_uri}
)
"""Wire formats that cannot reference a client's image URL, each with the test of the URLs
its provider does read itself (Gemini: ``gs://`` objects and Files API URIs; Bedrock: none,
it takes image bytes only; Vertex, Gemini or Claude: Cloud Storage objects): every other
http(s) image is fetched by the gateway and sent inline."""


IMAGE_INLINING_WIRES = frozenset(_READS_URLS_ITSELF)
"""The wire formats whose translation needs http(s) images fetched first (the routing's
membership test, once per translated request)."""


def inlines_images(wire: str) -> bool:
    """Whether ``wire``'s translation needs http(s) images fetched first."""
    return wire in IMAGE_INLINING_WIRES


def has_parts(messages: Any) -> bool:
    """Whether some message of ``messages`` has content parts (most conversations have
    none: no image to fetch, and no :func:`inline_image_urls` to run)."""
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("content"), list):
                return True
    return False


async def inline_image_urls(
    wire: str, messages: Any, fetcher: GuardedFetcher, fetched: dict[str, str]
) -> Any:
    """``messages`` (a chat request's) with every http(s) ``image_url`` its provider cannot
    read replaced by a ``data:`` URL of the image, fetched through the one guarded fetcher
    (public addresses only, size and time limits; a refusal is a 400 naming the part).

    The messages and parts that change are copies, the rest is shared; ``fetched`` remembers
    each URL's data URL, so that a fallback attempt on another provider of the same format
    does not fetch again. Anything that is not a well-formed image part is left for the
    translation to judge.
    """
    reads_itself = _READS_URLS_ITSELF.get(wire)
    if reads_itself is None or not has_parts(messages):  # nothing to fetch, nothing to copy
        return messages
    out: list[Any] = []
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            out.append(message)
            continue
        parts: list[Any] = []
        for j, part in enumerate(content):
            image = part.get("image_url") if isinstance(part, dict) else None
            url = image.get("url") if isinstance(image, dict) else image
            if (
                not isinstance(part, dict)
                or part.get("type") != "image_url"
                or not isinstance(url, str)
                or not url.startswith(("https://", "http://"))
                or reads_itself(url)
            ):
                parts.append(part)
                continue
            if url not in fetched:
                got = await fetcher.fetch(
                    url, accept=IMAGE_TYPES, param=f"messages[{i}].content[{j}].image_url.url"
                )
                encoded = base64.b64encode(got.data).decode("ascii")
                fetched[url] = f"data:{got.content_type};base64,{encoded}"
            kept = dict(image) if isinstance(image, dict) else {}
            parts.append({**part, "image_url": {**kept, "url": fetched[url]}})
        out.append({**message, "content": parts} if parts != content else message)
    return out


def translation_error(exc: TranslationError, provider: str) -> GatewayError:
    """A request the provider's format cannot express: a 400 naming the field."""
    return GatewayError(400, exc.message, code="unsupported_parameter", param=exc.param)


def wants_usage(chat: JSONObject) -> bool:
    options = chat.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


__all__ = [
    "IMAGE_INLINING_WIRES",
    "ChatEncoder",
    "EventFramer",
    "EventStreamEvents",
    "EventTranslator",
    "ExchangeTranslation",
    "ResponsesEncoder",
    "SSEEvents",
    "adapter_for",
    "embeddings_adapter_for",
    "framer_for",
    "has_parts",
    "inline_file_urls",
    "inline_image_urls",
    "inlines_images",
    "parse_event",
    "translation_error",
    "wants_usage",
]
