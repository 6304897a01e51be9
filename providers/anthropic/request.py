"""An OpenAI chat request (the unified format) → an Anthropic Messages request body.

Every top-level field is either translated, accepted because it holds OpenAI's default (the
request means the same without it), or refused with a :class:`TranslationError` naming it:
nothing is dropped silently (:mod:`providers.adapter`).

Mappings worth knowing (README, "Anthropic translation"):

* ``reasoning_effort`` → ``thinking: {type: enabled, budget_tokens}`` with
  :data:`EFFORT_BUDGETS` (``minimal``/``low`` 1024 — Anthropic's minimum —, ``medium`` 2048,
  ``high`` 4096; ``none`` means no thinking). ``reasoning_options.budget_tokens`` (the
  gateway's extension, §5.5) sets the budget directly. Anthropic needs the budget below
  ``max_tokens``, and counts thinking inside ``max_tokens`` as OpenAI counts reasoning inside
  ``max_completion_tokens``; when the budget does not fit, ``max_tokens`` becomes
  ``budget + max_tokens`` so the answer keeps the room the client asked for. With the default
  of 4096 and ``medium`` this is the gateway's documented "4096 max tokens with a 2048
  budget".
* ``response_format: json_schema`` → ``output_config.format`` (Anthropic's structured outputs);
  ``json_object`` (any JSON object, no schema) has no Anthropic equivalent.
* ``user`` / ``safety_identifier`` / ``prompt_cache_key`` → ``metadata.user_id`` (§4.3; the
  first one given, in that order).
* ``context_editing`` (§5.1) → ``context_management`` (beta, see :mod:`.headers`).
* ``service_tier``: ``auto`` → ``auto``, ``default`` → ``standard_only``.
* ``temperature`` / ``top_p`` (Anthropic's range 0 to 1) are sent only when they differ from the
  default 1 (:data:`SAMPLING_DEFAULTS`); ``top_k`` as given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.adapter import TranslationError
from providers.anthropic.content import JSONObject
from providers.anthropic.conversation import plain_conversation, split_conversation
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

EFFORT_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
"""Thinking budget per OpenAI ``reasoning_effort`` (Anthropic's minimum budget is 1024)."""

SAMPLING_DEFAULTS: dict[str, float] = {"temperature": 1.0, "top_p": 1.0}
"""OpenAI's and Anthropic's shared defaults: a request that states one means the same without
it, and is not sent. Newer Claude models refuse sampling parameters (Sonnet 4.5 refuses
``temperature`` together with ``top_p``, which OpenAI clients often send as 1; later models
refuse ``temperature`` altogether, and the anthropic SDK no longer types either), so only a
value that changes something is forwarded, and the model answers for it."""

MIN_THINKING_BUDGET = 1024
MAX_CACHE_BREAKPOINTS = 4
"""Anthropic accepts at most four ``cache_control`` blocks per request (§5.2)."""


_NEUTRAL_ONLY: dict[str, Callable[[Any], bool]] = {
    "n": neutral(1),
    "presence_penalty": neutral(0, 0.0),
    "frequency_penalty": neutral(0, 0.0),
    "logprobs": neutral(False),
    "top_logprobs": neutral(0),
    "logit_bias": neutral({}),
    "seed": is_none,
    "store": neutral(False),
    "metadata": neutral({}),
    "modalities": neutral(["text"]),
    "audio": is_none,
    "prediction": is_none,
    "functions": is_none,
    "function_call": is_none,
    "web_search_options": is_none,
    "verbosity": is_none,
}
"""Fields with no Anthropic counterpart: accepted only when they ask for OpenAI's default."""

_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "reasoning_effort",
        "reasoning_options",
        "thinking",
        "context_editing",
        "cache_control",
        "response_format",
        "service_tier",
    }
)

_PLAIN_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})
"""A request of these fields alone (the usual one) has nothing for :func:`chat_to_messages` to
read after the conversation: :func:`_plain_request` makes its body directly."""

_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}
_USER_ID_FIELDS = ("user", "safety_identifier", "prompt_cache_key")


def _tool(tool: Any, param: str) -> JSONObject:
    function, schema = function_tool(tool, param, only="Anthropic can only take function tools")
    out: JSONObject = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    out["input_schema"] = {"type": "object", "properties": {}} if schema is None else schema
    if function.get("strict") is True:
        out["strict"] = True  # Anthropic's strict tool use: inputs validated against the schema
    if tool.get("cache_control") is not None:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, parallel: bool | None, has_tools: bool) -> JSONObject | None:
    if choice is None:
        out: JSONObject | None = {"type": "auto"} if parallel is False and has_tools else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif (name := chosen_function(choice)) is not None:
        out = {"type": "tool", "name": name}
    else:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise unknown_tool_choice(kind, api="Anthropic")
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def thinking_budget(
    payload: JSONObject, *, who: str = "Anthropic", none_refuses_options: bool = True
) -> int | None:
    """The budget ``reasoning_effort`` / ``reasoning_options`` ask for (None: no thinking).

    Shared with Claude on Bedrock Converse, whose thinking is Anthropic's: ``who`` names the
    model in the message about the minimum budget; ``none_refuses_options`` is whether
    ``reasoning_effort: none`` with ``reasoning_options`` is refused (Converse has always let
    the options win).
    """
    effort = payload.get("reasoning_effort")
    options = payload.get("reasoning_options")
    if effort is not None and (
        not isinstance(effort, str) or (effort != "none" and effort not in EFFORT_BUDGETS)
    ):
        raise TranslationError(
            f"Unknown reasoning_effort {shown(effort)}; use one of "
            f"{', '.join(['none', *EFFORT_BUDGETS])}.",
            param="reasoning_effort",
        )
    if options is None:
        return EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if not isinstance(options, dict) or set(options) - {"budget_tokens"}:
        raise TranslationError(
            "reasoning_options takes only `budget_tokens`.", param="reasoning_options"
        )
    if effort == "none" and none_refuses_options:
        raise TranslationError(
            "reasoning_options asks for thinking but reasoning_effort is 'none'.",
            param="reasoning_options",
        )
    budget = options.get("budget_tokens")
    if budget is None:
        return EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if type(budget) is not int or budget < MIN_THINKING_BUDGET:
        raise TranslationError(
            f"{who} needs a thinking budget of at least {MIN_THINKING_BUDGET} tokens.",
            param="reasoning_options.budget_tokens",
        )
    return budget


def _thinking(payload: JSONObject) -> JSONObject | None:
    native = payload.get("thinking")
    budget = thinking_budget(payload)
    if native is None:
        return None if budget is None else {"type": "enabled", "budget_tokens": budget}
    if budget is not None:
        raise TranslationError(
            "Give either Anthropic's `thinking` or reasoning_effort/reasoning_options, not both.",
            param="thinking",
        )
    if not isinstance(native, dict) or not isinstance(native.get("type"), str):
        raise TranslationError(
            "`thinking` must be an Anthropic thinking object such as "
            '{"type": "enabled", "budget_tokens": 2048}.',
            param="thinking",
        )
    return native


def _output_config(value: Any) -> JSONObject | None:
    kind, spec = response_format(value)
    if kind is None:
        return None
    if kind == "json_schema":
        if spec.get("description"):
            raise TranslationError(
                "Anthropic structured outputs take only a schema; it cannot express "
                "`json_schema.description` (put it in the prompt or the schema).",
                param="response_format.json_schema.description",
            )
        return {"format": {"type": "json_schema", "schema": spec["schema"]}}
    raise TranslationError(
        "Anthropic cannot express response_format json_object (JSON without a schema); "
        "use json_schema.",
        param="response_format",
    )


def _edit_int(spec: JSONObject, key: str, param: str) -> int:
    value = spec[key]
    if type(value) is not int or value < 0:
        raise TranslationError(f"`{key}` must be a non-negative integer.", param=f"{param}.{key}")
    return value


def _clear_tool_uses(spec: Any, param: str) -> JSONObject:
    known = {"trigger", "keep", "clear_at_least", "exclude_tools", "clear_tool_inputs"}
    if not isinstance(spec, dict) or set(spec) - known:
        raise TranslationError(f"clear_tool_uses takes {', '.join(sorted(known))}.", param=param)
    edit: JSONObject = {"type": "clear_tool_uses_20250919"}
    units = {"trigger": "input_tokens", "keep": "tool_uses", "clear_at_least": "input_tokens"}
    for key, unit in units.items():
        if spec.get(key) is not None:
            edit[key] = {"type": unit, "value": _edit_int(spec, key, param)}
    exclude = spec.get("exclude_tools")
    if exclude is not None:
        if not isinstance(exclude, list) or not all(isinstance(n, str) for n in exclude):
            raise TranslationError(
                "exclude_tools must be a list of tool names.", param=f"{param}.exclude_tools"
            )
        edit["exclude_tools"] = exclude
    inputs = spec.get("clear_tool_inputs")
    if inputs is not None:
        if not isinstance(inputs, bool):
            raise TranslationError(
                "clear_tool_inputs must be a boolean.", param=f"{param}.clear_tool_inputs"
            )
        edit["clear_tool_inputs"] = inputs
    return edit


def _clear_thinking(spec: Any, param: str) -> JSONObject:
    if not isinstance(spec, dict) or set(spec) - {"keep"}:
        raise TranslationError("clear_thinking takes only `keep`.", param=param)
    edit: JSONObject = {"type": "clear_thinking_20251015"}
    keep = spec.get("keep")
    if keep == "all":
        edit["keep"] = "all"
    elif keep is not None:
        edit["keep"] = {"type": "thinking_turns", "value": _edit_int(spec, "keep", param)}
    return edit


def context_management(spec: Any) -> JSONObject | None:
    """The gateway's ``context_editing`` (§5.1) as Anthropic's ``context_management``.

    ``{enabled: true}`` alone means tool-use clearing with Anthropic's defaults; so does any
    configuration that names no strategy. When both strategies are given, thinking clearing
    comes first, as Anthropic requires.
    """
    param = "context_editing"
    if not isinstance(spec, dict) or not isinstance(spec.get("enabled"), bool):
        raise TranslationError(
            "context_editing needs `enabled` (true or false).", param=f"{param}.enabled"
        )
    extra = sorted(set(spec) - {"enabled", "clear_tool_uses", "clear_thinking"})
    if extra:
        raise TranslationError(
            f"Unknown context_editing field `{extra[0]}`.", param=f"{param}.{extra[0]}"
        )
    if not spec["enabled"]:
        return None
    edits: list[JSONObject] = []
    if spec.get("clear_thinking") is not None:
        edits.append(_clear_thinking(spec["clear_thinking"], f"{param}.clear_thinking"))
    if spec.get("clear_tool_uses") is not None or not edits:
        tool_uses = spec.get("clear_tool_uses") or {}
        edits.append(_clear_tool_uses(tool_uses, f"{param}.clear_tool_uses"))
    return {"edits": edits}


def _cache_breakpoints(payload: JSONObject) -> list[str]:
    """Where the request places ``cache_control`` markers, in request order."""
    found = ["cache_control"] if payload.get("cache_control") is not None else []
    tools, messages = payload.get("tools"), payload.get("messages")
    # Malformed lists are refused where they are translated (a 400 naming the field), later.
    for index, tool in enumerate(tools if isinstance(tools, list) else []):
        if isinstance(tool, dict) and tool.get("cache_control") is not None:
            found.append(f"tools[{index}].cache_control")
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        for part_index, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("cache_control") is not None:
                found.append(f"messages[{index}].content[{part_index}].cache_control")
        if message.get("cache_control") is not None:
            found.append(f"messages[{index}].cache_control")
    return found


def _user_id(payload: JSONObject) -> str | None:
    for key in _USER_ID_FIELDS:
        value = payload.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise TranslationError(f"`{key}` must be a string.", param=key)
        return value
    return None


def platform_body(
    payload: JSONObject,
    *,
    platform: str,
    anthropic_version: str,
    default_max_tokens: int,
    dropped: frozenset[str],
) -> JSONObject:
    """The Messages body for Claude on a cloud platform (Bedrock's InvokeModel, Vertex AI's
    rawPredict): ``anthropic_version`` in the body instead of a header, without the
    ``dropped`` fields the platform carries elsewhere or does not take. ``service_tier`` is
    the Anthropic API's own (the platform has its own quotas) and is refused unless it asks
    for the default."""
    if payload.get("service_tier") not in (None, "auto"):
        raise TranslationError(
            f"{platform} cannot express service_tier for Claude; remove it.",
            param="service_tier",
        )
    messages = chat_to_messages(
        {k: v for k, v in payload.items() if k != "service_tier"},
        default_max_tokens=default_max_tokens,
    )
    body: JSONObject = {"anthropic_version": anthropic_version}
    body.update((key, value) for key, value in messages.items() if key not in dropped)
    return body


def _plain_request(payload: JSONObject, default_max_tokens: int) -> JSONObject | None:
    """:func:`chat_to_messages` of a request of :data:`_PLAIN_FIELDS` alone with a plain
    conversation (:func:`plain_conversation`), the same body in the same key order; None for
    anything the full translation must check (tests/test_translation_shortcuts.py)."""
    model, stream = payload.get("model"), payload.get("stream")
    if type(model) is not str or not model or (stream is not None and type(stream) is not bool):
        return None
    plain = plain_conversation(payload.get("messages"))
    if plain is None:
        return None
    system, messages = plain
    body: JSONObject = {"model": model, "max_tokens": default_max_tokens}
    if system:
        body["system"] = system
    body["messages"] = messages
    if stream:
        body["stream"] = True
    return body


def chat_to_messages(payload: dict[str, Any], *, default_max_tokens: int) -> dict[str, Any]:
    """The Anthropic Messages request for an OpenAI chat request (``model`` already native).

    ``default_max_tokens`` stands in when the client gave no limit (Anthropic requires one).
    Raises :class:`TranslationError` for what Anthropic cannot express.
    """
    if not isinstance(payload, dict):
        raise TranslationError("The request body must be a JSON object.")
    if payload.keys() <= _PLAIN_FIELDS:
        plain = _plain_request(payload, default_max_tokens)
        if plain is not None:
            return plain
    reject_inexpressible(
        payload,
        translated=_TRANSLATED,
        neutral_only=_NEUTRAL_ONLY,
        api="the Anthropic Messages API",
    )
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise TranslationError("`model` is required.", param="model")
    breakpoints = _cache_breakpoints(payload)
    if len(breakpoints) > MAX_CACHE_BREAKPOINTS:
        raise TranslationError(
            f"Anthropic accepts at most {MAX_CACHE_BREAKPOINTS} cache_control breakpoints "
            f"per request; this one has {len(breakpoints)}.",
            param=breakpoints[MAX_CACHE_BREAKPOINTS],
        )
    system, messages = split_conversation(payload.get("messages"))

    max_tokens = max_output_tokens(payload)
    if max_tokens is None:
        max_tokens = default_max_tokens
    thinking = _thinking(payload)
    budget = thinking.get("budget_tokens") if thinking else None
    if type(budget) is int and budget >= max_tokens:
        max_tokens += budget

    body: JSONObject = {"model": model, "max_tokens": max_tokens}
    if system:
        body["system"] = system
    body["messages"] = messages
    if thinking is not None:
        body["thinking"] = thinking
    for key in SAMPLING_DEFAULTS:
        value = number(payload, key, 0.0, 1.0, whose="Anthropic's range")
        if value is not None and value != SAMPLING_DEFAULTS[key]:
            body[key] = value
    top_k = integer(payload, "top_k", minimum=1)
    if top_k is not None:
        body["top_k"] = top_k
    stop = stop_sequences(payload.get("stop"))
    if stop is not None:
        body["stop_sequences"] = stop

    tools = tools_list(payload)
    if tools:
        body["tools"] = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    parallel = boolean(payload, "parallel_tool_calls")
    choice = _tool_choice(payload.get("tool_choice"), parallel, bool(tools))
    if choice is not None and (tools or choice["type"] != "none"):
        body["tool_choice"] = choice

    user_id = _user_id(payload)
    if user_id is not None:
        body["metadata"] = {"user_id": user_id}
    output_config = _output_config(payload.get("response_format"))
    if output_config is not None:
        body["output_config"] = output_config
    if payload.get("context_editing") is not None:
        management = context_management(payload["context_editing"])
        if management is not None:
            body["context_management"] = management
    if payload.get("cache_control") is not None:
        if not isinstance(payload["cache_control"], dict):
            raise TranslationError("cache_control must be an object.", param="cache_control")
        body["cache_control"] = payload["cache_control"]
    tier = payload.get("service_tier")
    if tier is not None:
        if tier not in _SERVICE_TIERS:
            raise TranslationError(
                f"Anthropic cannot express service_tier {shown(tier)}; use 'auto' or 'default'.",
                param="service_tier",
            )
        body["service_tier"] = _SERVICE_TIERS[tier]
    if boolean(payload, "stream"):
        body["stream"] = True
    return body
