"""OpenAI embeddings ⇄ Gemini ``embedContent`` / ``batchEmbedContents``.

One string is one ``embedContent`` call; a list is one ``batchEmbedContents`` call with a
request per string, in order. ``dimensions`` → ``outputDimensionality``. Token-id inputs have
no Gemini counterpart. The answer becomes OpenAI's ``list`` of ``embedding`` objects, as floats
or, for ``encoding_format: base64`` (what the openai SDK asks for by default), as the base64 of
little-endian float32 values, as OpenAI encodes them. Gemini's embedding answers carry no token
count on AI Studio: ``usage`` then says 0, and the request log estimates the tokens.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from providers.adapter import TranslationError
from providers.gemini.request import model_path
from providers.gemini.usage import JSONObject, usage_from_gemini

_KNOWN = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


def embeddings_to_gemini(payload: JSONObject) -> tuple[str, JSONObject]:
    """``(path, body)`` of the Gemini call for an OpenAI embeddings request."""
    unknown = sorted(set(payload) - _KNOWN)
    if unknown:
        raise TranslationError(
            f"Unknown parameter `{unknown[0]}`: Gemini embeddings cannot express it.",
            param=unknown[0],
        )
    if payload.get("encoding_format") not in (None, "float", "base64"):
        raise TranslationError(
            "encoding_format must be 'float' or 'base64'.", param="encoding_format"
        )
    dimensions = payload.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise TranslationError("`dimensions` must be a positive integer.", param="dimensions")
    model = payload.get("model")
    texts = payload.get("input")
    single = isinstance(texts, str)
    if single:
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise TranslationError(
            "Gemini embeds text: `input` must be a string or a non-empty list of strings "
            "(token ids cannot be sent).",
            param="input",
        )
    requests: list[JSONObject] = []
    for text in texts:
        request: JSONObject = {"content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    if single:
        return model_path(model, "embedContent"), requests[0]
    path = model_path(model, "batchEmbedContents")
    name = path.removeprefix("/v1beta/").partition(":")[0]
    return path, {"requests": [{"model": name, **request} for request in requests]}


def openai_vector(values: Any, encoding: Any) -> list[float] | str:
    """An embedding as OpenAI sends it: floats, or for ``encoding`` ``base64`` the base64 of
    little-endian float32 values (what the openai SDK asks for by default and decodes)."""
    floats = [float(v) for v in values] if isinstance(values, list) else []
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(floats)}f", *floats)).decode("ascii")
    return floats


def gemini_to_embeddings(answer: JSONObject, request: JSONObject) -> JSONObject:
    """OpenAI's embeddings answer for Gemini's ``answer`` to ``request`` (the client's)."""
    embeddings = answer.get("embeddings")
    if not isinstance(embeddings, list):
        single = answer.get("embedding")
        if not isinstance(single, dict):
            raise ValueError("a Gemini embeddings answer without `embedding(s)`")
        embeddings = [single]
    encoding = request.get("encoding_format")
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": openai_vector(
                item.get("values") if isinstance(item, dict) else None, encoding
            ),
        }
        for index, item in enumerate(embeddings)
    ]
    usage = usage_from_gemini(answer.get("usageMetadata"))
    prompt = usage.prompt_tokens if usage is not None else 0
    return {
        "object": "list",
        "data": data,
        "model": str(request.get("model", "")),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }
