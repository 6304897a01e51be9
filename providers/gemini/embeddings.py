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


def check_embedding_params(payload: JSONObject, known: frozenset[str], provider: str) -> None:
    """The checks every Google embeddings translation makes of an OpenAI request: no
    parameter outside ``known`` (``provider`` names who cannot express it), a float or base64
    ``encoding_format``, a positive integer ``dimensions``."""
    unknown = sorted(set(payload) - known)
    if unknown:
        raise TranslationError(
            f"Unknown parameter `{unknown[0]}`: {provider} embeddings cannot express it.",
            param=unknown[0],
        )
    if payload.get("encoding_format") not in (None, "float", "base64"):
        raise TranslationError(
            "encoding_format must be 'float' or 'base64'.", param="encoding_format"
        )
    dimensions = payload.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise TranslationError("`dimensions` must be a positive integer.", param="dimensions")


def input_texts(value: Any, provider: str) -> list[str]:
    """``input`` as a non-empty list of strings (a string is one); token ids are a 400."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise TranslationError(
            f"{provider} embeds text: `input` must be a string or a non-empty list of strings "
            "(token ids cannot be sent).",
            param="input",
        )
    return texts


def embeddings_to_gemini(payload: JSONObject) -> tuple[str, JSONObject]:
    """``(path, body)`` of the Gemini call for an OpenAI embeddings request."""
    check_embedding_params(payload, _KNOWN, "Gemini")
    dimensions = payload.get("dimensions")
    model = payload.get("model")
    single = isinstance(payload.get("input"), str)
    texts = input_texts(payload.get("input"), "Gemini")
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
    usage = usage_from_gemini(answer.get("usageMetadata"))
    prompt = usage.prompt_tokens if usage is not None else 0
    vectors = [item.get("values") if isinstance(item, dict) else None for item in embeddings]
    return embedding_list(vectors, request, prompt)


def embedding_list(vectors: list[Any], request: JSONObject, prompt_tokens: int) -> JSONObject:
    """OpenAI's embeddings answer (``list`` of ``embedding`` objects, in input order) for
    ``request`` (the client's: its ``encoding_format`` and ``model``)."""
    encoding = request.get("encoding_format")
    data = [
        {"object": "embedding", "index": index, "embedding": openai_vector(values, encoding)}
        for index, values in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": str(request.get("model", "")),
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
