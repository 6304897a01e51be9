"""OpenAI ``messages`` → Gemini ``systemInstruction`` + ``contents``.

How the two formats cut a conversation differently:

* system and developer messages are hoisted, in order, into the one ``systemInstruction``;
* the assistant is the ``model`` role; a tool result is a ``functionResponse`` part of a
  ``user`` turn, named after the function it answers (Gemini matches calls and results by name
  and order, so the name comes from the assistant tool call whose id the tool message gives);
  consecutive turns of one role merge into one content, so parallel results travel together;
* media are parts: a ``data:`` URL becomes ``inlineData`` (images, audio, PDFs and other
  files); a Google Cloud Storage or Gemini Files API URI becomes ``fileData``. Any other http(s)
  URL must have been fetched and inlined by the gateway before this pure translation
  (:func:`gateway.translate.inline_image_urls`); one that was not is a :class:`TranslationError`.
* Gemini's thought signatures (opaque, on the part they belong to) travel in the unified
  format's ``thinking_blocks`` (:mod:`providers.adapter`) and are put back where Gemini puts
  them: on the turn's function calls in order (the first signature on the first call), or on
  its last part when it called nothing. The thought text (``reasoning_content``) is not sent.
"""

from __future__ import annotations

import json
import mimetypes
import urllib.parse
from typing import Any

from providers.adapter import TranslationError
from providers.chat_parts import (
    DataURL,
    add_turn,
    chat_messages,
    function_call,
    image_url,
    inline_file,
    part_text,
    plain_conversation,
    refuse_assistant_extras,
    text_parts,
    tool_call_id,
    tool_calls,
)

JSONObject = dict[str, Any]

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
"""The image types Gemini reads (its documented list)."""
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mp3"}
FILES_API_PREFIX = "https://generativelanguage.googleapis.com/"
"""Gemini Files API URIs (``…/v1beta/files/abc``) are read by Gemini itself, with the key."""

_SYSTEM_ROLES = frozenset({"system", "developer"})


def is_file_uri(url: str) -> bool:
    """Whether Gemini reads ``url`` itself (``fileData``): a ``gs://`` object or a Files API
    URI. Other URLs are fetched by the gateway and sent inline."""
    return url.startswith("gs://") or (
        url.startswith(FILES_API_PREFIX) and "/files/" in urllib.parse.urlsplit(url).path
    )


def data_url(url: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a base64 ``data:`` URL, or None for anything else."""
    parsed = DataURL.parse(url, default_type="application/octet-stream")
    if parsed is None or not parsed.is_base64:
        return None
    return parsed.media_type, parsed.data


def _file_data(url: str) -> JSONObject:
    file_data: JSONObject = {"fileUri": url}
    guessed, _ = mimetypes.guess_type(urllib.parse.urlsplit(url).path)
    if guessed:
        file_data["mimeType"] = guessed
    return {"fileData": file_data}


def _image(part: JSONObject, param: str) -> JSONObject:
    """An ``image_url`` part. ``detail`` is a resolution hint with no per-part counterpart
    (Gemini sizes images itself) and is accepted silently, as the Anthropic adapter does."""
    url = image_url(part, param)
    where = f"{param}.image_url.url"
    inline = data_url(url)
    if inline is not None:
        media_type, data = inline
        if media_type not in IMAGE_TYPES:
            raise TranslationError(
                f"Gemini accepts images of type {', '.join(sorted(IMAGE_TYPES))}; got "
                f"'{media_type}'.",
                param=where,
            )
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if is_file_uri(url):
        return _file_data(url)
    if url.startswith(("https://", "http://")):
        raise TranslationError(
            "Gemini cannot read image URLs; the gateway fetches them before translating, "
            "and this one was not fetched.",
            param=where,
        )
    raise TranslationError(
        "An image URL must be an http(s) URL, a gs:// URI or a base64 data: URL.", param=where
    )


def _audio(part: JSONObject, param: str) -> JSONObject:
    audio = part.get("input_audio")
    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
        raise TranslationError(
            "An input_audio part needs `input_audio.data`.", param=f"{param}.input_audio.data"
        )
    media_type = _AUDIO_FORMATS.get(str(audio.get("format")))
    if media_type is None:
        raise TranslationError(
            "input_audio.format must be 'wav' or 'mp3'.", param=f"{param}.input_audio.format"
        )
    return {"inlineData": {"mimeType": media_type, "data": audio["data"]}}


def _file(part: JSONObject, param: str) -> JSONObject:
    """A ``file`` part with inline ``file_data`` (a data URL; bare base64 reads as a PDF, as
    OpenAI reads it). ``file_id`` names a file in OpenAI's store, which Gemini cannot read."""
    data, _ = inline_file(part, param, api="Gemini")
    inline = data_url(data) if data.startswith("data:") else ("application/pdf", data)
    if inline is None:
        raise TranslationError(
            "file_data must be a base64 data: URL.", param=f"{param}.file.file_data"
        )
    return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}


def _user_part(part: Any, param: str) -> JSONObject:
    if not isinstance(part, dict):
        raise TranslationError("A content part must be an object.", param=param)
    kind = part.get("type")
    if kind == "text":
        return {"text": part_text(part, param)}
    if kind == "image_url":
        return _image(part, param)
    if kind == "input_audio":
        return _audio(part, param)
    if kind == "file":
        return _file(part, param)
    raise TranslationError(
        f"Gemini cannot express a content part of type '{kind}'.", param=f"{param}.type"
    )


def _text_parts(content: Any, param: str, *, refusal_ok: bool = False) -> list[JSONObject]:
    """Content that may only be text (system, developer and assistant messages); an
    assistant's ``refusal`` parts are what it said, so they go back as text."""
    return [
        {"text": text} for _, _, text in text_parts(content, param, refusal_ok=refusal_ok) if text
    ]


def _function_call(call: Any, param: str, names: dict[str, str]) -> JSONObject:
    call_id, name, args = function_call(
        call,
        param,
        api="Gemini",
        stores="Gemini stores a function call's arguments as an object",
        empty_is_object=True,
    )
    names[call_id] = name
    return {"functionCall": {"name": name, "args": args}}


def _signatures(value: Any, param: str) -> list[str]:
    """The thought signatures a turn's ``thinking_blocks`` carry."""
    if not isinstance(value, list):
        raise TranslationError("thinking_blocks must be a list.", param=param)
    signatures: list[str] = []
    for index, block in enumerate(value):
        signature = block.get("signature") if isinstance(block, dict) else None
        if not isinstance(block, dict) or block.get("type") != "thinking":
            raise TranslationError(
                "Gemini takes back only thinking blocks (type 'thinking') with the "
                "signature it returned.",
                param=f"{param}[{index}]",
            )
        if not isinstance(signature, str):
            raise TranslationError(
                "A thinking block needs its string `signature`.", param=f"{param}[{index}]"
            )
        if signature:
            signatures.append(signature)
    return signatures


def _assistant_parts(message: JSONObject, param: str, names: dict[str, str]) -> list[JSONObject]:
    refuse_assistant_extras(message, param, api="Gemini")
    content = message.get("content")
    parts: list[JSONObject] = []
    if content is not None:
        parts += _text_parts(content, f"{param}.content", refusal_ok=True)
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"text": message["refusal"]})
    call_parts = [
        _function_call(call, f"{param}.tool_calls[{index}]", names)
        for index, call in enumerate(tool_calls(message, param))
    ]
    parts += call_parts
    if message.get("thinking_blocks") is not None:
        signatures = _signatures(message["thinking_blocks"], f"{param}.thinking_blocks")
        slots = call_parts or parts[-1:]
        for part, signature in zip(slots, signatures, strict=False):
            part["thoughtSignature"] = signature
    return parts


def _function_response(message: JSONObject, param: str, names: dict[str, str]) -> JSONObject:
    """A tool message → ``functionResponse``. Gemini wants an object: a tool result that is the
    JSON text of an object is sent as that object, any other result as ``{"result": text}``."""
    call_id = tool_call_id(message, param)
    name = names.get(call_id)
    if name is None:
        raise TranslationError(
            f"No earlier assistant tool call has the id '{call_id}': Gemini needs the name of "
            "the function a result answers.",
            param=f"{param}.tool_call_id",
        )
    content = message.get("content")
    text = (
        content
        if isinstance(content, str)
        else "".join(p["text"] for p in _text_parts(content, f"{param}.content"))
    )
    try:
        parsed = json.loads(text) if text.lstrip().startswith("{") else None
    except json.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"result": text}
    return {"functionResponse": {"name": name, "response": response}}


def _plain_conversation(messages: Any) -> tuple[JSONObject | None, list[JSONObject]] | None:
    """:func:`split_conversation` of the usual conversation, without its walk (None: walk it,
    also when it has no turn: the walk says why)."""
    plain = plain_conversation(messages, assistant="model", blocks="parts", keep_empty_user=True)
    if plain is None or not plain[1]:
        return None
    system, contents = plain
    return ({"parts": system} if system else None), contents


def split_conversation(messages: Any) -> tuple[JSONObject | None, list[JSONObject]]:
    """``(systemInstruction or None, contents)`` for an OpenAI ``messages`` list."""
    plain = _plain_conversation(messages)
    return plain if plain is not None else _walk_conversation(messages)


def _walk_conversation(messages: Any) -> tuple[JSONObject | None, list[JSONObject]]:
    """:func:`split_conversation` of any ``messages``: each message checked and translated."""
    system: list[JSONObject] = []
    contents: list[JSONObject] = []
    names: dict[str, str] = {}
    for param, message in chat_messages(messages, api="Gemini"):
        role = message.get("role")
        if isinstance(role, str) and role in _SYSTEM_ROLES:
            system += _text_parts(message.get("content"), f"{param}.content")
            continue
        if role == "user":
            content = message.get("content")
            if isinstance(content, str):
                parts = [{"text": content}]
            elif isinstance(content, list):
                parts = [_user_part(p, f"{param}.content[{i}]") for i, p in enumerate(content)]
            else:
                raise TranslationError(
                    "Message content must be a string or a list of parts.",
                    param=f"{param}.content",
                )
            turn = "user"
        elif role == "assistant":
            parts, turn = _assistant_parts(message, param, names), "model"
        elif role == "tool":
            parts, turn = [_function_response(message, param, names)], "user"
        else:
            raise TranslationError(f"Unknown message role '{role}'.", param=f"{param}.role")
        if parts:  # a turn that said nothing carries nothing to send
            add_turn(contents, turn, parts, "parts")
    if not contents:
        raise TranslationError(
            "Gemini needs at least one user or assistant message besides the system prompt.",
            param="messages",
        )
    instruction = {"parts": system} if system else None
    return instruction, contents
