"""Vertex AI's text embeddings API: ``POST …/publishers/google/models/{model}:predict``.

The request is checked against Google's documented shape, strictly (an unknown field is
Vertex's 400, as it is for a real endpoint): ``{"instances": [{"content": str, "task_type"?,
"title"?}], "parameters": {"autoTruncate"?: bool, "outputDimensionality"?: int}}``, at most
250 instances (one for ``gemini-embedding-001``), ``title`` only with ``RETRIEVAL_DOCUMENT``,
``outputDimensionality`` within the model's size. Each input's tokens are its words; over the
model's 2,048 tokens an input is truncated (``statistics.truncated``), or with
``autoTruncate: false`` refused with Google's 400. The answer is the documented
``{"predictions": [{"embeddings": {"values", "statistics": {"truncated", "token_count"}}}],
"metadata": {"billableCharacterCount"}}``, each prediction checked with google-genai's
``ContentEmbedding`` type; the vectors are :func:`.embeddings.vector`'s, so tests recompute them.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from google.genai import types

from .embeddings import vector
from .gemini_errors import error_response
from .text import count_words

TASK_TYPES = frozenset(
    {
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
MAX_INSTANCES = 250
MAX_TOKENS = 2048
SIZES = {
    "gemini-embedding-001": 3072,
    "text-embedding-005": 768,
    "text-multilingual-embedding-002": 768,
}
"""Each embedding model's full vector size (also its default)."""


class PredictError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _instances(body: Any, model: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or set(body) - {"instances", "parameters"}:
        raise PredictError("Invalid JSON payload received. Unknown name at root.")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise PredictError("instances must be a non-empty list.")
    limit = 1 if model == "gemini-embedding-001" else MAX_INSTANCES
    if len(instances) > limit:
        raise PredictError(f"The model {model} supports up to {limit} instances per request.")
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) - {"content", "task_type", "title"}:
            raise PredictError(f"instances[{index}]: unknown field.")
        content = instance.get("content")
        if not isinstance(content, str) or not content:
            raise PredictError(f"instances[{index}].content must be a non-empty string.")
        task = instance.get("task_type", "RETRIEVAL_QUERY")
        if task not in TASK_TYPES:
            raise PredictError(f"instances[{index}].task_type {task!r} is not supported.")
        if "title" in instance and (
            not isinstance(instance["title"], str) or task != "RETRIEVAL_DOCUMENT"
        ):
            raise PredictError(f"instances[{index}].title is only valid with RETRIEVAL_DOCUMENT.")
    return instances


def _parameters(body: dict[str, Any], size: int) -> tuple[bool, int]:
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict) or set(parameters) - {
        "autoTruncate",
        "outputDimensionality",
    }:
        raise PredictError("parameters: unknown field.")
    truncate = parameters.get("autoTruncate", True)
    dimensions = parameters.get("outputDimensionality", size)
    if not isinstance(truncate, bool):
        raise PredictError("parameters.autoTruncate must be a boolean.")
    if type(dimensions) is not int or not 1 <= dimensions <= size:
        raise PredictError(f"parameters.outputDimensionality must be between 1 and {size}.")
    return truncate, dimensions


def answer(body_bytes: bytes, model: str) -> web.Response:
    """The ``:predict`` answer for ``model`` (Google's 404 for a model that embeds nothing)."""
    size = SIZES.get(model)
    if size is None:
        return error_response(
            404,
            f"Publisher Model `publishers/google/models/{model}` was "
            "not found or your project does not have access to it.",
        )
    try:
        try:
            body = orjson.loads(body_bytes)
        except orjson.JSONDecodeError:
            raise PredictError("Invalid JSON payload received.") from None
        instances = _instances(body, model)
        truncate, dimensions = _parameters(body, size)
        predictions = []
        for index, instance in enumerate(instances):
            text, tokens = instance["content"], count_words(instance["content"])
            if tokens > MAX_TOKENS and not truncate:
                raise PredictError(
                    f"Unable to submit request because the input token count is {tokens} but "
                    f"the model supports up to {MAX_TOKENS} (instances[{index}])."
                )
            statistics = {"truncated": tokens > MAX_TOKENS, "token_count": min(tokens, MAX_TOKENS)}
            embedding = {"values": vector(model, text, dimensions), "statistics": statistics}
            types.ContentEmbedding.model_validate(embedding)  # the SDK reads it so
            predictions.append({"embeddings": embedding})
    except PredictError as exc:
        return error_response(400, exc.message)
    characters = sum(len(i["content"]) for i in instances)
    return web.Response(
        body=orjson.dumps(
            {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
        ),
        content_type="application/json",
    )
