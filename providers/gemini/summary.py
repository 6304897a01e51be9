"""Reading native Gemini answers for the request log (passthrough traffic, and the provider's
own bytes behind a translated request).

Three shapes reach the log: a whole ``GenerateContentResponse``; the JSON *array* of them that
``streamGenerateContent`` returns without ``alt=sse``; and an SSE stream of them (``alt=sse``).
Usage is the last ``usageMetadata`` (Gemini's counts are cumulative), the model is
``modelVersion``; a stream is rebuilt into the one response a non-streamed call would have
returned (each candidate's parts, adjacent text merged, its finish reason). Runs off the request
path on whatever was captured, so it never raises: what is not a JSON object is skipped.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson

from providers.adapter import StreamSummary
from providers.gemini.usage import JSONObject, usage_from_gemini
from providers.sse import iter_sse_data
from providers.usage import Usage

_MODEL_IN_PATH = re.compile(r"/models/([^/:?]+):")


def model_from_path(path: str) -> str | None:
    """The model a native Gemini or Vertex path names (``/v1beta/models/{model}:generate…``,
    ``…/publishers/google/models/{model}:streamGenerateContent``), or None."""
    match = _MODEL_IN_PATH.search(path)
    return match[1] if match else None


def _responses(obj: Any) -> list[JSONObject]:
    items = obj if isinstance(obj, list) else [obj]
    return [item for item in items if isinstance(item, dict)]


def usage_of(obj: Any) -> Usage | None:
    """Usage of a whole answer or of the array form of a stream (None: it reports none).
    Vertex AI's text embeddings (``:predict``) count each input's tokens in its prediction's
    ``embeddings.statistics.token_count``: their sum is the prompt."""
    for item in reversed(_responses(obj)):
        usage = usage_from_gemini(item.get("usageMetadata"))
        if usage is not None:
            return usage
    if isinstance(obj, dict) and isinstance(obj.get("predictions"), list):
        counts = [predicted_tokens(p) for p in obj["predictions"]]
        if any(count is not None for count in counts):
            return Usage(prompt_tokens=sum(count or 0 for count in counts))
    return None


def predicted_tokens(prediction: Any) -> int | None:
    """The input tokens of one Vertex ``:predict`` embedding (None: it counts none)."""
    embeddings = prediction.get("embeddings") if isinstance(prediction, dict) else None
    statistics = embeddings.get("statistics") if isinstance(embeddings, dict) else None
    if not isinstance(statistics, dict):
        return None
    count = statistics.get("token_count", statistics.get("tokenCount"))
    return int(count) if isinstance(count, int | float) and count >= 0 else None


def model_of(obj: Any) -> str | None:
    for item in _responses(obj):
        model = item.get("modelVersion")
        if isinstance(model, str) and model:
            return model
    return None


def _parts(item: JSONObject) -> list[JSONObject]:
    candidates = item.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    content = first.get("content") if isinstance(first, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def text_of(obj: Any) -> str:
    """The first candidate's answer text (thoughts excluded), for a token estimate."""
    return "".join(
        part["text"]
        for item in _responses(obj)
        for part in _parts(item)
        if isinstance(part.get("text"), str) and part.get("thought") is not True
    )


class _Rebuild:
    def __init__(self) -> None:
        self.first: JSONObject | None = None
        self.candidates: dict[int, JSONObject] = {}
        self.usage: Any = None

    def apply(self, item: JSONObject) -> None:
        if self.first is None:
            self.first = item
        if isinstance(item.get("usageMetadata"), dict):
            self.usage = item["usageMetadata"]
        candidates = item.get("candidates")
        for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
            if not isinstance(candidate, dict):
                continue
            index = candidate.get("index")
            index = index if type(index) is int else position
            merged = self.candidates.setdefault(
                index, {"content": {"role": "model", "parts": []}, "index": index}
            )
            for key, value in candidate.items():
                if key not in ("content", "index"):
                    merged[key] = copy.deepcopy(value)
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else []:
                if isinstance(part, dict):
                    self._add(merged["content"]["parts"], part)

    @staticmethod
    def _add(parts: list[JSONObject], part: JSONObject) -> None:
        last = parts[-1] if parts else None
        if (
            last is not None
            and set(part) <= {"text", "thought"}
            and isinstance(part.get("text"), str)
            and isinstance(last.get("text"), str)
            and last.get("thought") == part.get("thought")
            and "thoughtSignature" not in last
        ):
            last["text"] += part["text"]
        else:
            parts.append(copy.deepcopy(part))

    def final(self) -> JSONObject | None:
        if self.first is None:
            return None
        final = {k: copy.deepcopy(v) for k, v in self.first.items() if k != "candidates"}
        final["candidates"] = [self.candidates[i] for i in sorted(self.candidates)]
        if self.usage is not None:
            final["usageMetadata"] = self.usage
        return final


def stream_summary(raw: bytes) -> StreamSummary:
    """A recorded ``alt=sse`` stream as the log's :class:`StreamSummary`."""
    rebuild = _Rebuild()
    for _event, data in iter_sse_data(raw):
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        for item in _responses(parsed):
            rebuild.apply(item)
    final = rebuild.final()
    if final is None:
        return StreamSummary()
    return StreamSummary(final, usage_from_gemini(rebuild.usage), model_of(final), text_of(final))
