"""An OpenAI chat request (the unified format) → a Gemini ``generateContent`` request.

Every top-level field is translated, accepted because it asks for OpenAI's default (or only
identifies the caller), or refused with a :class:`TranslationError` naming it: nothing is
dropped silently (:mod:`providers.adapter`).

Mappings worth knowing (README, "Gemini translation"):

* ``max_completion_tokens`` / ``max_tokens`` → ``maxOutputTokens``; ``n`` → ``candidateCount``;
  ``stop`` → ``stopSequences``; ``temperature`` (0-2), ``top_p``, ``top_k``, ``seed``,
  ``presence_penalty``, ``frequency_penalty`` → their ``generationConfig`` namesakes.
* ``reasoning_effort`` → ``thinkingConfig.thinkingBudget`` with :data:`EFFORT_BUDGETS` (Google's
  own OpenAI-compatibility table: ``none`` 0 — thinking off where the model allows it —,
  ``minimal`` 128, ``low`` 1024, ``medium`` 8192, ``high`` 24576) and ``includeThoughts`` so
  the thought summaries come back as ``reasoning_content``; ``reasoning_options.budget_tokens``
  (§5.5) sets the budget directly (``-1``: Gemini's dynamic budget).
* ``response_format``: ``json_schema`` → ``responseMimeType: application/json`` and
  ``responseJsonSchema`` (JSON Schema as written, no conversion to Gemini's OpenAPI subset);
  ``json_object`` → ``responseMimeType: application/json`` alone.
* ``tools`` (functions) → one ``functionDeclarations`` tool, each schema as
  ``parametersJsonSchema``; ``tool_choice`` auto/none/required/a function →
  ``functionCallingConfig`` ``AUTO``/``NONE``/``ANY``/``ANY`` + ``allowedFunctionNames``.
  ``parallel_tool_calls: false`` has no Gemini counterpart and is refused (with tools).
* ``safety_settings`` (the gateway's extension: Gemini's own ``[{category, threshold}]``) is
  passed through as ``safetySettings``, unchanged.
* ``user``, ``safety_identifier``, ``prompt_cache_key`` identify the caller and change nothing
  in the answer; Gemini has no field for them, so they are accepted and not sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from providers.adapter import TranslationError
from providers.gemini.contents import JSONObject, split_conversation

EFFORT_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 128,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}
"""Thinking budget per OpenAI ``reasoning_effort`` (Google's OpenAI-compatibility mapping)."""

MAX_STOP_SEQUENCES = 5
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A Gemini model id as it may appear in the request path (no ``/``, ``:`` or ``..``)."""


def _shown(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _neutral(*defaults: Any) -> Callable[[Any], bool]:
    return lambda value: (
        value is None
        or any(type(value) is type(default) and value == default for default in defaults)
    )


def _is_none(value: Any) -> bool:
    return value is None


_NEUTRAL_ONLY: dict[str, Callable[[Any], bool]] = {
    "logprobs": _neutral(False),
    "top_logprobs": _neutral(0),
    "logit_bias": _neutral({}),
    "store": _neutral(False),
    "metadata": _neutral({}),
    "modalities": _neutral(["text"]),
    "audio": _is_none,
    "prediction": _is_none,
    "functions": _is_none,
    "function_call": _is_none,
    "web_search_options": _is_none,
    "verbosity": _is_none,
    "service_tier": _neutral("auto", "default"),
}
"""Fields with no Gemini counterpart: accepted only when they ask for OpenAI's default."""

_TRANSLATED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "top_k", "n", "stop", "seed", "presence_penalty", "frequency_penalty", "stream",
        "stream_options", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort",
        "reasoning_options", "response_format", "safety_settings",
        "user", "safety_identifier", "prompt_cache_key",
    }
)  # fmt: skip


def _reject_inexpressible(payload: JSONObject) -> None:
    for key, value in payload.items():
        if key in _TRANSLATED:
            continue
        check = _NEUTRAL_ONLY.get(key)
        if check is None:
            raise TranslationError(
                f"Unknown parameter `{key}`: the Gemini API cannot express it.", param=key
            )
        if not check(value):
            raise TranslationError(
                f"`{key}` = {_shown(value)} cannot be expressed by the Gemini API; remove it "
                "or use its default.",
                param=key,
            )


def _int(payload: JSONObject, key: str, *, minimum: int) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if type(value) is not int or value < minimum:
        raise TranslationError(f"`{key}` must be an integer ≥ {minimum}.", param=key)
    return value


def _number(payload: JSONObject, key: str, low: float, high: float) -> float | int | None:
    value = payload.get(key)
    if value is None:
        return None
    if type(value) not in (int, float) or not low <= value <= high:
        raise TranslationError(
            f"`{key}` must be a number from {low:g} to {high:g} (got {_shown(value)}).",
            param=key,
        )
    number: float | int = value
    return number


def _stop_sequences(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise TranslationError("`stop` must be a string or a list of strings.", param="stop")
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise TranslationError(
            f"Gemini accepts at most {MAX_STOP_SEQUENCES} stop sequences.", param="stop"
        )
    return sequences or None


def _declaration(tool: Any, param: str) -> JSONObject:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise TranslationError(
            f"Gemini can only take function tools here; got a tool of type '{kind}'.",
            param=f"{param}.type",
        )
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TranslationError("A function tool needs `function.name`.", param=f"{param}.function")
    declaration: JSONObject = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        declaration["description"] = function["description"]
    schema = function.get("parameters")
    if schema is not None:
        if not isinstance(schema, dict):
            raise TranslationError(
                "`function.parameters` must be a JSON schema object.",
                param=f"{param}.function.parameters",
            )
        declaration["parametersJsonSchema"] = schema
    return declaration


def _tool_config(choice: Any, parallel: Any, has_tools: bool) -> JSONObject | None:
    if parallel not in (None, True, False):
        raise TranslationError(
            "`parallel_tool_calls` must be a boolean.", param="parallel_tool_calls"
        )
    if parallel is False and has_tools:
        raise TranslationError(
            "Gemini cannot be told to make one tool call at a time; remove "
            "`parallel_tool_calls: false`.",
            param="parallel_tool_calls",
        )
    if choice is None:
        return None
    if choice == "auto":
        config: JSONObject = {"mode": "AUTO"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    else:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise TranslationError(
            f"Gemini cannot express tool_choice {_shown(kind)}; use auto, none, required or "
            "a function.",
            param="tool_choice",
        )
    return {"functionCallingConfig": config}


def _thinking_config(payload: JSONObject) -> JSONObject | None:
    effort = payload.get("reasoning_effort")
    options = payload.get("reasoning_options")
    if effort is not None and effort not in EFFORT_BUDGETS:
        raise TranslationError(
            f"Unknown reasoning_effort {_shown(effort)}; use one of {', '.join(EFFORT_BUDGETS)}.",
            param="reasoning_effort",
        )
    budget = EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if options is not None:
        if not isinstance(options, dict) or set(options) - {"budget_tokens"}:
            raise TranslationError(
                "reasoning_options takes only `budget_tokens`.", param="reasoning_options"
            )
        value = options.get("budget_tokens")
        if value is not None:
            if type(value) is not int or value < -1:
                raise TranslationError(
                    "reasoning_options.budget_tokens must be an integer ≥ 0 (or -1: Gemini's "
                    "dynamic budget).",
                    param="reasoning_options.budget_tokens",
                )
            if effort == "none" and value != 0:
                raise TranslationError(
                    "reasoning_options asks for thinking but reasoning_effort is 'none'.",
                    param="reasoning_options",
                )
            budget = value
    if budget is None:
        return None
    if budget == 0:
        return {"thinkingBudget": 0}
    return {"thinkingBudget": budget, "includeThoughts": True}


def _response_format(response_format: Any) -> JSONObject:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if response_format is None or kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise TranslationError(
                "response_format json_schema needs `json_schema.schema`.",
                param="response_format.json_schema.schema",
            )
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise TranslationError(f"Unknown response_format type {_shown(kind)}.", param="response_format")


def _generation_config(payload: JSONObject) -> JSONObject:
    config: JSONObject = {}
    max_tokens = _int(payload, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _int(payload, "max_tokens", minimum=1)
    numbers = {
        "temperature": ("temperature", 0.0, 2.0),
        "topP": ("top_p", 0.0, 1.0),
        "presencePenalty": ("presence_penalty", -2.0, 2.0),
        "frequencyPenalty": ("frequency_penalty", -2.0, 2.0),
    }
    for name, (key, low, high) in numbers.items():
        value = _number(payload, key, low, high)
        if value is not None:
            config[name] = value
    top_k = _int(payload, "top_k", minimum=1)
    if top_k is not None:
        config["topK"] = top_k
    candidates = _int(payload, "n", minimum=1)
    if candidates is not None and candidates != 1:
        config["candidateCount"] = candidates
    seed = payload.get("seed")
    if seed is not None:
        if type(seed) is not int:
            raise TranslationError("`seed` must be an integer.", param="seed")
        config["seed"] = seed
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = _stop_sequences(payload.get("stop"))
    if stop is not None:
        config["stopSequences"] = stop
    config.update(_response_format(payload.get("response_format")))
    thinking = _thinking_config(payload)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _safety_settings(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TranslationError(
            "safety_settings must be Gemini's list of {category, threshold} objects.",
            param="safety_settings",
        )
    return value


def model_path(model: Any, method: str) -> str:
    """``/v1beta/models/{model}:{method}`` for a model id (``models/`` prefix accepted);
    a model that could leave the path is refused."""
    name = model.removeprefix("models/") if isinstance(model, str) else ""
    if not _MODEL.fullmatch(name) or ".." in name:
        raise TranslationError(f"Invalid Gemini model id {_shown(model)}.", param="model")
    return f"/v1beta/models/{name}:{method}"


def chat_to_gemini(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` of the Gemini request for an OpenAI chat request (``model`` already
    Gemini's id): ``:generateContent``, or ``:streamGenerateContent?alt=sse`` when streamed.
    Raises :class:`TranslationError` for what Gemini cannot express."""
    if not isinstance(payload, dict):
        raise TranslationError("The request body must be a JSON object.")
    _reject_inexpressible(payload)
    stream = payload.get("stream")
    if stream not in (None, True, False):
        raise TranslationError("`stream` must be a boolean.", param="stream")
    path = model_path(
        payload.get("model"), "streamGenerateContent?alt=sse" if stream else "generateContent"
    )
    instruction, contents = split_conversation(payload.get("messages"))
    body: JSONObject = {"contents": contents}
    if instruction is not None:
        body["systemInstruction"] = instruction
    tools = payload.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    if tools:
        declarations = [_declaration(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
        body["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(payload.get("tool_choice"), payload.get("parallel_tool_calls"),
                               bool(tools))
    if tool_config is not None and tools:
        body["toolConfig"] = tool_config
    safety = _safety_settings(payload.get("safety_settings"))
    if safety is not None:
        body["safetySettings"] = safety
    config = _generation_config(payload)
    if config:
        body["generationConfig"] = config
    for key in ("user", "safety_identifier", "prompt_cache_key"):
        value = payload.get(key)
        if value is not None and not isinstance(value, str):
            raise TranslationError(f"`{key}` must be a string.", param=key)
    return path, body
