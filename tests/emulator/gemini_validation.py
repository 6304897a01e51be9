"""What the Gemini emulator accepts: request bodies checked with google-genai's own types.

``generateContent`` bodies are the REST shape (``contents``, ``systemInstruction``, ``tools``,
``toolConfig``, ``safetySettings``, ``generationConfig``, ``cachedContent``): each field is
validated, in JSON mode (base64 ``data`` and ``thoughtSignature``, camelCase names), with the
SDK's pydantic model of that field (``Content``, ``Tool``, ``ToolConfig``, ``SafetySetting``,
``GenerationConfig``), which forbid unknown keys. Beyond the types, the rules the API
enforces that a translation can get wrong:

* roles are ``user`` and ``model`` only, and every content has parts;
* a turn of function responses answers the function-call turn right before it, with as many
  responses as there were calls, by the same names;
* a Gemini 3 model refuses a function-call turn whose first call lacks the
  ``thoughtSignature`` it was given (signatures the emulator did not make are refused too);
* an inline image is one of Gemini's image types.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.genai import types
from pydantic import BaseModel, TypeAdapter, ValidationError

from .gemini_errors import GeminiError
from .gemini_plan import signature_matches

_FIELDS: dict[str, TypeAdapter[Any]] = {
    "contents": TypeAdapter(list[types.Content]),
    "systemInstruction": TypeAdapter(types.Content),
    "tools": TypeAdapter(list[types.Tool]),
    "toolConfig": TypeAdapter(types.ToolConfig),
    "safetySettings": TypeAdapter(list[types.SafetySetting]),
    "generationConfig": TypeAdapter(types.GenerationConfig),
    "cachedContent": TypeAdapter(str),
}
_EMBED_KEYS = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})
_CONTENT: TypeAdapter[Any] = TypeAdapter(types.Content)
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GeminiError("Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise GeminiError("Invalid JSON payload received. Expected an object.")
    return body


def _typed(adapter: TypeAdapter[Any], value: Any, where: str) -> Any:
    try:
        return adapter.validate_json(orjson.dumps(value))
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"])
        raise GeminiError(
            f"Invalid JSON payload received. {where}.{location}: {first['msg']}"
        ) from None


def _calls(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in content["parts"] if isinstance(p.get("functionCall"), dict)]


def _check_turns(contents: list[dict[str, Any]], model: str) -> None:
    previous: dict[str, Any] | None = None
    for index, content in enumerate(contents):
        role = content.get("role")
        if role not in ("user", "model"):
            raise GeminiError(f"Please use a valid role: user, model. (contents[{index}])")
        parts = content.get("parts")
        if not parts:
            raise GeminiError(f"contents[{index}].parts must not be empty.")
        for part in parts:
            blob = part.get("inlineData")
            mime = blob.get("mimeType", "") if isinstance(blob, dict) else ""
            if mime.startswith("image/") and mime not in IMAGE_TYPES:
                raise GeminiError(f"Unsupported MIME type: {mime}")
        responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if responses:
            calls = _calls(previous) if previous and previous["role"] == "model" else []
            if len(responses) != len(calls):
                raise GeminiError(
                    "Please ensure that the number of function response parts is equal to "
                    "the number of function call parts of the function call turn."
                )
            names = sorted(c["functionCall"]["name"] for c in calls)
            if sorted(r.get("name") for r in responses) != names:
                raise GeminiError("Function response names do not match the function calls.")
        calls = _calls(content) if role == "model" else []
        if calls:
            signature = calls[0].get("thoughtSignature")
            if signature is not None and not signature_matches(calls[0]["functionCall"],
                                                                signature):
                raise GeminiError("Corrupted thought signature.")
            if signature is None and model.startswith("gemini-3"):
                raise GeminiError(
                    f"Function call is missing a thought_signature in functionCall parts. "
                    f"This is required for tools to work correctly (contents[{index}])."
                )
        previous = content


def validate_generate(raw: bytes, model: str) -> dict[str, Any]:
    """The parsed ``generateContent`` body, or :class:`GeminiError` naming what is wrong."""
    body = _parse(raw)
    check_types(body)
    _check_turns(body["contents"], model)
    return body


def check_types(body: dict[str, Any]) -> None:
    """``body``'s fields are google-genai's types (JSON mode, no unknown key), and it has
    contents: :class:`GeminiError` otherwise."""
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise GeminiError(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        )
    if not body.get("contents"):
        raise GeminiError("* GenerateContentRequest.contents: contents is not specified")
    for key, adapter in _FIELDS.items():
        if key in body:
            _typed(adapter, body[key], key)


def validate_embed(raw: bytes, *, batch: bool) -> list[dict[str, Any]]:
    """The ``embedContent`` request(s) of an embed call, checked."""
    body = _parse(raw)
    requests = body.get("requests") if batch else [body]
    if batch and (set(body) != {"requests"} or not isinstance(requests, list) or not requests):
        raise GeminiError("* BatchEmbedContentsRequest.requests: requests is not specified")
    out: list[dict[str, Any]] = []
    for request in requests or []:
        if not isinstance(request, dict) or set(request) - _EMBED_KEYS:
            raise GeminiError("Invalid JSON payload received. Unknown name in EmbedContentRequest.")
        content = _typed(_CONTENT, request.get("content"), "content")
        assert isinstance(content, BaseModel)
        out.append(request)
    return out
