"""Checks of a chat request's messages and parts that every native translation makes alike.

The Anthropic, Gemini and Bedrock Converse translations (:mod:`providers.anthropic.content`,
:mod:`providers.anthropic.conversation`, :mod:`providers.gemini.contents`,
:mod:`providers.bedrock.converse`) each walk OpenAI ``messages`` and read the same things out
of them: the list and its messages, text-only content, an ``image_url``'s URL, a ``file``
part's inline data, ``data:`` URLs, an assistant's tool calls and their arguments, a tool
message's ``tool_call_id``. They are read here once, so the three refuse the same input with
the same message (the target's name a parameter); what each target builds from them stays in
its adapter.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

from providers.adapter import TranslationError

JSONObject = dict[str, Any]

_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)

_MEDIA_ALIASES = {"image/jpg": "image/jpeg"}
"""Spellings browsers and libraries produce that mean an accepted type."""


class DataURL:
    """A parsed ``data:`` URL: its media type and its payload, still base64 when it was."""

    __slots__ = ("data", "is_base64", "media_type")

    def __init__(self, media_type: str, data: str, *, is_base64: bool) -> None:
        self.media_type = media_type
        self.data = data
        self.is_base64 = is_base64

    @classmethod
    def parse(cls, url: str, *, default_type: str = "text/plain") -> DataURL | None:
        """The data URL ``url``, or None when it is not one (RFC 2397). ``default_type``
        stands for a missing media type (RFC 2397 says ``text/plain``)."""
        match = _DATA_URL.fullmatch(url.strip()) if url.startswith("data:") else None
        if match is None:
            return None
        media_type = match["type"].strip().lower() or default_type
        params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
        return cls(
            _MEDIA_ALIASES.get(media_type, media_type),
            match["data"],
            is_base64="base64" in params,
        )

    def text(self, param: str) -> str:
        """The payload decoded to text (UTF-8), for a ``text/plain`` document."""
        if not self.is_base64:
            return urllib.parse.unquote(self.data)
        try:
            return base64.b64decode(self.data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TranslationError(
                "The text file's data is not valid base64-encoded UTF-8.", param=param
            ) from None


def chat_messages(messages: Any, *, api: str) -> Iterator[tuple[str, JSONObject]]:
    """``(param, message)`` for each message of a non-empty ``messages`` list, each checked
    as it comes (an object without a participant ``name``, which ``api`` cannot carry)."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("`messages` must be a non-empty list.", param="messages")
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise TranslationError("A message must be an object.", param=param)
        if message.get("name") is not None:
            raise TranslationError(
                f"{api} has no participant names; remove the message's `name`.",
                param=f"{param}.name",
            )
        yield param, message


def add_turn(turns: list[JSONObject], role: str, blocks: list[JSONObject], key: str) -> None:
    """Append a turn, or extend the last one when it has the same role: the native formats
    need user and assistant turns to alternate (tool results join the user turn)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(blocks)
    else:
        turns.append({"role": role, key: blocks})


def part_text(part: JSONObject, param: str) -> str:
    """A ``text`` part's text."""
    text = part.get("text")
    if not isinstance(text, str):
        raise TranslationError("A text content part needs a string `text`.", param=f"{param}.text")
    return text


def text_parts(
    content: Any, param: str, *, refusal_ok: bool = False
) -> Iterator[tuple[str, JSONObject | None, str]]:
    """``(param, part, text)`` for content that may only be text (system, developer, tool
    and assistant messages), checked one part at a time as it is taken. ``part`` is the text
    part (for its ``cache_control``), None for string content and refusals. An assistant's
    ``refusal`` parts (``refusal_ok``) are what it said, so they are text too."""
    if isinstance(content, str):
        yield param, None, content
        return
    if not isinstance(content, list):
        raise TranslationError("Message content must be a string or a list of parts.", param=param)
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part, dict):
            yield where, part, part_text(part, where)
        elif (
            kind == "refusal"
            and refusal_ok
            and isinstance(part, dict)
            and isinstance(part.get("refusal"), str)
        ):
            yield where, None, part["refusal"]
        else:
            raise TranslationError(
                f"Only text content parts are allowed here; got '{kind}'.", param=where
            )


def image_url(part: JSONObject, param: str) -> str:
    """An ``image_url`` part's URL (``image_url.url``, or ``image_url`` as a bare string)."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise TranslationError(
            "An image_url content part needs `image_url.url`.", param=f"{param}.image_url.url"
        )
    return url


def inline_file(part: JSONObject, param: str, *, api: str) -> tuple[str, Any]:
    """``(file_data, filename)`` of a ``file`` part. ``file_id`` names a file in OpenAI's
    own store, which ``api`` cannot read: the file must come inline."""
    file = part.get("file")
    if not isinstance(file, dict):
        raise TranslationError("A file content part needs a `file` object.", param=f"{param}.file")
    if file.get("file_id") is not None:
        raise TranslationError(
            f"{api} cannot read OpenAI uploaded files (`file_id`); send the file inline as "
            "`file_data`.",
            param=f"{param}.file.file_id",
        )
    data = file.get("file_data")
    if not isinstance(data, str):
        raise TranslationError(
            "A file content part needs `file.file_data`.", param=f"{param}.file.file_data"
        )
    return data, file.get("filename")


def refuse_assistant_extras(
    message: JSONObject, param: str, *, api: str, explained: bool = True
) -> None:
    """Refuse an assistant message's legacy ``function_call`` and its ``audio``, which no
    native format can take back (``explained``: the message says what each one is)."""
    for key, why in (
        ("function_call", "legacy function calling; send `tool_calls`"),
        ("audio", "audio output"),
    ):
        if message.get(key) is not None:
            because = f" ({why})" if explained else ""
            raise TranslationError(
                f"{api} cannot express an assistant message's `{key}`{because}.",
                param=f"{param}.{key}",
            )


def tool_calls(message: JSONObject, param: str) -> list[Any]:
    """An assistant message's ``tool_calls`` (empty when it has none)."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise TranslationError("tool_calls must be a list.", param=f"{param}.tool_calls")
    return calls


def function_call(
    call: Any, param: str, *, api: str, stores: str, empty_is_object: bool = False
) -> tuple[str, str, JSONObject]:
    """``(id, name, arguments)`` of one assistant tool call, its arguments the object their
    JSON text holds. ``stores`` says why the target needs an object ("Gemini stores a function
    call's arguments as an object"); ``empty_is_object``: missing or empty arguments read as
    ``{}``."""
    if not isinstance(call, dict):
        raise TranslationError("A tool call must be an object.", param=param)
    if call.get("type", "function") != "function":
        raise TranslationError(
            f"{api} cannot express a tool call of type '{call.get('type')}'.",
            param=f"{param}.type",
        )
    call_id, function = call.get("id"), call.get("function")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("A tool call needs its `id`.", param=f"{param}.id")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TranslationError("A tool call needs `function.name`.", param=f"{param}.function.name")
    arguments = function.get("arguments")
    parsed: Any
    try:
        if empty_is_object and not (isinstance(arguments, str) and arguments):
            parsed = {}
        else:
            parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise TranslationError(
            f"Tool call arguments must be the JSON text of an object: {stores}.",
            param=f"{param}.function.arguments",
        )
    return call_id, function["name"], parsed


def tool_call_id(message: JSONObject, param: str) -> str:
    """The ``tool_call_id`` a tool message answers."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError(
            "A tool message needs the `tool_call_id` it answers.", param=f"{param}.tool_call_id"
        )
    return call_id


def plain_conversation(
    messages: Any, *, assistant: str, blocks: str, keep_empty_user: bool
) -> tuple[list[JSONObject], list[JSONObject]] | None:
    """``(system text blocks, turns)`` of the usual conversation, made without the checking
    walk: every message exactly ``{"role", "content"}``, the role system, developer, user or
    assistant and the content a string. None for anything else (the target's walk then
    translates it, or refuses it with its message).

    Gemini and Bedrock Converse take the same shape — alternating turns of ``{"text": …}``
    blocks, consecutive messages of one role merged — under their own names: ``assistant``
    is the model's role (``model``, ``assistant``), ``blocks`` the key of a turn's list
    (``parts``, ``content``). An empty system or assistant text is left out; an empty user
    text too unless ``keep_empty_user`` (Converse refuses an empty text block, Gemini does
    not). The walk's checks, parameter names and part dispatch were half or more of a plain
    request's translation; the tests compare this with each walk over every short
    conversation.
    """
    if type(messages) is not list or not messages:
        return None
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for message in messages:
        if type(message) is not dict or len(message) != 2:
            return None
        content = message.get("content")
        if type(content) is not str:
            return None
        role = message.get("role")
        if role == "user":
            turn = "user"
            if not content and not keep_empty_user:
                continue
        elif role == "assistant":
            if not content:
                continue
            turn = assistant
        elif role == "system" or role == "developer":
            if content:
                system.append({"text": content})
            continue
        else:
            return None
        if turns and turns[-1]["role"] == turn:
            turns[-1][blocks].append({"text": content})
        else:
            turns.append({"role": turn, blocks: [{"text": content}]})
    return system, turns
