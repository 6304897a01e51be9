"""A ``chat.completion`` → the ``Response`` object a ``/v1/responses`` client expects.

Output items, in the order the provider produced them within one chat message: its
reasoning (one ``reasoning`` item per thinking block, :mod:`.reasoning`), its text (one
``message`` item), then its tool calls (one ``function_call`` item each). ``finish_reason``
``length`` and ``content_filter`` make the response ``incomplete``, as OpenAI reports a
response cut by ``max_output_tokens`` or by its filter.
"""

from __future__ import annotations

import time
from typing import Any

from providers.responses.envelope import (
    item_id,
    new_response_id,
    response_object,
    responses_usage,
)
from providers.responses.reasoning import encrypted_content, reasoning_item

__all__ = ["chat_to_response", "incomplete_reason", "output_text_part"]

JSONObject = dict[str, Any]

_CITATION_FIELDS = ("url", "title", "start_index", "end_index")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def incomplete_reason(finish_reason: Any) -> str | None:
    """The ``incomplete_details.reason`` for a chat ``finish_reason`` (None: completed)."""
    return _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None


def output_text_part(text: str, annotations: list[JSONObject] | None = None) -> JSONObject:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def chat_to_response(
    completion: JSONObject,
    request: JSONObject,
    *,
    response_id: str | None = None,
    completed_at: int | None = None,
) -> JSONObject:
    """The Response for ``completion``, answering the Responses ``request`` it came from.

    ``request`` is the original ``/v1/responses`` body (its parameters are echoed);
    ``completed_at`` defaults to now.
    """
    rid = response_id or new_response_id()
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") if isinstance(choice, dict) else None
    message = message if isinstance(message, dict) else {}
    reason = incomplete_reason(choice.get("finish_reason") if isinstance(choice, dict) else None)

    output: list[JSONObject] = []
    for text, encrypted in _reasoning(message):
        output.append(reasoning_item(item_id("rs", rid, len(output)), text, encrypted))
    content = _message_content(message)
    if content:
        output.append(
            {
                "id": item_id("msg", rid, len(output)),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": content,
            }
        )
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            {
                "id": item_id("fc", rid, len(output)),
                "type": "function_call",
                "call_id": call.get("id") or item_id("call", rid, len(output)),
                "name": function.get("name") or "",
                "arguments": function.get("arguments") or "",
                "status": "completed",
            }
        )
    if reason is not None and output and "status" in output[-1]:
        output[-1]["status"] = "incomplete"

    created = completion.get("created")
    return response_object(
        request,
        response_id=rid,
        created_at=created if isinstance(created, int) else int(time.time()),
        model=completion.get("model") if isinstance(completion.get("model"), str) else None,
        status="incomplete" if reason is not None else "completed",
        output=output,
        usage=responses_usage(completion.get("usage")),
        incomplete_reason=reason,
        completed_at=completed_at if completed_at is not None else int(time.time()),
    )


def _reasoning(message: JSONObject) -> list[tuple[str, str | None]]:
    """(text, encrypted_content) per reasoning item: one per thinking block, or one for
    reasoning text that came without blocks."""
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        return [encrypted_content(block) for block in blocks if isinstance(block, dict)]
    text = message.get("reasoning_content")
    return [(text, None)] if isinstance(text, str) and text else []


def _message_content(message: JSONObject) -> list[JSONObject]:
    parts: list[JSONObject] = []
    content = message.get("content")
    if isinstance(content, list):
        # Some adapters return text parts; they are one text to a Responses client.
        content = "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    if isinstance(content, str) and content:
        parts.append(output_text_part(content, _annotations(message.get("annotations"))))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    return parts


def _annotations(value: Any) -> list[JSONObject]:
    """Chat ``url_citation`` annotations → Responses ones (the fields move up a level)."""
    annotations = []
    for annotation in value if isinstance(value, list) else []:
        if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
            continue
        citation = annotation.get("url_citation")
        if isinstance(citation, dict):
            fields = {key: citation.get(key) for key in _CITATION_FIELDS}
            annotations.append({"type": "url_citation", **fields})
    return annotations
