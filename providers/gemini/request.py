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

import re
from collections.abc import Callable
from typing import Any

from providers.adapter import TranslationError
from providers.chat_params import (
    boolean,
    chosen_function,
    function_tool,
    integer,
    is_none,
    max_output_tokens,
    neutral,
    number,
    reject_inexpressible,
    response_format,
    shown,
    stop_sequences,
    tools_list,
    unknown_tool_choice,
)
from providers.chat_parts import plain_conversation
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


_NEUTRAL_ONLY: dict[str, Callable[[Any], bool]] = {
    "logprobs": neutral(False),
    "top_logprobs": neutral(0),
    "logit_bias": neutral({}),
    "store": neutral(False),
    "metadata": neutral({}),
    "modalities": neutral(["text"]),
    "audio": is_none,
    "prediction": is_none,
    "functions": is_none,
    "function_call": is_none,
    "web_search_options": is_none,
    "verbosity": is_none,
    "service_tier": neutral("auto", "default"),
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


_READ_AFTER_CONTENTS = _TRANSLATED - {"model", "messages", "stream", "stream_options"}
"""The fields :func:`chat_to_gemini` reads once the contents are made: a request with none of
them (the usual one) is complete at that point, as every later step would add nothing."""

_PLAIN_FIELDS = _TRANSLATED - _READ_AFTER_CONTENTS
"""The fields of the usual request: one with no others needs neither the check of unknown
fields nor anything after the contents (:func:`chat_to_gemini`'s first branch; every field in
it is translated, so the check would pass)."""

_NUMBERS = (
    ("temperature", "temperature", 0.0, 2.0),
    ("topP", "top_p", 0.0, 1.0),
    ("presencePenalty", "presence_penalty", -2.0, 2.0),
    ("frequencyPenalty", "frequency_penalty", -2.0, 2.0),
)
"""``generationConfig`` numbers: (Gemini's name, OpenAI's, lowest, highest)."""


def _declaration(tool: Any, param: str) -> JSONObject:
    function, schema = function_tool(
        tool, param, only="Gemini can only take function tools here"
    )
    declaration: JSONObject = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        declaration["description"] = function["description"]
    if schema is not None:
        declaration["parametersJsonSchema"] = schema
    return declaration


def _tool_config(choice: Any, parallel: bool | None, has_tools: bool) -> JSONObject | None:
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
    elif (name := chosen_function(choice)) is not None:
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
    else:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise unknown_tool_choice(kind, api="Gemini")
    return {"functionCallingConfig": config}


def _thinking_config(payload: JSONObject) -> JSONObject | None:
    effort = payload.get("reasoning_effort")
    options = payload.get("reasoning_options")
    if effort is not None and (not isinstance(effort, str) or effort not in EFFORT_BUDGETS):
        raise TranslationError(
            f"Unknown reasoning_effort {shown(effort)}; use one of {', '.join(EFFORT_BUDGETS)}.",
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


def _response_format(value: Any) -> JSONObject:
    kind, spec = response_format(value)
    if kind is None:
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    return {"responseMimeType": "application/json", "responseJsonSchema": spec["schema"]}


def _generation_config(payload: JSONObject) -> JSONObject:
    config: JSONObject = {}
    max_tokens = max_output_tokens(payload)
    for name, key, low, high in _NUMBERS:
        value = number(payload, key, low, high)
        if value is not None:
            config[name] = value
    top_k = integer(payload, "top_k", minimum=1)
    if top_k is not None:
        config["topK"] = top_k
    candidates = integer(payload, "n", minimum=1)
    if candidates is not None and candidates != 1:
        config["candidateCount"] = candidates
    seed = payload.get("seed")
    if seed is not None:
        if type(seed) is not int:
            raise TranslationError("`seed` must be an integer.", param="seed")
        config["seed"] = seed
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = stop_sequences(payload.get("stop"))
    if stop is not None:
        if len(stop) > MAX_STOP_SEQUENCES:
            raise TranslationError(
                f"Gemini accepts at most {MAX_STOP_SEQUENCES} stop sequences.", param="stop"
            )
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
        raise TranslationError(f"Invalid Gemini model id {shown(model)}.", param="model")
    return f"/v1beta/models/{name}:{method}"


def chat_to_gemini(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` of the Gemini request for an OpenAI chat request (``model`` already
    Gemini's id): ``:generateContent``, or ``:streamGenerateContent?alt=sse`` when streamed.
    Raises :class:`TranslationError` for what Gemini cannot express."""
    if not isinstance(payload, dict):
        raise TranslationError("The request body must be a JSON object.")
    if _PLAIN_FIELDS.issuperset(payload):  # the usual request: what the rest does, in short
        stream = boolean(payload, "stream") if "stream" in payload else None
        path = model_path(
            payload.get("model"), "streamGenerateContent?alt=sse" if stream else "generateContent"
        )
        messages = payload.get("messages")
        plain = plain_conversation(messages, assistant="model", blocks="parts",
                                   keep_empty_user=True)  # fmt: skip
        if plain is not None and plain[1]:  # contents._plain_conversation, inline
            body: JSONObject = {"contents": plain[1]}
            if plain[0]:
                body["systemInstruction"] = {"parts": plain[0]}
            return path, body
        instruction, contents = split_conversation(messages)
        body = {"contents": contents}
        if instruction is not None:
            body["systemInstruction"] = instruction
        return path, body
    reject_inexpressible(
        payload, translated=_TRANSLATED, neutral_only=_NEUTRAL_ONLY, api="the Gemini API"
    )
    stream = boolean(payload, "stream")
    path = model_path(
        payload.get("model"), "streamGenerateContent?alt=sse" if stream else "generateContent"
    )
    instruction, contents = split_conversation(payload.get("messages"))
    body = {"contents": contents}
    if instruction is not None:
        body["systemInstruction"] = instruction
    if _READ_AFTER_CONTENTS.isdisjoint(payload):
        return path, body
    tools = tools_list(payload)
    if tools:
        declarations = [_declaration(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
        body["tools"] = [{"functionDeclarations": declarations}]
    parallel = boolean(payload, "parallel_tool_calls")
    tool_config = _tool_config(payload.get("tool_choice"), parallel, bool(tools))
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
