"""An OpenAI chat request (the unified format) → a Bedrock Converse request body.

Converse is Bedrock's one request shape for every model family (Claude, Llama, Mistral,
Nova…); the model id is in the path, not the body. As with every adapter, each top-level
field is translated, accepted because it asks for OpenAI's default (or is a hint with no
effect on the answer), or refused with a :class:`TranslationError` naming it.

Mappings worth knowing (README, "AWS Bedrock"):

* system and developer messages → ``system``; tool messages → ``toolResult`` blocks in a user
  turn; consecutive turns of one role are merged (Converse needs them to alternate);
* images as bytes only (``image.source.bytes``, base64 in JSON): a ``data:`` URL is decoded
  here, an http(s) URL must have been fetched before (the gateway's guarded fetcher,
  :func:`gateway.translate.inline_image_urls`); PDFs and text files → ``document`` blocks;
* ``max_tokens`` / ``max_completion_tokens``, ``temperature``, ``top_p``, ``stop`` →
  ``inferenceConfig``; ``tools`` / ``tool_choice`` → ``toolConfig`` (``required`` → ``any``;
  ``none`` drops the tools when the conversation holds no tool blocks: Converse has no
  "none");
* ``reasoning_effort`` / ``reasoning_options`` on Claude → ``additionalModelRequestFields.
  thinking`` (the Anthropic adapter's budgets), thinking blocks sent back as
  ``reasoningContent`` with their signatures; ``top_k`` on Claude likewise;
* ``response_format: json_schema`` → ``outputConfig.textFormat`` (the schema as JSON text);
* ``cache_control`` on a part, message or tool (the gateway's prompt-caching extension) → a
  ``cachePoint`` block right after it (``ttl: "1h"`` kept);
* ``metadata`` (strings), ``user``, ``safety_identifier`` → ``requestMetadata`` (Bedrock's
  invocation-log labels); ``prompt_cache_key`` is a routing hint with no Converse counterpart
  and is not sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from providers.adapter import TranslationError
from providers.anthropic.request import thinking_budget
from providers.chat_params import (
    boolean,
    chosen_function,
    function_tool,
    integer,
    is_none,
    max_output_tokens,
    neutral,
    reject_inexpressible,
    response_format,
    unknown_tool_choice,
)
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
    tool_call_id,
    tool_calls,
)

JSONObject = dict[str, Any]

API = "Bedrock's Converse API"

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/csv": "csv",
    "text/html": "html",
    "text/markdown": "md",
}
_DOCUMENT_NAME = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")
"""Characters a Converse document name may not hold (alphanumerics, whitespace, hyphens,
parentheses and brackets only)."""

_NEUTRAL_ONLY: dict[str, Callable[[Any], bool]] = {
    "n": neutral(1),
    "presence_penalty": neutral(0, 0.0),
    "frequency_penalty": neutral(0, 0.0),
    "logprobs": neutral(False),
    "top_logprobs": neutral(0),
    "logit_bias": neutral({}),
    "store": neutral(False),
    "modalities": neutral(["text"]),
    "parallel_tool_calls": neutral(True),
    "service_tier": neutral("auto"),
    **dict.fromkeys(
        ("seed", "audio", "prediction", "functions", "function_call", "web_search_options",
         "verbosity", "context_editing"),
        is_none,
    ),
}  # fmt: skip
"""Fields with no Converse counterpart: accepted when absent, null or OpenAI's default (a
null field of any name is accepted: see :func:`chat_to_converse`)."""
_TRANSLATED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "top_k", "stop", "stream", "stream_options", "tools", "tool_choice", "user",
        "safety_identifier", "prompt_cache_key", "reasoning_effort", "reasoning_options",
        "response_format", "metadata", "cache_control",
    }
)  # fmt: skip


_READ_AFTER_MESSAGES = _TRANSLATED - {
    "model", "messages", "stream", "stream_options", "prompt_cache_key",
}  # fmt: skip
"""The fields :func:`chat_to_converse` reads once the messages are made (``stream`` is only
checked): a request with none of them (the usual one) is complete at that point, as every
later step would add nothing."""
_PLAIN_FIELDS = _TRANSLATED - _READ_AFTER_MESSAGES
"""The fields of the usual request (model, messages, and what is accepted and not sent):
one with no others needs neither the check of unknown fields nor anything after the
conversation (:func:`chat_to_converse`'s first branch; every field in it is translated, so
the check would pass, null or not)."""


# --- content ------------------------------------------------------------------------------------


def _cache_point(control: Any, param: str) -> JSONObject:
    if not isinstance(control, dict):
        raise TranslationError(
            'cache_control must be an object such as {"type": "ephemeral"}.', param=param
        )
    point: JSONObject = {"type": "default"}
    if control.get("ttl") in ("5m", "1h"):
        point["ttl"] = control["ttl"]
    return {"cachePoint": point}


def _bytes(data_url: DataURL, param: str) -> str:
    """The base64 text of a data URL's payload (checked: Bedrock decodes it)."""
    if data_url.is_base64:
        try:
            base64.b64decode(data_url.data, validate=True)
        except binascii.Error:
            raise TranslationError(
                "The data URL's payload is not valid base64.", param=param
            ) from None
        return data_url.data
    return base64.b64encode(data_url.text(param).encode()).decode("ascii")


def _image(part: JSONObject, param: str) -> JSONObject:
    url = image_url(part, param)
    where = f"{param}.image_url.url"
    data_url = DataURL.parse(url)
    if data_url is None:
        raise TranslationError(
            f"{API} takes images as bytes: send a base64 data: URL (an http(s) URL is fetched "
            "by the gateway before translation).",
            param=where,
        )
    image_format = _IMAGE_FORMATS.get(data_url.media_type)
    if image_format is None or not data_url.is_base64:
        raise TranslationError(
            f"{API} accepts base64 images of type {', '.join(sorted(_IMAGE_FORMATS))}; got a "
            f"data URL of type '{data_url.media_type}'.",
            param=where,
        )
    return {"image": {"format": image_format, "source": {"bytes": _bytes(data_url, where)}}}


def _document_name(filename: Any, index: int) -> str:
    stem = filename.rsplit(".", 1)[0] if isinstance(filename, str) else ""
    name = " ".join(_DOCUMENT_NAME.sub(" ", stem).split())[:200]
    return name or f"document {index + 1}"


def _document(part: JSONObject, param: str, index: int) -> JSONObject:
    data, filename = inline_file(part, param, api=API)
    where = f"{param}.file.file_data"
    data_url = DataURL.parse(data)
    if data_url is None:  # bare base64: a PDF unless the name says plain text (as OpenAI reads it)
        is_text = isinstance(filename, str) and filename.lower().endswith(".txt")
        data_url = DataURL("text/plain" if is_text else "application/pdf", data, is_base64=True)
    document_format = _DOCUMENT_FORMATS.get(data_url.media_type)
    if document_format is None:
        raise TranslationError(
            f"{API} accepts documents of type {', '.join(sorted(_DOCUMENT_FORMATS))}; got a file "
            f"of type '{data_url.media_type}'.",
            param=where,
        )
    return {
        "document": {
            "format": document_format,
            "name": _document_name(filename, index),
            "source": {"bytes": _bytes(data_url, where)},
        }
    }


def _parts(content: Any, param: str, *, media: bool, refusal_ok: bool = False) -> list[JSONObject]:
    """A message's content as Converse blocks (empty texts left out: Converse refuses them),
    each part's ``cache_control`` as a cache point after it. ``media``: images and files
    allowed (user turns)."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError("Message content must be a string or a list of parts.", param=param)
    blocks: list[JSONObject] = []
    documents = 0
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise TranslationError("A content part must be an object.", param=where)
        kind = part.get("type")
        if kind == "text":
            text = part_text(part, where)
            if text:
                blocks.append({"text": text})
        elif kind == "refusal" and refusal_ok and isinstance(part.get("refusal"), str):
            if part["refusal"]:
                blocks.append({"text": part["refusal"]})
        elif kind == "image_url" and media:
            blocks.append(_image(part, where))
        elif kind == "file" and media:
            blocks.append(_document(part, where, documents))
            documents += 1
        elif kind == "input_audio":
            raise TranslationError(
                f"{API} cannot take audio input (`input_audio`) through the gateway.",
                param=f"{where}.type",
            )
        else:
            raise TranslationError(
                f"{API} cannot express a content part of type '{kind}' here.",
                param=f"{where}.type",
            )
        if part.get("cache_control") is not None and blocks:
            blocks.append(_cache_point(part["cache_control"], f"{where}.cache_control"))
    return blocks


# --- messages -----------------------------------------------------------------------------------


def _reasoning(value: Any, streamed_text: Any, param: str) -> list[JSONObject]:
    """The unified format's ``thinking_blocks`` as ``reasoningContent`` blocks, unchanged (the
    model verifies their signatures). A streamed turn holds its text in ``reasoning_content``
    and one signed block with empty text (see the Anthropic adapter): the text goes back in."""
    if not isinstance(value, list):
        raise TranslationError("thinking_blocks must be a list.", param=param)
    blocks: list[JSONObject] = []
    signed = [b for b in value if isinstance(b, dict) and b.get("type") == "thinking"]
    fill = len(signed) == 1 and not signed[0].get("thinking") and isinstance(streamed_text, str)
    for index, block in enumerate(value):
        where = f"{param}[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking" and isinstance(block, dict):
            thinking, signature = block.get("thinking"), block.get("signature")
            if not isinstance(thinking, str) or not isinstance(signature, str):
                raise TranslationError(
                    "A thinking block needs string `thinking` and `signature`, exactly as the "
                    "model returned them.",
                    param=where,
                )
            text = streamed_text if fill and not thinking else thinking
            reasoning: JSONObject = {"text": text}
            if signature:
                reasoning["signature"] = signature
            blocks.append({"reasoningContent": {"reasoningText": reasoning}})
        elif (
            kind == "redacted_thinking"
            and isinstance(block, dict)
            and isinstance(block.get("data"), str)
        ):
            blocks.append({"reasoningContent": {"redactedContent": block["data"]}})
        else:
            raise TranslationError(
                "A thinking block must be {type: thinking, thinking, signature} or "
                "{type: redacted_thinking, data}.",
                param=where,
            )
    return blocks


def _tool_use(call: Any, param: str) -> JSONObject:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise TranslationError(f"{API} can only express function tool calls.", param=param)
    call_id, name, tool_input = function_call(
        call, param, api=API, stores=f"{API} stores a tool call's input as an object"
    )
    return {"toolUse": {"toolUseId": call_id, "name": name, "input": tool_input}}


def _assistant(message: JSONObject, param: str) -> list[JSONObject]:
    refuse_assistant_extras(message, param, api=API, explained=False)
    blocks: list[JSONObject] = []
    if message.get("thinking_blocks") is not None:
        blocks += _reasoning(
            message["thinking_blocks"], message.get("reasoning_content"), f"{param}.thinking_blocks"
        )
    content = message.get("content")
    if content is not None:
        blocks += _parts(content, f"{param}.content", media=False, refusal_ok=True)
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        blocks.append({"text": message["refusal"]})
    calls = tool_calls(message, param)
    blocks += [_tool_use(call, f"{param}.tool_calls[{i}]") for i, call in enumerate(calls)]
    return blocks


def _tool_result(message: JSONObject, param: str) -> JSONObject:
    call_id = tool_call_id(message, param)
    content = message.get("content")
    if isinstance(content, str) or content is None:
        result: list[JSONObject] = [{"text": content or ""}]
    else:
        result = [b for b in _parts(content, f"{param}.content", media=False) if "text" in b]
    return {"toolResult": {"toolUseId": call_id, "content": result}}


def _plain_conversation(messages: Any) -> tuple[list[JSONObject], list[JSONObject]] | None:
    """:func:`conversation` of the usual conversation, without its walk (None: walk it)."""
    return plain_conversation(messages, assistant="assistant", blocks="content",
                              keep_empty_user=False)  # fmt: skip


def conversation(messages: Any) -> tuple[list[JSONObject], list[JSONObject]]:
    """``(system blocks, messages)`` of an OpenAI ``messages`` list, turns alternating."""
    plain = plain_conversation(messages, assistant="assistant", blocks="content",
                               keep_empty_user=False)  # fmt: skip
    return plain if plain is not None else _walk_conversation(messages)


def _walk_conversation(messages: Any) -> tuple[list[JSONObject], list[JSONObject]]:
    """:func:`conversation` of any ``messages``: each message checked and translated."""
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for param, message in chat_messages(messages, api=API):
        role = message.get("role")
        if role in ("system", "developer"):
            target, blocks = (
                "system",
                _parts(message.get("content"), f"{param}.content", media=False),
            )
        elif role == "user":
            target, blocks = "user", _parts(message.get("content"), f"{param}.content", media=True)
        elif role == "assistant":
            target, blocks = "assistant", _assistant(message, param)
        elif role == "tool":
            target, blocks = "user", [_tool_result(message, param)]
        else:
            raise TranslationError(
                f"{API} cannot express a message of role '{role}'.", param=f"{param}.role"
            )
        if blocks and message.get("cache_control") is not None:
            blocks.append(_cache_point(message["cache_control"], f"{param}.cache_control"))
        if target == "system":
            system += blocks
        elif blocks:
            add_turn(turns, target, blocks, "content")
    return system, turns


# --- the rest of the request --------------------------------------------------------------------


def _number(payload: JSONObject, key: str) -> float | int | None:
    value = payload.get(key)
    if value is None:
        return None
    if type(value) not in (int, float) or value < 0:
        raise TranslationError(f"`{key}` must be a number ≥ 0.", param=key)
    number: float | int = value
    return number


def _tools(tools: Any) -> list[JSONObject]:
    if not isinstance(tools, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    out: list[JSONObject] = []
    for index, tool in enumerate(tools):
        param = f"tools[{index}]"
        function, schema = function_tool(tool, param, only=f"{API} can only take function tools")
        spec: JSONObject = {"name": function["name"]}
        if isinstance(function.get("description"), str) and function["description"]:
            spec["description"] = function["description"]
        if schema is None:
            schema = {"type": "object", "properties": {}}
        spec["inputSchema"] = {"json": schema}
        if function.get("strict") is True:
            spec["strict"] = True
        out.append({"toolSpec": spec})
        if tool.get("cache_control") is not None:
            out.append(_cache_point(tool["cache_control"], f"{param}.cache_control"))
    return out


def _uses_tools(turns: list[JSONObject]) -> bool:
    return any("toolUse" in b or "toolResult" in b for turn in turns for b in turn["content"])


def _tool_config(payload: JSONObject, turns: list[JSONObject]) -> JSONObject | None:
    tools = payload.get("tools")
    choice = payload.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise TranslationError(
                "`tool_choice` names a tool but there are no `tools`.", param="tool_choice"
            )
        return None
    config: JSONObject = {"tools": _tools(tools)}
    if choice is None or choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "none":
        if _uses_tools(turns):
            raise TranslationError(
                f"{API} has no tool_choice 'none' and needs the tools of a conversation that "
                "holds tool calls; use 'auto'.",
                param="tool_choice",
            )
        return None
    elif (name := chosen_function(choice)) is not None:
        config["toolChoice"] = {"tool": {"name": name}}
    else:
        raise unknown_tool_choice(choice, api=API)
    return config


def _output_config(value: Any) -> JSONObject | None:
    kind, spec = response_format(value)
    if kind is None:
        return None
    if kind == "json_schema":
        definition: JSONObject = {"schema": json.dumps(spec["schema"], separators=(",", ":"))}
        for key in ("name", "description"):
            if isinstance(spec.get(key), str) and spec[key]:
                definition[key] = spec[key]
        structure = {"jsonSchema": definition}
        return {"textFormat": {"type": "json_schema", "structure": structure}}
    raise TranslationError(
        f"{API} cannot express response_format json_object (JSON without a schema); use "
        "json_schema.",
        param="response_format",
    )


def _request_metadata(payload: JSONObject) -> dict[str, str]:
    metadata = payload.get("metadata")
    out: dict[str, str] = {}
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise TranslationError("`metadata` must map strings to strings.", param="metadata")
        out.update(metadata)
    for key in ("user", "safety_identifier"):
        value = payload.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise TranslationError(f"`{key}` must be a string.", param=key)
        out.setdefault(key, value)
    return out


def chat_to_converse(payload: JSONObject, *, claude: bool, default_max_tokens: int) -> JSONObject:
    """The Converse request body for an OpenAI chat request (the model goes in the path).

    ``claude``: the model is Claude, whose own fields (thinking, ``top_k``) travel in
    ``additionalModelRequestFields``. ``default_max_tokens`` stands in for a missing limit
    only when thinking needs one (the budget must fit under it). Raises
    :class:`TranslationError` for what Converse cannot express.
    """
    if not isinstance(payload, dict):
        raise TranslationError("The request body must be a JSON object.")
    if _PLAIN_FIELDS.issuperset(payload):  # the usual request: what the rest does, in short
        messages_field = payload.get("messages")
        plain = plain_conversation(messages_field, assistant="assistant", blocks="content",
                                   keep_empty_user=False)  # fmt: skip
        system, messages = plain if plain is not None else _walk_conversation(messages_field)
        body: JSONObject = {"messages": messages}
        if system:
            body["system"] = system
        if "stream" in payload:
            boolean(payload, "stream")
        return body
    # Converse takes a null field of any name as absent.
    present = (
        {key: value for key, value in payload.items() if value is not None}
        if None in payload.values()
        else payload
    )
    reject_inexpressible(present, translated=_TRANSLATED, neutral_only=_NEUTRAL_ONLY, api=API)
    system, messages = conversation(payload.get("messages"))
    if payload.get("cache_control") is not None and messages:
        messages[-1]["content"].append(_cache_point(payload["cache_control"], "cache_control"))
    body = {"messages": messages}
    if system:
        body["system"] = system
    if _READ_AFTER_MESSAGES.isdisjoint(present):
        boolean(payload, "stream")
        return body

    inference: JSONObject = {}
    max_tokens = max_output_tokens(payload)
    additional: JSONObject = {}
    budget = thinking_budget(payload, who="Claude", none_refuses_options=False)
    if budget is not None:
        if not claude:
            raise TranslationError(
                f"{API} takes reasoning_effort for Claude models only.", param="reasoning_effort"
            )
        max_tokens = max_tokens or default_max_tokens
        if budget >= max_tokens:
            max_tokens += budget  # thinking counts inside the limit, as OpenAI's reasoning does
        additional["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    for key, name in (("temperature", "temperature"), ("top_p", "topP")):
        value = _number(payload, key)
        if value is not None:
            inference[name] = value
    stop = payload.get("stop")
    if stop is not None:
        sequences = [stop] if isinstance(stop, str) else stop
        if not isinstance(sequences, list) or not all(isinstance(s, str) and s for s in sequences):
            raise TranslationError(
                "`stop` must be a non-empty string or a list of them.", param="stop"
            )
        if sequences:
            inference["stopSequences"] = sequences
    if inference:
        body["inferenceConfig"] = inference
    top_k = payload.get("top_k")
    if top_k is not None:
        if not claude:
            raise TranslationError(f"{API} takes top_k for Claude models only.", param="top_k")
        additional["top_k"] = integer(payload, "top_k", minimum=1)

    tool_config = _tool_config(payload, messages)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    output_config = _output_config(payload.get("response_format"))
    if output_config is not None:
        body["outputConfig"] = output_config
    if additional:
        body["additionalModelRequestFields"] = additional
    metadata = _request_metadata(payload)
    if metadata:
        body["requestMetadata"] = metadata
    boolean(payload, "stream")
    return body
