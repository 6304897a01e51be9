"""The deterministic "model": what it answers and how that is cut and counted.

Replies echo the last user text so tests can check which request produced which answer.
Streams are cut at word boundaries in a way that concatenates back to exactly the same
string, and "tokens" are whitespace-separated words, so usage is predictable by hand.
"""

from __future__ import annotations

import re
from typing import Any

REPLY_PREFIX = "Hello from the emulator. You said: "


def reply_to(user_text: str) -> str:
    return f"{REPLY_PREFIX}{user_text}"


def split_words(text: str) -> list[str]:
    """Pieces of ``text``, one word each with the whitespace before it; they join to ``text``."""
    return re.findall(r"\s*\S+|\s+\Z", text)


def count_words(text: str) -> int:
    return len(text.split())


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the ``text`` of each content part."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part["text"] for part in content if isinstance(part, dict) and "text" in part]
        return " ".join(text for text in texts if isinstance(text, str))
    return ""
