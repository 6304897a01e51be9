"""``POST /v1/embeddings``: deterministic unit vectors, as floats or base64 float32.

Each vector is derived from sha256 of the model and the input, so equal inputs embed equally
and tests can recompute expectations. Values are rounded to float32 before being sent either
way, so the ``"float"`` JSON list and the ``"base64"`` little-endian float32 bytes (the Python
SDK asks for base64 by default and decodes it) carry identical numbers.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import orjson
from aiohttp import web
from openai.types import CreateEmbeddingResponse

from .errors import InvalidRequest
from .exchange import Exchange
from .text import count_words
from .wire import dump, json_response

DEFAULT_DIMENSIONS = 8

Input = str | list[int]


def _inputs(raw: Any) -> list[Input]:
    """The request's ``input`` as a list of texts or token arrays."""
    if isinstance(raw, str):
        items: list[Input] = [raw]
    elif raw and all(isinstance(token, int) for token in raw):
        items = [list(raw)]
    else:
        items = list(raw)
    if not items or any(len(item) == 0 for item in items):
        raise InvalidRequest("'$.input' is invalid. Please check the API reference.", "input")
    return items


def _float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def vector(model: str, item: Input, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` float32 values determined by ``model`` and ``item``."""
    seed = hashlib.sha256(orjson.dumps([model, item])).digest()
    raw = []
    for index in range(dimensions):
        block = hashlib.sha256(seed + index.to_bytes(4, "little")).digest()
        raw.append(int.from_bytes(block[:4], "little") / 2**31 - 1.0)
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [_float32(value / norm) for value in raw]


def encode_base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def _tokens(item: Input) -> int:
    return count_words(item) if isinstance(item, str) else len(item)


async def handle(exchange: Exchange) -> web.StreamResponse:
    params = exchange.validator.validate("embeddings", exchange.body)
    model = str(params["model"])
    dimensions = params.get("dimensions", DEFAULT_DIMENSIONS)
    if dimensions < 1:
        raise InvalidRequest(
            f"Invalid value for 'dimensions' = {dimensions}. Must be at least 1.", "dimensions"
        )
    items = _inputs(params["input"])
    vectors = [vector(model, item, dimensions) for item in items]
    tokens = sum(_tokens(item) for item in items)
    body = dump(
        CreateEmbeddingResponse.model_validate(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": index, "embedding": values}
                    for index, values in enumerate(vectors)
                ],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
    )
    if params.get("encoding_format") == "base64":
        for entry, values in zip(body["data"], vectors, strict=True):
            entry["embedding"] = encode_base64(values)
    return json_response(body, exchange.serial)
