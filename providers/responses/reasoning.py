"""The round trip between Responses ``reasoning`` items and the unified format's thinking.

A provider behind the chat translation (Anthropic first of all) signs its thinking and wants
it back, unchanged, in the next turn. The unified chat format carries that as an assistant
message's ``reasoning_content`` (text) and ``thinking_blocks`` (see :mod:`providers.adapter`);
a Responses client can only hand back what the API gives it: ``reasoning`` output items with
a ``summary`` and an opaque ``encrypted_content``. The encoding, one reasoning item per block:

* ``{"type": "thinking", "thinking": T, "signature": S}`` ⇄ ``{"type": "reasoning",
  "summary": [{"type": "summary_text", "text": T}], "encrypted_content": S}`` (``summary`` is
  ``[]`` when ``T`` is empty, as for a provider that omits its thinking but still signs it);
* ``{"type": "redacted_thinking", "data": D}`` ⇄ ``{"type": "reasoning", "summary": [],
  "encrypted_content": "redacted_thinking:" + D}``. Signatures and redacted data are base64,
  which has no ``:``, so the prefix cannot be mistaken for a signature;
* reasoning text without a block (providers that stream ``reasoning_content`` but sign
  nothing) ⇄ a reasoning item with a summary and no ``encrypted_content``; sent back, it is
  ``reasoning_content`` only.

``encrypted_content`` is returned whether or not the request listed
``reasoning.encrypted_content`` in ``include``: translated responses are never stored, so
the client's copy is the only one, and without it a thinking model's tool-use turn cannot
continue.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import TranslationError

__all__ = ["REDACTED_PREFIX", "encrypted_content", "reasoning_item", "thinking_block"]

JSONObject = dict[str, Any]

REDACTED_PREFIX = "redacted_thinking:"


def encrypted_content(block: JSONObject) -> tuple[str, str | None]:
    """A thinking block → (its thinking text, the ``encrypted_content`` that carries it)."""
    if block.get("type") == "redacted_thinking":
        data = block.get("data")
        return "", REDACTED_PREFIX + data if isinstance(data, str) else None
    text = block.get("thinking")
    signature = block.get("signature")
    return (
        text if isinstance(text, str) else "",
        signature if isinstance(signature, str) and signature else None,
    )


def reasoning_item(item_id: str, text: str, encrypted: str | None) -> JSONObject:
    """A finished ``reasoning`` output item (the same shape streamed and whole)."""
    item: JSONObject = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def thinking_block(text: str, encrypted: str, *, param: str) -> JSONObject:
    """A reasoning item's text and ``encrypted_content`` → the thinking block to send back."""
    if not isinstance(encrypted, str):
        raise TranslationError("`encrypted_content` must be a string.", param=param)
    if encrypted.startswith(REDACTED_PREFIX):
        return {"type": "redacted_thinking", "data": encrypted[len(REDACTED_PREFIX) :]}
    return {"type": "thinking", "thinking": text, "signature": encrypted}
