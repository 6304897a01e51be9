"""OpenAI content parts → Anthropic content blocks (text, images, documents).

OpenAI carries media as URLs (``image_url``, ``file.file_data`` as ``data:`` URLs); Anthropic as
typed *sources* (``base64`` with a media type, ``url``, ``text``). Each function here maps one
part, naming the part's place in the request (``param``) when it cannot be expressed.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import TranslationError
from providers.chat_parts import DataURL, image_url, inline_file, part_text, text_parts

JSONObject = dict[str, Any]

_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The only image types the Messages API accepts (``Base64ImageSourceParam.media_type``)."""

_DOCUMENT_KEYS = ("type", "source", "title", "context", "citations", "cache_control")
"""A ``document`` part (the gateway's PTB schema, §5.6) is already Anthropic-shaped."""


def with_cache_control(block: JSONObject, part: JSONObject, param: str) -> JSONObject:
    """``block`` with the part's ``cache_control`` (Anthropic's own field, passed through)."""
    cache_control = part.get("cache_control")
    if cache_control is None:
        return block
    if not isinstance(cache_control, dict):
        raise TranslationError(
            'cache_control must be an object such as {"type": "ephemeral"}.',
            param=f"{param}.cache_control",
        )
    block["cache_control"] = cache_control
    return block


def text_block(part: JSONObject, param: str) -> JSONObject:
    return with_cache_control({"type": "text", "text": part_text(part, param)}, part, param)


def image_block(part: JSONObject, param: str) -> JSONObject:
    """An ``image_url`` part: a ``data:`` URL becomes a base64 source, http(s) a url source.

    ``detail`` has no Anthropic counterpart and is accepted silently: it is a resolution hint,
    and Anthropic always sizes images itself (the gateway's own docs send ``detail: "low"``
    alongside ``cache_control`` to Anthropic models).
    """
    url = image_url(part, param)
    data_url = DataURL.parse(url)
    if data_url is not None:
        if data_url.media_type not in _IMAGE_MEDIA_TYPES or not data_url.is_base64:
            raise TranslationError(
                f"Anthropic accepts base64 images of type {', '.join(sorted(_IMAGE_MEDIA_TYPES))}; "
                f"got a data URL of type '{data_url.media_type}'"
                f"{'' if data_url.is_base64 else ' that is not base64'}.",
                param=f"{param}.image_url.url",
            )
        source: JSONObject = {
            "type": "base64",
            "media_type": data_url.media_type,
            "data": data_url.data,
        }
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise TranslationError(
            "An image URL must be an http(s) URL or a base64 data: URL.",
            param=f"{param}.image_url.url",
        )
    return with_cache_control({"type": "image", "source": source}, part, param)


def file_block(part: JSONObject, param: str) -> JSONObject:
    """A ``file`` part with inline ``file_data`` → a ``document`` block.

    PDF (``data:application/pdf;base64,…``, or bare base64 as some clients send it, which
    OpenAI reads as a PDF) becomes a base64 PDF source; ``text/plain`` becomes a text source.
    ``file_id`` names a file in *OpenAI's* file store, which Anthropic cannot read.
    """
    data, filename = inline_file(part, param, api="Anthropic")
    data_url = DataURL.parse(data)
    if data_url is None:  # bare base64: PDF unless the name says plain text
        is_text = isinstance(filename, str) and filename.lower().endswith(".txt")
        data_url = DataURL("text/plain" if is_text else "application/pdf", data, is_base64=True)
    if data_url.media_type == "application/pdf" and data_url.is_base64:
        source: JSONObject = {
            "type": "base64",
            "media_type": "application/pdf",
            "data": data_url.data,
        }
    elif data_url.media_type == "text/plain":
        source = {
            "type": "text",
            "media_type": "text/plain",
            "data": data_url.text(f"{param}.file.file_data"),
        }
    else:
        raise TranslationError(
            "Anthropic accepts PDF (base64) and plain-text documents; got a file of type "
            f"'{data_url.media_type}'.",
            param=f"{param}.file.file_data",
        )
    block: JSONObject = {"type": "document", "source": source}
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return with_cache_control(block, part, param)


def document_block(part: JSONObject, param: str) -> JSONObject:
    """A ``document`` part (Anthropic's own block, accepted by the gateway's chat schema)."""
    if not isinstance(part.get("source"), dict):
        raise TranslationError(
            "A document content part needs a `source` object.", param=f"{param}.source"
        )
    extra = sorted(set(part) - set(_DOCUMENT_KEYS))
    if extra:
        raise TranslationError(
            f"Unknown field `{extra[0]}` on a document content part.", param=f"{param}.{extra[0]}"
        )
    return {key: part[key] for key in _DOCUMENT_KEYS if part.get(key) is not None}


def user_block(part: Any, param: str) -> JSONObject:
    """One part of a user message's content."""
    if not isinstance(part, dict):
        raise TranslationError("A content part must be an object.", param=param)
    kind = part.get("type")
    if kind == "text":
        return text_block(part, param)
    if kind == "image_url":
        return image_block(part, param)
    if kind == "file":
        return file_block(part, param)
    if kind == "document":
        return document_block(part, param)
    if kind == "input_audio":
        raise TranslationError(
            "Anthropic models cannot take audio input (`input_audio`).", param=f"{param}.type"
        )
    raise TranslationError(
        f"Anthropic cannot express a content part of type '{kind}'.", param=f"{param}.type"
    )


def text_blocks(content: Any, param: str, *, refusal_ok: bool = False) -> list[JSONObject]:
    """Content that may only be text (system, developer, tool and assistant messages).

    An assistant's ``refusal`` parts are what it said, so they are sent back as text.
    """
    return [
        with_cache_control({"type": "text", "text": text}, part or {}, where)
        for where, part, text in text_parts(content, param, refusal_ok=refusal_ok)
    ]
