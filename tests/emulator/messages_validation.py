"""``POST /v1/messages`` bodies checked the way Anthropic checks them.

The shape is checked with the anthropic SDK's own ``MessageCreateParams`` (the beta variant
when the request carries ``anthropic-beta``, since beta fields such as
``context_management`` are only accepted then), tightened as for OpenAI (unknown keys
refused, nested iterables validated eagerly; see :mod:`.validation`). Errors are worded as
Anthropic words them, pydantic style: ``"messages.0.content.0.text: Field required"``.

Rules the types cannot express are checked after: a user turn first, ``tool_result`` blocks
answering exactly the ``tool_use`` ids of the assistant turn before them, the thinking
budget, thinking signatures the emulator issued, sampling ranges. ``temperature``, ``top_p``
and ``top_k`` are accepted (and range-checked) although this SDK version's types no longer
declare them: the API has always taken them and the gateway maps OpenAI's onto them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from anthropic.types import message_create_params
from anthropic.types.beta import message_create_params as beta_message_create_params
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, SchemaValidator

from .anthropic_errors import AnthropicError
from .messages_plan import signature_matches
from .validation import Located, discriminator_miss, locate, relevant, tighten

_BAD_JSON = "There was an error parsing the body of your request: invalid JSON."
_HEADER_FIELDS = frozenset({"betas", "user_profile_id", "workspace_id"})
"""Keys the SDK's params declare but sends as headers: never valid in a body."""
_SAMPLING = ("temperature", "top_p", "top_k")
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
MIN_THINKING_BUDGET = 1024


def _without_header_fields(schema: Any) -> Any:
    """The request's top-level typed-dict schema minus the fields the SDK sends as headers."""
    if isinstance(schema, Mapping):
        if schema.get("type") == "typed-dict" and "max_tokens" in schema.get("fields", {}):
            fields = {k: v for k, v in schema["fields"].items() if k not in _HEADER_FIELDS}
            return {**schema, "fields": fields}
        return {key: _without_header_fields(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_without_header_fields(item) for item in schema]
    return schema


class MessagesValidator:
    """Validates Messages request bodies; one compiled validator per (beta, stream)."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[bool, bool], SchemaValidator] = {}

    def _validator(self, beta: bool, stream: bool) -> SchemaValidator:
        key = (beta, stream)
        if key not in self._compiled:
            module = beta_message_create_params if beta else message_create_params
            params = (
                module.MessageCreateParamsStreaming
                if stream
                else module.MessageCreateParamsNonStreaming
            )
            schema = _without_header_fields(tighten(TypeAdapter(params).core_schema))
            self._compiled[key] = SchemaValidator(schema)
        return self._compiled[key]

    def validate(self, raw: bytes, beta: bool) -> dict[str, Any]:
        """The parsed body, or ``AnthropicError`` worded the way Anthropic words it."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise AnthropicError(_BAD_JSON) from None
        if not isinstance(body, dict):
            raise AnthropicError(_BAD_JSON)
        typed = {key: value for key, value in body.items() if key not in _SAMPLING}
        try:
            self._validator(beta, body.get("stream") is True).validate_python(typed, strict=True)
        except ValidationError as exc:
            raise AnthropicError(summarise(exc.errors(), typed)) from None
        check(body)
        return body


def _dotted(path: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in path)


def _expected(items: Sequence[Located]) -> str:
    values: list[str] = []
    for item in items:
        expected = str((item.error.get("ctx") or {}).get("expected", ""))
        for value in re.findall(r"'[^']*'", expected):
            if value not in values:
                values.append(value)
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + f" or {values[-1]}"


def summarise(errors: Sequence[ErrorDetails], body: Any) -> str:
    """One ``"<location>: <problem>"`` line for a pydantic error list.

    Union members whose ``type``/``role`` does not match the input are noise (see
    :func:`.validation.relevant`); among what is left the deepest location wins, and a real
    problem (a missing or wrong field) beats a mere "this is not that member" mismatch.
    """
    kept = relevant([locate(error, body) for error in errors])
    chosen = max(
        kept,
        key=lambda item: (
            len(item.path),
            discriminator_miss(item) is None,
            item.error["type"] != "missing",
        ),
    )
    same = [item for item in kept if item.path == chosen.path]
    where = _dotted(chosen.path) or "body"
    if {item.error["type"] for item in same} == {"literal_error"}:
        return f"{where}: Input should be {_expected(same)}"
    return f"{where}: {chosen.error['msg']}"


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content if isinstance(block, dict)]


def _thinking_type(body: Mapping[str, Any]) -> str | None:
    thinking = body.get("thinking")
    return str(thinking.get("type")) if isinstance(thinking, dict) else None


def _check_sampling(body: Mapping[str, Any]) -> None:
    for name, low, high in (("temperature", 0, 1), ("top_p", 0, 1), ("top_k", 0, None)):
        if name not in body:
            continue
        value = body[name]
        integral = name == "top_k"
        if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
            kind = "integer" if integral else "number"
            raise AnthropicError(f"{name}: Input should be a valid {kind}")
        if value < low:
            raise AnthropicError(f"{name}: Input should be greater than or equal to {low}")
        if high is not None and value > high:
            raise AnthropicError(f"{name}: Input should be less than or equal to {high}")


def _check_thinking(body: Mapping[str, Any]) -> None:
    kind = _thinking_type(body)
    if kind == "enabled":
        budget = body["thinking"]["budget_tokens"]
        if budget < MIN_THINKING_BUDGET:
            raise AnthropicError(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{MIN_THINKING_BUDGET}"
            )
        if body["max_tokens"] <= budget:
            raise AnthropicError(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
                f"our documentation at {_DOCS}#max-tokens-and-context-window-size"
            )
    if kind not in ("enabled", "adaptive"):
        return
    if body.get("temperature", 1) != 1:
        raise AnthropicError(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {_DOCS}#feature-compatibility"
        )
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise AnthropicError("Thinking may not be enabled when tool_choice forces tool use.")


def _check_tools(body: Mapping[str, Any]) -> None:
    names = [tool.get("name") for tool in body.get("tools") or []]
    if len(names) != len(set(names)):
        raise AnthropicError("tools: Tool names must be unique.")
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name") not in names:
        raise AnthropicError(f"tool_choice: Tool '{choice.get('name')}' not found in tools.")


def _turns(messages: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """(index of the turn's first message, role, blocks) with consecutive messages of one
    role merged into one turn, as Anthropic merges them; system messages are not turns."""
    turns: list[tuple[int, str, list[dict[str, Any]]]] = []
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "system":
            continue
        if turns and turns[-1][1] == role:
            turns[-1][2].extend(_blocks(message["content"]))
        else:
            turns.append((index, role, _blocks(message["content"])))
    return turns


def _check_tool_results(turns: Sequence[tuple[int, str, list[dict[str, Any]]]]) -> None:
    asked: list[str] = []
    for position, (index, role, blocks) in enumerate(turns):
        if role == "assistant":
            asked = [str(b["id"]) for b in blocks if b.get("type") == "tool_use"]
            answered_next = position + 1 < len(turns)
            if asked and answered_next:
                following = {
                    str(b.get("tool_use_id"))
                    for b in turns[position + 1][2]
                    if b.get("type") == "tool_result"
                }
                missing = [tool_id for tool_id in asked if tool_id not in following]
                if missing:
                    raise AnthropicError(
                        f"messages.{index}: `tool_use` ids were found without `tool_result` "
                        f"blocks immediately after: {', '.join(missing)}. Each `tool_use` "
                        "block must have a corresponding `tool_result` block in the next "
                        "message."
                    )
            continue
        for number, block in enumerate(blocks):
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in asked:
                raise AnthropicError(
                    f"messages.{index}.content.{number}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                    "block must have a corresponding `tool_use` block in the previous message."
                )
        asked = []


def _check_signatures(messages: Sequence[Mapping[str, Any]]) -> None:
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        for number, block in enumerate(_blocks(message["content"])):
            if block.get("type") == "thinking" and not signature_matches(
                str(block.get("thinking", "")), str(block.get("signature", ""))
            ):
                raise AnthropicError(
                    f"messages.{index}.content.{number}: Invalid `signature` in `thinking` block"
                )


def _check_thinking_turn(body: Mapping[str, Any], turns: Sequence[Any]) -> None:
    """With thinking on, an assistant turn that called tools and is being answered must
    start with its thinking block: the gateway has to send thinking back unchanged."""
    if _thinking_type(body) not in ("enabled", "adaptive") or len(turns) < 2:
        return
    index, role, blocks = turns[-2]
    if role != "assistant" or not any(b.get("type") == "tool_use" for b in blocks):
        return
    first = blocks[0].get("type") if blocks else None
    if first not in ("thinking", "redacted_thinking"):
        raise AnthropicError(
            f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, "
            f"but found `{first}`. When `thinking` is enabled, a final `assistant` message "
            "must start with a thinking block (preceeding the lastmost set of `tool_use` and "
            "`tool_result` blocks). We recommend you include thinking blocks from previous "
            "turns. To avoid this requirement, disable `thinking`. Please consult our "
            f"documentation at {_DOCS}"
        )


def check(body: Mapping[str, Any]) -> None:
    """Rules Anthropic enforces that the SDK's types cannot express."""
    messages = body["messages"]
    if not messages:
        raise AnthropicError("messages: at least one message is required")
    if body["max_tokens"] < 0:
        raise AnthropicError("max_tokens: Input should be greater than or equal to 0")
    _check_sampling(body)
    _check_thinking(body)
    _check_tools(body)
    turns = _turns(messages)
    if not turns or turns[0][1] != "user":
        raise AnthropicError('messages: first message must use the "user" role')
    _check_tool_results(turns)
    _check_signatures(messages)
    _check_thinking_turn(body, turns)
