"""Request-time assembly: a saved prompt version merged with the request (D.2.3), after its
partials (``{{hcp:prompt_id:index:environment}}``, D.1.4) are filled in.

Pure functions: the caller resolves versions (:mod:`gateway.prompts.runtime`) and hands the
partials' texts in. Order (the docs' order, E.9 3): partials first, then variables — so the
main prompt's inputs also fill variables that a partial brought in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.prompts.template import (
    TemplateError,
    substitute_json,
    substitute_mustache,
    substitute_text,
)

PROMPT_FIELDS = frozenset({"prompt_id", "version_id", "environment", "inputs"})
"""The request fields that ask for a managed prompt; never forwarded upstream."""
PARTIAL = re.compile(
    r"\{\{\s*hcp\s*:\s*([a-zA-Z0-9_-]{1,64})\s*:\s*(\d+)\s*(?::\s*([a-zA-Z_-][a-zA-Z0-9_-]*))?\s*\}\}"
)
"""The reference takes a 6-character id; any prompt reference (short id or slug) is taken
here, as for ``prompt_id``, so the docs' own ``{{hcp:sysPrompt:0}}`` works too."""
MAX_PARTIALS = 32
"""Distinct partial tags one prompt may use (each is a version lookup)."""


class PromptError(Exception):
    """The prompt cannot be assembled: a 400 ``invalid_prompt`` with this message."""


@dataclass(frozen=True, slots=True)
class PartialRef:
    tag: str
    prompt_id: str
    index: int
    environment: str | None


def _texts(messages: Any) -> list[str]:
    """The text of each message: string contents and the ``text`` parts of content arrays."""
    found: list[str] = []
    if not isinstance(messages, list):
        return found
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            found.append(content)
        elif isinstance(content, list):
            found.extend(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return found


def chat_body(body: Any, body_kind: str) -> dict[str, Any]:
    """A version's body as a chat request: a bare string is one system message."""
    if body_kind == "text" and isinstance(body, str):
        return {"messages": [{"role": "system", "content": body}]}
    if body_kind != "chat" or not isinstance(body, dict):
        raise PromptError("Prompt body is not a chat template")
    return body


def partial_refs(saved: Mapping[str, Any]) -> list[PartialRef]:
    """The partial tags in the saved messages, each once (runtime messages are not scanned)."""
    refs: dict[str, PartialRef] = {}
    for text in _texts(saved.get("messages")):
        if "{{" not in text:
            continue
        for match in PARTIAL.finditer(text):
            tag = match.group(0)
            if tag not in refs:
                refs[tag] = PartialRef(tag, match.group(1), int(match.group(2)), match.group(3))
    if len(refs) > MAX_PARTIALS:
        raise PromptError(f"A prompt may use at most {MAX_PARTIALS} distinct partials")
    return list(refs.values())


def partial_text(saved: Mapping[str, Any], index: int) -> str:
    """Message ``index`` of a referenced version: its string content, or its text parts joined
    by a space; ``""`` out of range (D.1.4 step 3)."""
    messages = saved.get("messages")
    if not isinstance(messages, list) or not 0 <= index < len(messages):
        return ""
    message = messages[index]
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _fill_partials(text: str, partials: Mapping[str, str]) -> str:
    if not partials or "{{" not in text:
        return text
    return PARTIAL.sub(lambda m: partials.get(m.group(0), m.group(0)), text)


def _message(
    message: Any,
    inputs: Mapping[str, Any],
    partials: Mapping[str, str],
    mustache: bool,
    errors: list[TemplateError],
) -> Any:
    """A copy of ``message`` with partials then variables filled in its text."""
    if not isinstance(message, dict):
        return message

    def fill(text: str) -> str:
        text = _fill_partials(text, partials)
        filled, problems = substitute_text(text, inputs)
        errors.extend(problems)
        return substitute_mustache(filled, inputs) if mustache else filled

    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": fill(content)}
    if isinstance(content, list):
        parts = [
            {**part, "text": fill(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
        return {**message, "content": parts}
    return message


def merge(
    saved: Mapping[str, Any],
    request: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    partials: Mapping[str, str] | None = None,
    model: str | None = None,
    mustache: bool = False,
    substitute_runtime: bool = True,
) -> dict[str, Any]:
    """The request to forward (D.2.3): saved messages then runtime ones, saved parameters as
    defaults under the runtime ones, tools concatenated, the prompt fields gone. ``model``
    (the version's column) is used when neither body names one. Raises :class:`PromptError`
    with every bad input, one per line."""
    partials = partials or {}
    errors: list[TemplateError] = []
    saved_messages = saved.get("messages")
    runtime_messages = request.get("messages")
    if runtime_messages is not None and not isinstance(runtime_messages, list):
        raise PromptError("'messages' must be an array")
    messages = [
        _message(m, inputs, partials, mustache, errors)
        for m in (saved_messages if isinstance(saved_messages, list) else [])
    ]
    for message in runtime_messages or ():
        messages.append(
            _message(message, inputs, {}, mustache, errors) if substitute_runtime else message
        )
    body: dict[str, Any] = {**saved}
    body.update((k, v) for k, v in request.items() if k not in PROMPT_FIELDS)
    body["messages"] = messages
    response_format = request.get("response_format")
    if response_format is None:
        response_format = saved.get("response_format")
    if response_format is None:
        body.pop("response_format", None)
    else:
        body["response_format"], problems = substitute_json(response_format, inputs)
        errors.extend(problems)
    tools = _array(saved.get("tools"), "tools") + _array(request.get("tools"), "tools")
    if tools:
        body["tools"], problems = substitute_json(tools, inputs)
        errors.extend(problems)
    else:
        body.pop("tools", None)
    if not body.get("model") and model:
        body["model"] = model
    if errors:
        unique = list(dict.fromkeys(error.message for error in errors))
        raise PromptError("\n".join(unique))
    return body


def _array(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PromptError(f"'{name}' must be an array")
    return value
