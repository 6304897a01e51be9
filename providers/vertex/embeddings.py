"""OpenAI embeddings ⇄ Vertex AI's text embeddings API (``:predict`` on a Google model).

Vertex embeds text through the prediction service, not the Gemini API's ``embedContent``:
``POST …/publishers/google/models/{model}:predict`` with ``{"instances": [{"content", "task_type"?,
"title"?}], "parameters": {"outputDimensionality"?, "autoTruncate"?}}``, answered with
``{"predictions": [{"embeddings": {"values": [...], "statistics": {"token_count", "truncated"}}}]}``
in input order. The mapping:

* ``input`` (a string or a list of strings) → one instance per string. Token-id inputs have no
  Vertex counterpart. Google documents at most 250 instances per request, and one for
  ``gemini-embedding-001``: more is a 400 here, naming ``input``, before anything is sent.
* ``dimensions`` → ``parameters.outputDimensionality``.
* Vertex truncates over-long inputs silently by default; OpenAI refuses them. The gateway sends
  ``autoTruncate: false`` so that an input over the model's limit is Vertex's 400, as it would be
  OpenAI's, unless the client's ``auto_truncate: true`` asks for Vertex's default.
* Vertex's own fields a client may add to the OpenAI request (``extra_body``): ``task_type``
  (one of :data:`TASK_TYPES`) and ``title`` (with ``RETRIEVAL_DOCUMENT`` only, as Google
  documents), set on every instance.
* The answer → OpenAI's ``list`` of ``embedding`` objects (floats, or base64 float32 for
  ``encoding_format: base64``); ``usage.prompt_tokens`` is the sum of the instances'
  ``statistics.token_count``.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import JSONObject, TranslationError
from providers.gemini.embeddings import check_embedding_params, embedding_list, input_texts
from providers.gemini.summary import predicted_tokens
from providers.vertex.paths import model_path

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
"""The ``task_type`` values of Vertex's text embeddings API."""
MAX_INSTANCES = 250
"""Google's limit of input texts per ``:predict`` request."""
ONE_INSTANCE_MODELS = frozenset({"gemini-embedding-001"})
"""Models Google documents as taking one instance per request."""
_KNOWN = frozenset(
    {
        "model",
        "input",
        "encoding_format",
        "dimensions",
        "user",
        "task_type",
        "title",
        "auto_truncate",
    }
)


def _texts(value: Any) -> list[str]:
    texts = input_texts(value, "Vertex AI")
    if not all(texts):
        raise TranslationError("`input` must not contain an empty string.", param="input")
    return texts


def _check(payload: JSONObject) -> None:
    check_embedding_params(payload, _KNOWN, "Vertex AI")
    task = payload.get("task_type")
    if task is not None and task not in TASK_TYPES:
        raise TranslationError(
            f"`task_type` must be one of {', '.join(sorted(TASK_TYPES))}.", param="task_type"
        )
    title = payload.get("title")
    if title is not None and (not isinstance(title, str) or task != "RETRIEVAL_DOCUMENT"):
        raise TranslationError(
            "`title` must be a string, and is only taken with task_type RETRIEVAL_DOCUMENT.",
            param="title",
        )
    if payload.get("auto_truncate") not in (None, True, False):
        raise TranslationError("`auto_truncate` must be a boolean.", param="auto_truncate")


def embeddings_to_vertex(payload: JSONObject) -> tuple[str, JSONObject]:
    """``(path, body)`` of the ``:predict`` call for an OpenAI embeddings request (its
    ``model`` already Vertex's id; the path is under the project's location)."""
    _check(payload)
    model = str(payload.get("model", ""))
    texts = _texts(payload.get("input"))
    limit = 1 if model in ONE_INSTANCE_MODELS else MAX_INSTANCES
    if len(texts) > limit:
        raise TranslationError(
            f"Vertex AI's {model} embeds at most {limit} input"
            f"{'' if limit == 1 else 's'} per request; {len(texts)} were sent.",
            param="input",
        )
    extra = {k: payload[k] for k in ("task_type", "title") if payload.get(k) is not None}
    parameters: JSONObject = {"autoTruncate": payload.get("auto_truncate") is True}
    if payload.get("dimensions") is not None:
        parameters["outputDimensionality"] = payload["dimensions"]
    body = {"instances": [{"content": text, **extra} for text in texts], "parameters": parameters}
    return model_path("google", model, "predict"), body


def vertex_to_embeddings(answer: JSONObject, request: JSONObject) -> JSONObject:
    """OpenAI's embeddings answer for Vertex's ``:predict`` ``answer`` to ``request``."""
    predictions = answer.get("predictions")
    if not isinstance(predictions, list):
        raise ValueError("a Vertex embeddings answer without `predictions`")
    vectors: list[Any] = []
    for index, prediction in enumerate(predictions):
        embeddings = prediction.get("embeddings") if isinstance(prediction, dict) else None
        values = embeddings.get("values") if isinstance(embeddings, dict) else None
        if not isinstance(values, list):
            raise ValueError(f"prediction {index} has no embedding values")
        vectors.append(values)
    tokens = sum(predicted_tokens(p) or 0 for p in predictions)
    return embedding_list(vectors, request, tokens)
