"""PostHog's views of a prompt's content (prompts-and-peer-apis.md B.1, B.4): find/replace
``edits`` that publish a new version, the list's ``prompt_preview``, ``prompt_size_bytes`` and
``outline``. Pure functions over the stored JSON value.

Edits follow the upstream rules: each ``old`` must occur exactly once in the text being
edited, edits apply in order, a JSON prompt is edited as its 2-space-indented JSON text and
parsed back, and the result obeys the 1,000,000-byte limit. A failed edit names its index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

MAX_PROMPT_BYTES = 1_000_000
PREVIEW_CHARS = 160
"""A preview is this many characters, then ``...`` (163 at most)."""
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


class EditError(Exception):
    """An edit that cannot apply: PostHog's 400 ``{"detail": message, "edit_index": index}``."""

    def __init__(self, message: str, edit_index: int) -> None:
        super().__init__(message)
        self.message = message
        self.edit_index = edit_index


def size_bytes(prompt: Any) -> int:
    """PostHog's measure: compact JSON, non-ASCII as UTF-8."""
    return len(json.dumps(prompt, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def apply_edits(prompt: Any, edits: Sequence[tuple[str, str]]) -> Any:
    """``prompt`` with each ``(old, new)`` replaced in turn; :class:`EditError` otherwise."""
    is_text = isinstance(prompt, str)
    text = prompt if is_text else json.dumps(prompt, indent=2, ensure_ascii=False)
    for index, (old, new) in enumerate(edits):
        count = text.count(old)
        if count == 0:
            raise EditError("Text to replace was not found in the prompt.", index)
        if count > 1:
            raise EditError(
                f"Text to replace matches {count} times — provide more context to make it unique.",
                index,
            )
        text = text.replace(old, new, 1)
    result: Any = text
    if not is_text:
        try:
            result = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EditError(f"Edits produced invalid JSON: {exc}", len(edits) - 1) from None
    if size_bytes(result) > MAX_PROMPT_BYTES:
        raise EditError(
            f"Resulting prompt exceeds the {MAX_PROMPT_BYTES} byte size limit.", len(edits) - 1
        )
    return result


def as_text(prompt: Any) -> str:
    """The prompt as text: a string as it is, anything else as compact JSON."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, separators=(",", ":"), ensure_ascii=False)


def preview(prompt: Any) -> str:
    """The first :data:`PREVIEW_CHARS` characters of the text, ``...`` when cut."""
    text = as_text(prompt)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


def outline(prompt: Any) -> list[dict[str, Any]]:
    """The markdown headings of a text prompt, ``[{"level", "text"}]`` in order (none inside
    fenced code blocks); a JSON prompt has none."""
    if not isinstance(prompt, str):
        return []
    found: list[dict[str, Any]] = []
    fenced = False
    for line in prompt.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match is not None:
            found.append({"level": len(match.group(1)), "text": match.group(2)})
    return found
