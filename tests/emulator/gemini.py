"""The Gemini API: ``POST /v1beta/models/{model}:generateContent`` (or ``/v1/…``),
``:streamGenerateContent`` (``?alt=sse``: server-sent events; without it: one JSON array, as
the REST API streams it), ``:embedContent`` and ``:batchEmbedContents``.

The answer comes from :mod:`.gemini_plan`; every response object is checked against
google-genai's ``GenerateContentResponse`` (JSON mode) before it is sent. A stream is the
documented shape: each event a whole ``GenerateContentResponse`` with the next piece of the
candidate — thought words, text words, each function call whole — carrying the cumulative
``usageMetadata`` (prompt count only until the end), the last one with ``finishReason`` and the
full usage. ``Fault(error_after_events=n)`` sends ``n`` events, then ``data: {"error": {...}}``
(``INTERNAL`` unless the fault's status says otherwise), and ends the stream, as Google does
when it fails after the 200.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from google.genai import types
from pydantic import TypeAdapter

from .embeddings import vector
from .exchange import Exchange
from .gemini_errors import GeminiError, error_object, error_response
from .gemini_plan import Part, Plan, plan
from .gemini_validation import validate_embed, validate_generate
from .sse import EventStream, frame
from .text import split_words

_PATH = re.compile(r"/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)")
"""``POST /{v1,v1beta}/models/{model}:{method}`` (google-genai 3 calls ``v1`` by default)."""
_RESPONSE: TypeAdapter[Any] = TypeAdapter(types.GenerateContentResponse)
_EMBED: TypeAdapter[Any] = TypeAdapter(types.EmbedContentResponse)
DEFAULT_DIMENSIONS = 768


def _checked(raw: dict[str, Any], adapter: TypeAdapter[Any]) -> dict[str, Any]:
    adapter.validate_json(orjson.dumps(raw))  # raises on a shape google-genai would not read
    return raw


def _response(
    p: Plan, serial: int, model: str, parts: list[Part], finish: bool, usage: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.finish_reason is not None:
        candidates = []
        for index in range(p.candidates):
            candidate: dict[str, Any] = {
                "content": {"parts": [part.wire() for part in parts], "role": "model"},
            }
            if finish:
                candidate["finishReason"] = p.finish_reason
                if p.safety:
                    candidate["safetyRatings"] = p.safety
            candidate["index"] = index
            candidates.append(candidate)
        out["candidates"] = candidates
    else:
        out["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": p.safety or []}
    out["usageMetadata"] = usage
    out["modelVersion"] = model
    out["responseId"] = f"gemini_emu_{serial}"
    return _checked(out, _RESPONSE)


def whole(p: Plan, serial: int, model: str) -> dict[str, Any]:
    return _response(p, serial, model, list(p.parts), True, p.usage())


def _pieces(p: Plan) -> list[list[Part]]:
    """The parts of each stream event: thoughts and text word by word, calls whole (the
    signature on the piece that ends its part)."""
    pieces: list[list[Part]] = []
    for part in p.parts:
        if part.call is not None:
            pieces.append([part])
            continue
        words = split_words(part.text) or [""]
        for i, word in enumerate(words):
            last = i == len(words) - 1
            pieces.append([Part(word, part.thought, None, part.signature if last else None)])
    return pieces


def events(p: Plan, serial: int, model: str) -> list[dict[str, Any]]:
    """Every event of the stream, each checked against google-genai's response type."""
    if p.finish_reason is None:
        return [whole(p, serial, model)]
    pieces = _pieces(p) or [[]]
    out: list[dict[str, Any]] = []
    for index, parts in enumerate(pieces):
        last = index == len(pieces) - 1
        usage = p.usage() if last else {
            "promptTokenCount": p.prompt_tokens,
            "totalTokenCount": p.prompt_tokens,
        }
        out.append(_response(p, serial, model, parts, last, usage))
    return out


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def is_gemini(path: str) -> bool:
    """Whether ``path`` is a Gemini API call (and so gets the Gemini API's key check and
    errors)."""
    return _PATH.fullmatch(path) is not None


async def handle(exchange: Exchange) -> web.StreamResponse:
    request = exchange.request
    match = _PATH.fullmatch(request.path)
    if request.method != "POST" or match is None:
        return error_response(404, f"Unknown path {request.path}.")
    return await answer(exchange, match["model"], match["method"])


async def answer(exchange: Exchange, model: str, method: str) -> web.StreamResponse:
    """One call of ``model``'s ``method`` (also Vertex AI's, on its own paths)."""
    request = exchange.request
    try:
        if method in ("embedContent", "batchEmbedContents"):
            return _embed(exchange, model, method == "batchEmbedContents")
        if method not in ("generateContent", "streamGenerateContent"):
            return error_response(404, f"Method {method!r} is not found for model {model}.")
        body = validate_generate(exchange.body, model)
    except GeminiError as exc:
        return error_response(exc.status, exc.message)
    p = plan(body, model)
    if method == "generateContent":
        return _json(whole(p, exchange.serial, model))
    stream = events(p, exchange.serial, model)
    fault = exchange.fault
    failure: dict[str, Any] | None = None
    if fault is not None and fault.error_after_events is not None:
        failure = error_object(fault.status or 500, fault.message)
        stream = stream[: fault.error_after_events]
    if request.query.get("alt") != "sse":  # the REST default: one JSON array, streamed
        return _json([*stream, failure] if failure else stream)
    frames = [frame(orjson.dumps(event)) for event in stream]
    if failure is not None:
        frames.append(frame(orjson.dumps(failure)))
    return await EventStream(exchange).send(frames, {"x-request-id": f"req_emu_{exchange.serial}"})


def _embed(exchange: Exchange, model: str, batch: bool) -> web.Response:
    requests = validate_embed(exchange.body, batch=batch)
    embeddings = []
    for request in requests:
        text = " ".join(p.get("text", "") for p in request["content"]["parts"])
        size = request.get("outputDimensionality") or DEFAULT_DIMENSIONS
        embeddings.append({"values": vector(model, text, int(size))})
    for item in embeddings:
        _checked({"embeddings": [item]}, _EMBED)
    return _json({"embeddings": embeddings} if batch else {"embedding": embeddings[0]})
