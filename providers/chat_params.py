"""Checks of a chat request's top-level parameters that every native translation makes alike.

The Anthropic, Gemini and Bedrock Converse translations (:mod:`providers.anthropic.request`,
:mod:`providers.gemini.request`, :mod:`providers.bedrock.converse`) read the same OpenAI fields
with the same rules: a field the target cannot express is refused unless it holds OpenAI's
no-op default, integers and numbers are checked the same way, ``stop`` and function tools have
one shape. They live here once so that the three refuse the same input with the same message;
what differs by provider (its name, its documented range) is a parameter, and what the target
does with a checked value stays in its adapter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from providers.adapter import TranslationError

JSONObject = dict[str, Any]


def shown(value: Any) -> str:
    """A request value as the client wrote it (JSON), for error messages."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def is_none(value: Any) -> bool:
    """The check of a field that has no default but absence."""
    return value is None


def neutral(*defaults: Any) -> Callable[[Any], bool]:
    """A check that a value is absent or one of OpenAI's no-op defaults (of the same type:
    ``0`` is not ``False``)."""
    return lambda value: (
        value is None
        or any(type(value) is type(default) and value == default for default in defaults)
    )


def reject_inexpressible(
    payload: JSONObject,
    *,
    translated: frozenset[str],
    neutral_only: Mapping[str, Callable[[Any], bool]],
    api: str,
) -> None:
    """Refuse every field that is neither ``translated`` nor, in ``neutral_only``, at a value
    its check accepts: nothing is dropped silently (:mod:`providers.adapter`). ``api`` names
    the target in the message ("the Gemini API")."""
    for key, value in payload.items():
        if key in translated:
            continue
        check = neutral_only.get(key)
        if check is None:
            raise TranslationError(
                f"Unknown parameter `{key}`: {api} cannot express it.", param=key
            )
        if not check(value):
            raise TranslationError(
                f"`{key}` = {shown(value)} cannot be expressed by {api}; remove it or use its "
                "default.",
                param=key,
            )


def integer(payload: JSONObject, key: str, *, minimum: int = 0) -> int | None:
    """``payload[key]`` when it is an integer ≥ ``minimum`` (a bool is not), None when absent."""
    value = payload.get(key)
    if value is None:
        return None
    if type(value) is not int or value < minimum:
        raise TranslationError(f"`{key}` must be an integer ≥ {minimum}.", param=key)
    return value


def number(
    payload: JSONObject, key: str, low: float, high: float, *, whose: str | None = None
) -> float | int | None:
    """``payload[key]`` when it is a number from ``low`` to ``high``, None when absent.
    ``whose``: the provider whose range it is, named in the message ("Anthropic's range")."""
    value = payload.get(key)
    if value is None:
        return None
    if type(value) not in (int, float) or not low <= value <= high:
        range_name = f": {whose}" if whose else ""
        raise TranslationError(
            f"`{key}` must be a number from {low:g} to {high:g}{range_name} (got {shown(value)}).",
            param=key,
        )
    checked: float | int = value
    return checked


def boolean(payload: JSONObject, key: str) -> bool | None:
    """``payload[key]`` when it is a boolean, None when absent."""
    value = payload.get(key)
    if value not in (None, True, False):
        raise TranslationError(f"`{key}` must be a boolean.", param=key)
    flag: bool | None = value
    return flag


def max_output_tokens(payload: JSONObject) -> int | None:
    """The answer's token limit: ``max_completion_tokens``, else the older ``max_tokens``."""
    limit = integer(payload, "max_completion_tokens", minimum=1)
    return limit if limit is not None else integer(payload, "max_tokens", minimum=1)


def stop_sequences(stop: Any) -> list[str] | None:
    """``stop`` (a string or a list of strings) as a list, None when absent or empty."""
    if stop is None:
        return None
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise TranslationError("`stop` must be a string or a list of strings.", param="stop")
    return sequences or None


def tools_list(payload: JSONObject) -> list[Any] | None:
    """The request's ``tools`` (None when absent)."""
    tools = payload.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    return tools


def function_tool(tool: Any, param: str, *, only: str) -> tuple[JSONObject, JSONObject | None]:
    """``(function, parameters schema or None)`` of one ``tools`` entry, checked.

    ``only`` is how the target says it takes function tools alone ("Anthropic can only take
    function tools"); the message goes on with the type it got.
    """
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise TranslationError(f"{only}; got a tool of type '{kind}'.", param=f"{param}.type")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TranslationError("A function tool needs `function.name`.", param=f"{param}.function")
    schema = function.get("parameters")
    if schema is not None and not isinstance(schema, dict):
        raise TranslationError(
            "`function.parameters` must be a JSON schema object.",
            param=f"{param}.function.parameters",
        )
    return function, schema


def chosen_function(choice: Any) -> str | None:
    """The function a ``tool_choice`` object names (``{"type": "function", "function":
    {"name": ...}}``), or None when ``choice`` is not one."""
    if (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        name: str = choice["function"]["name"]
        return name
    return None


def unknown_tool_choice(shown_choice: Any, *, api: str) -> TranslationError:
    """The refusal of a ``tool_choice`` that is none of auto, none, required or a function."""
    return TranslationError(
        f"{api} cannot express tool_choice {shown(shown_choice)}; use auto, none, required or "
        "a function.",
        param="tool_choice",
    )


def response_format(value: Any) -> tuple[str | None, JSONObject]:
    """``(kind, json_schema spec)`` of a ``response_format``: kind None for plain text
    (absent or ``text``), ``json_object``, or ``json_schema`` with a checked
    ``json_schema.schema``; any other kind is refused."""
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or kind == "text":
        return None, {}
    if kind == "json_object":
        return kind, {}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(schema, dict):
            raise TranslationError(
                "response_format json_schema needs `json_schema.schema`.",
                param="response_format.json_schema.schema",
            )
        return kind, spec
    raise TranslationError(f"Unknown response_format type {shown(kind)}.", param="response_format")
