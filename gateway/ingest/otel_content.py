"""Prompts and completions of an LLM span, in OpenAI's chat shape.

Instrumentations record content in one of several generations of conventions; the first one
a span carries wins, in this order:

* the GenAI semantic conventions' structured messages: ``gen_ai.system_instructions``,
  ``gen_ai.input.messages`` and ``gen_ai.output.messages`` (``{role, parts: [{type: text |
  tool_call | tool_call_response | uri | blob, …}], finish_reason}``), as span attributes or
  on a ``gen_ai.client.inference.operation.details`` event;
* OpenLLMetry's indexed attributes: ``gen_ai.prompt.N.role`` / ``.content`` /
  ``.tool_call_id`` / ``.tool_calls.M.{id,name,arguments}`` and ``gen_ai.completion.N.*``
  (with ``.finish_reason``), and their older ``llm.prompts.N.*`` / ``llm.completions.N.*``;
* events: ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` (a JSON ``gen_ai.prompt``
  / ``gen_ai.completion`` attribute) and the per-message ``gen_ai.{system,user,assistant,
  tool}.message`` / ``gen_ai.choice`` events (content in their attributes, or their body as
  JSON in ``gen_ai.event.content``).

A span without any of these (content tracing off: OpenLLMetry's ``TRACELOOP_TRACE_CONTENT=
false``, what ``helicone-async`` sets by default) has no messages: nothing is made up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.ingest.otlp import OtelSpan

MAX_ITEMS = 1000
"""Indexed messages (or tool calls of one message) read from one span."""

_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def parse_json(value: Any) -> Any:
    """A JSON attribute value parsed (instrumentations write structures as JSON text); any
    other value as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def indexed(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix + "N.field"`` attributes as a list of dicts, by N; nested indexes
    (``tool_calls.M.name``) become lists too."""
    items: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if not index.isdigit() or not rest or int(index) >= MAX_ITEMS:
            continue
        node = items.setdefault(int(index), {})
        parts = rest.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return [_listed(items[i]) for i in sorted(items)]


def _listed(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            if value and all(k.isdigit() and int(k) < MAX_ITEMS for k in value):
                out[key] = [
                    _listed(v) if isinstance(v, dict) else v
                    for _, v in sorted(value.items(), key=lambda kv: int(kv[0]))
                ]
            else:
                out[key] = _listed(value)
        else:
            out[key] = value
    return out


def _tool_call(call: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
    inner = call.get("function")
    function: Mapping[str, Any] = inner if isinstance(inner, dict) else call
    arguments = function.get("arguments")
    out: dict[str, Any] = {
        "id": str(call.get("id") or ""),
        "type": "function",
        "function": {
            "name": str(function.get("name") or ""),
            "arguments": arguments if isinstance(arguments, str) else _text(arguments or {}),
        },
    }
    if index is not None:
        out["index"] = index
    return out


def _content(value: Any) -> Any:
    """Message content: text, or a content-parts array when the attribute holds one."""
    parsed = parse_json(value)
    if isinstance(parsed, list) and all(isinstance(p, dict) and "type" in p for p in parsed):
        return parsed
    return value if isinstance(value, str) or value is None else _text(value)


def _indexed_message(item: Mapping[str, Any], default_role: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": str(item.get("role") or default_role)}
    message["content"] = _content(item.get("content"))
    calls = item.get("tool_calls")
    if isinstance(calls, list) and calls:
        message["tool_calls"] = [_tool_call(c) for c in calls if isinstance(c, dict)]
    for name in ("tool_call_id", "name"):
        if item.get(name):
            message[name] = str(item[name])
    return message


def _part_messages(message: Mapping[str, Any], default_role: str) -> list[dict[str, Any]]:
    """One semantic-conventions message (``{role, parts}``) as OpenAI messages: a tool
    response part is a ``tool`` message of its own."""
    role = str(message.get("role") or default_role)
    parts = message.get("parts")
    if not isinstance(parts, list):
        return [{"role": role, "content": _content(message.get("content"))}]
    content: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            content.append({"type": "text", "text": _text(part.get("content"))})
        elif kind == "tool_call":
            calls.append(_tool_call(part))
        elif kind == "tool_call_response":
            response = part.get("response", part.get("result"))
            out.append({"role": "tool", "tool_call_id": str(part.get("id") or ""),
                        "content": _text(response)})  # fmt: skip
        elif kind in ("uri", "blob") and part.get("modality") == "image":
            url = part.get("uri")
            if kind == "blob":
                url = f"data:{part.get('mime_type') or 'image/png'};base64,{part.get('content')}"
            content.append({"type": "image_url", "image_url": {"url": str(url)}})
    if content or calls or not out:
        own: dict[str, Any] = {"role": role}
        if len(content) == 1 and content[0]["type"] == "text":
            own["content"] = content[0]["text"]
        else:
            own["content"] = content or None
        if calls:
            own["tool_calls"] = calls
        out.insert(0, own)
    return out


def _instructions(value: Any) -> str:
    parsed = parse_json(value)
    if isinstance(parsed, list):
        return "\n".join(
            _text(p.get("content")) if isinstance(p, dict) else _text(p) for p in parsed
        )
    return _text(parsed)


def _structured(source: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    messages: list[dict[str, Any]] = []
    instructions = source.get("gen_ai.system_instructions")
    if instructions:
        messages.append({"role": "system", "content": _instructions(instructions)})
    inputs = parse_json(source.get("gen_ai.input.messages"))
    if isinstance(inputs, list):
        for item in inputs:
            if isinstance(item, dict):
                messages.extend(_part_messages(item, "user"))
    choices: list[dict[str, Any]] = []
    outputs = parse_json(source.get("gen_ai.output.messages"))
    if isinstance(outputs, list):
        for item in outputs:
            if isinstance(item, dict):
                produced = _part_messages(item, "assistant")
                choices.append(_choice(len(choices), produced[0], item.get("finish_reason")))
    return messages, choices


def _choice(index: int, message: Mapping[str, Any], finish: Any) -> dict[str, Any]:
    return {
        "index": index,
        "message": dict(message),
        "finish_reason": None if finish is None else str(finish),
    }


def chat_content(span: OtelSpan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(messages, choices)`` of an LLM span, OpenAI-shaped; empty lists when the span
    carries no content."""
    attributes = span.attributes
    messages, choices = _structured(attributes)
    for event in span.events:
        if event.name == _DETAILS_EVENT and not (messages or choices):
            messages, choices = _structured(event.attributes)
    if not messages:
        for prefix in ("gen_ai.prompt.", "llm.prompts."):
            items = indexed(attributes, prefix)
            if items:
                messages = [_indexed_message(item, "user") for item in items]
                break
    if not choices:
        for prefix in ("gen_ai.completion.", "llm.completions."):
            items = indexed(attributes, prefix)
            if items:
                choices = [
                    _choice(i, _indexed_message(item, "assistant"), item.get("finish_reason"))
                    for i, item in enumerate(items)
                ]
                break
    if not messages or not choices:
        event_messages, event_choices = _event_content(span)
        messages = messages or event_messages
        choices = choices or event_choices
    return messages, choices


def _event_content(span: OtelSpan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    messages: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    for event in span.events:
        attributes = event.attributes
        body = parse_json(attributes.get("gen_ai.event.content"))
        body = body if isinstance(body, dict) else {}
        if event.name == "gen_ai.content.prompt":
            prompt = parse_json(attributes.get("gen_ai.prompt"))
            if isinstance(prompt, list):
                messages.extend(_indexed_message(m, "user") for m in prompt if isinstance(m, dict))
            elif isinstance(prompt, str):
                messages.append({"role": "user", "content": prompt})
        elif event.name == "gen_ai.content.completion":
            completion = parse_json(attributes.get("gen_ai.completion"))
            for item in completion if isinstance(completion, list) else [completion]:
                if isinstance(item, dict):
                    wrapped = item.get("message")
                    inner = wrapped if isinstance(wrapped, dict) else item
                    message = _indexed_message(inner, "assistant")
                    choices.append(_choice(len(choices), message, item.get("finish_reason")))
                elif isinstance(item, str):
                    message = {"role": "assistant", "content": item}
                    choices.append(_choice(len(choices), message, None))
        elif event.name in _MESSAGE_EVENTS:
            merged = {**body, **{k: parse_json(v) for k, v in attributes.items()}}
            merged.setdefault("role", _MESSAGE_EVENTS[event.name])
            if "id" in merged and merged["role"] == "tool":
                merged.setdefault("tool_call_id", merged["id"])
            messages.append(_indexed_message(merged, _MESSAGE_EVENTS[event.name]))
        elif event.name == "gen_ai.choice":
            merged = {**body, **{k: parse_json(v) for k, v in attributes.items()}}
            wrapped = merged.get("message")
            message = _indexed_message(
                wrapped if isinstance(wrapped, dict) else merged, "assistant"
            )
            index = merged.get("index")
            choices.append(
                _choice(index if isinstance(index, int) else len(choices), message,
                        merged.get("finish_reason"))
            )  # fmt: skip
    return messages, choices


def tool_definitions(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tools offered to the model: ``gen_ai.tool.definitions`` (JSON) or OpenLLMetry's
    ``llm.request.functions.N.{name,description,parameters}``."""
    definitions = parse_json(attributes.get("gen_ai.tool.definitions"))
    tools: list[dict[str, Any]] = []
    if isinstance(definitions, list):
        for item in definitions:
            if isinstance(item, dict):
                wrapped = item.get("function")
                function = wrapped if isinstance(wrapped, dict) else item
                tools.append({"type": "function", "function": _function(function)})
        return tools
    for item in indexed(attributes, "llm.request.functions."):
        tools.append({"type": "function", "function": _function(item)})
    return tools


def _function(item: Mapping[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": str(item.get("name") or "")}
    if item.get("description"):
        function["description"] = str(item["description"])
    parameters = parse_json(item.get("parameters"))
    if parameters is not None:
        function["parameters"] = parameters
    return function


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message's content (parts joined), for completion-style bodies."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)
