"""A Responses API create body → a Chat Completions request (the gateway's unified format).

The gateway answers ``/v1/responses`` for providers without a Responses endpoint by
translating the request to chat, sending it through the provider's adapter, and translating
the answer back (:mod:`.response`, :mod:`.stream`). Everything the chat format cannot carry is
a :class:`TranslationError` naming the field (OpenAI's ``param``), never silently dropped:

* stored state (``previous_response_id``, ``conversation``, ``prompt``, ``item_reference``
  items, ``background``, ``truncation: "auto"``, ``include`` values that read stored or
  server-side tool output): the gateway does not store responses for translated providers;
* OpenAI's built-in tools (web search, file search, computer use, code interpreter, MCP, image
  generation, shell…) and their call items: they run on OpenAI's servers;
* ``file_id`` references (OpenAI's file store) and ``file_url``: the gateway fetches a
  ``file_url`` and replaces it with ``file_data`` *before* calling this translation, so a
  ``file_url`` that reaches it is an error of the caller.

Accepted and deliberately not forwarded: ``store`` (translated responses are never stored),
``metadata`` and ``max_tool_calls`` (meaningful only for stored responses and built-in tools;
both are echoed on the Response), ``reasoning.summary`` (the provider's thinking is returned
as the summary), ``stream_options.include_obfuscation`` (no obfuscation padding is added).

``developer`` messages become ``system`` messages: the providers this serves (Groq,
Mistral…, Anthropic through its adapter) know the one role, not the other. Reasoning items
become ``reasoning_content`` / ``thinking_blocks`` (:mod:`.reasoning`).
"""

from __future__ import annotations

from typing import Any

from providers.adapter import TranslationError
from providers.responses.reasoning import thinking_block

__all__ = ["responses_to_chat"]

JSONObject = dict[str, Any]

# Copied unchanged to the chat request: the same name and meaning in both APIs.
_SAME_IN_CHAT = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    # Gateway extensions accepted on both endpoints (reference §5.5, §5.9).
    "top_k",
    "reasoning_options",
)
# Accepted, echoed on the Response, not sent (see the module docstring).
_NOT_FORWARDED = ("store", "metadata", "max_tool_calls", "stream_options")
_TRANSLATED = (
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "text",
    "reasoning",
    "stream",
    "include",
    "truncation",
    "background",
    "top_logprobs",
)
_KNOWN = frozenset(_SAME_IN_CHAT + _NOT_FORWARDED + _TRANSLATED)

_STORED = (
    "previous_response_id",
    "conversation",
    "prompt",
)
# Fields of OpenAI-only features with no chat equivalent on the translated providers.
_OPENAI_ONLY = (
    "context_management",
    "moderation",
    "access_programs",
    "background_options",
    "image",
    "prompt_cache_options",
)
_STORED_MESSAGE = (
    "The gateway does not store responses for providers it translates to Chat Completions, "
    "so `{field}` cannot be used; send the whole conversation in `input` instead."
)

_BUILT_IN_ITEMS = frozenset(
    {
        "file_search_call",
        "web_search_call",
        "computer_call",
        "computer_call_output",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "tool_search_call",
        "tool_search_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "additional_tools",
        "compaction",
        "compaction_trigger",
        "program",
        "program_output",
    }
)
_FUNCTION_TOOL_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})


def responses_to_chat(payload: JSONObject) -> JSONObject:
    """A ``POST /v1/responses`` body → the equivalent ``POST /v1/chat/completions`` body.

    Raises :class:`TranslationError` (a 400 naming ``param``) for anything the chat request
    cannot express.
    """
    if not isinstance(payload, dict):
        raise TranslationError("The request body must be a JSON object.")
    _check_fields(payload)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise TranslationError("`model` is required and must be a string.", param="model")

    messages: list[JSONObject] = []
    instructions = payload.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise TranslationError("`instructions` must be a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    messages.extend(_input_messages(payload.get("input")))
    if not messages:
        raise TranslationError("`input` is required.", param="input")

    chat: JSONObject = {"model": model, "messages": messages}
    for key in _SAME_IN_CHAT:
        if payload.get(key) is not None:
            chat[key] = payload[key]
    if payload.get("max_output_tokens") is not None:
        # ``max_tokens``, not ``max_completion_tokens``: only chat-only servers get here (OpenAI
        # serves the Responses API itself), and the OpenAI-compatible family documents this one.
        chat["max_tokens"] = payload["max_output_tokens"]
    if payload.get("tools") is not None:
        tools = _tools(payload["tools"])
        if tools:
            chat["tools"] = tools
    if payload.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(payload["tool_choice"])
    if payload.get("text") is not None:
        chat.update(_text(payload["text"]))
    if payload.get("reasoning") is not None:
        chat.update(_reasoning(payload["reasoning"]))
    if payload.get("stream") is True:
        # The usage chunk is what the Response's `usage` is built from.
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _check_fields(payload: JSONObject) -> None:
    for field in _STORED:
        if payload.get(field) is not None:
            raise TranslationError(_STORED_MESSAGE.format(field=field), param=field)
    if payload.get("background"):
        raise TranslationError(
            "Background responses are stored by OpenAI and polled later; the gateway does not "
            "store responses for providers it translates, so `background` must be false.",
            param="background",
        )
    if payload.get("truncation") not in (None, "disabled"):
        raise TranslationError(
            '`truncation: "auto"` drops items from a stored conversation; only "disabled" '
            "is supported for this provider.",
            param="truncation",
        )
    if payload.get("top_logprobs"):
        raise TranslationError(
            "Log probabilities are not supported for this provider.", param="top_logprobs"
        )
    include = payload.get("include")
    if include is not None:
        if not isinstance(include, list):
            raise TranslationError("`include` must be a list.", param="include")
        for index, value in enumerate(include):
            # Encrypted reasoning is always returned (.reasoning); every other value reads
            # stored items, server-side tool output or log probabilities.
            if value != "reasoning.encrypted_content":
                raise TranslationError(
                    f"`include` value {value!r} is not available for this provider: it reads "
                    "stored items, OpenAI-hosted tool output or log probabilities.",
                    param=f"include[{index}]",
                )
    stream_options = payload.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise TranslationError("`stream_options` must be an object.", param="stream_options")
    for field in _OPENAI_ONLY:
        if payload.get(field):
            raise TranslationError(
                f"`{field}` is an OpenAI-only feature, not available for this provider.",
                param=field,
            )
    for field in payload:
        if field not in _KNOWN and field not in _OPENAI_ONLY and field not in _STORED:
            raise TranslationError(
                f"Unknown parameter `{field}` for the Responses API.", param=field
            )


# --- input ------------------------------------------------------------------------------------


class _Conversation:
    """Chat messages built from input items, one assistant turn at a time.

    Consecutive assistant-side items (reasoning, assistant messages, function calls) are one
    chat assistant message, as the provider produced them: its text, then its tool calls.
    """

    def __init__(self) -> None:
        self.messages: list[JSONObject] = []
        self._start_turn()

    def _start_turn(self) -> None:
        self._texts: list[str] = []
        self._refusals: list[str] = []
        self._tool_calls: list[JSONObject] = []
        self._reasoning: list[str] = []
        self._blocks: list[JSONObject] = []
        self._open = False

    def add(self, message: JSONObject) -> None:
        self.flush()
        self.messages.append(message)

    def assistant_text(self, text: str) -> None:
        self._open = True
        self._texts.append(text)

    def assistant_refusal(self, refusal: str) -> None:
        self._open = True
        self._refusals.append(refusal)

    def tool_call(self, call: JSONObject) -> None:
        self._open = True
        self._tool_calls.append(call)

    def reasoning(self, text: str, block: JSONObject | None) -> None:
        self._open = True
        if text:
            self._reasoning.append(text)
        if block is not None:
            self._blocks.append(block)

    def flush(self) -> None:
        if not self._open:
            return
        message: JSONObject = {"role": "assistant"}
        if len(self._texts) > 1:
            message["content"] = [{"type": "text", "text": text} for text in self._texts]
        elif self._texts:
            message["content"] = self._texts[0]
        else:
            # Chat wants content or tool calls: null beside tool calls, "" on its own.
            message["content"] = None if self._tool_calls else ""
        if self._refusals:
            message["refusal"] = "".join(self._refusals)
        if self._tool_calls:
            message["tool_calls"] = self._tool_calls
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._blocks:
            message["thinking_blocks"] = self._blocks
        self.messages.append(message)
        self._start_turn()


def _input_messages(value: Any) -> list[JSONObject]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise TranslationError("`input` must be a string or a list of items.", param="input")
    conversation = _Conversation()
    for index, item in enumerate(value):
        _input_item(conversation, item, f"input[{index}]")
    conversation.flush()
    return conversation.messages


def _input_item(conversation: _Conversation, item: Any, param: str) -> None:
    if not isinstance(item, dict):
        raise TranslationError("An input item must be an object.", param=param)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        _message_item(conversation, item, param)
    elif kind == "function_call":
        conversation.tool_call(_function_call(item, param))
    elif kind == "function_call_output":
        conversation.add(_function_call_output(item, param))
    elif kind == "reasoning":
        _reasoning_item(conversation, item, param)
    elif kind == "item_reference":
        raise TranslationError(_STORED_MESSAGE.format(field="item_reference"), param=param)
    elif kind in _BUILT_IN_ITEMS:
        raise TranslationError(
            f"`{kind}` items belong to OpenAI's built-in or custom tools, which this provider "
            "does not have.",
            param=f"{param}.type",
        )
    else:
        raise TranslationError(f"Unsupported input item type {kind!r}.", param=f"{param}.type")


def _message_item(conversation: _Conversation, item: JSONObject, param: str) -> None:
    role = item.get("role")
    content = item.get("content")
    if role == "assistant":
        if isinstance(content, str):
            conversation.assistant_text(content)
            return
        for index, part in enumerate(_parts(content, param)):
            where = f"{param}.content[{index}]"
            kind = part.get("type")
            if kind in ("output_text", "input_text"):
                conversation.assistant_text(_string(part, "text", where))
            elif kind == "refusal":
                conversation.assistant_refusal(_string(part, "refusal", where))
            else:
                raise TranslationError(
                    f"An assistant message carries text or refusals, not {kind!r}.",
                    param=f"{where}.type",
                )
        return
    if role not in ("user", "system", "developer"):
        raise TranslationError(f"Unsupported message role {role!r}.", param=f"{param}.role")
    chat_role = "user" if role == "user" else "system"
    if isinstance(content, str):
        conversation.add({"role": chat_role, "content": content})
        return
    parts = [
        _content_part(part, f"{param}.content[{index}]", images=role == "user")
        for index, part in enumerate(_parts(content, param))
    ]
    conversation.add({"role": chat_role, "content": parts})


def _parts(content: Any, param: str) -> list[JSONObject]:
    if not isinstance(content, list):
        raise TranslationError(
            "Message content must be a string or a list of parts.", param=f"{param}.content"
        )
    for index, part in enumerate(content):
        if not isinstance(part, dict):
            raise TranslationError(
                "A content part must be an object.", param=f"{param}.content[{index}]"
            )
    return content


def _content_part(part: JSONObject, param: str, *, images: bool) -> JSONObject:
    kind = part.get("type")
    chat: JSONObject
    if kind == "input_text":
        chat = {"type": "text", "text": _string(part, "text", param)}
    elif kind in ("input_image", "input_file") and not images:
        raise TranslationError(
            "System and developer messages carry text only in Chat Completions.",
            param=f"{param}.type",
        )
    elif kind == "input_image":
        chat = {"type": "image_url", "image_url": _image_url(part, param)}
    elif kind == "input_file":
        chat = {"type": "file", "file": _file(part, param)}
    else:
        raise TranslationError(f"Unsupported content part type {kind!r}.", param=f"{param}.type")
    if part.get("prompt_cache_breakpoint") is not None:
        chat["prompt_cache_breakpoint"] = part["prompt_cache_breakpoint"]
    return chat


def _image_url(part: JSONObject, param: str) -> JSONObject:
    if part.get("file_id") is not None:
        raise TranslationError(
            "Images by `file_id` live in OpenAI's file store, which this provider cannot "
            "read; send the image as `image_url` (a URL or a data URL).",
            param=f"{param}.file_id",
        )
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise TranslationError("`image_url` is required.", param=f"{param}.image_url")
    image: JSONObject = {"url": url}
    if part.get("detail") is not None:
        image["detail"] = part["detail"]
    return image


def _file(part: JSONObject, param: str) -> JSONObject:
    if part.get("file_id") is not None:
        raise TranslationError(
            "Files by `file_id` live in OpenAI's file store, which this provider cannot read; "
            "send the file as `file_data`.",
            param=f"{param}.file_id",
        )
    if part.get("file_url") is not None:
        # The gateway downloads file_url into file_data before translating; one that is
        # still here was not fetched.
        raise TranslationError(
            "`file_url` could not be fetched for this provider; send the file as `file_data`.",
            param=f"{param}.file_url",
        )
    if part.get("detail") not in (None, "auto"):
        raise TranslationError(
            "A file's `detail` is not supported for this provider.", param=f"{param}.detail"
        )
    file: JSONObject = {"file_data": _string(part, "file_data", param)}
    if part.get("filename") is not None:
        file["filename"] = _string(part, "filename", param)
    return file


def _function_call(item: JSONObject, param: str) -> JSONObject:
    if item.get("namespace") is not None:
        raise TranslationError(
            "Namespaced function calls are not supported for this provider.",
            param=f"{param}.namespace",
        )
    caller = item.get("caller")
    if isinstance(caller, dict) and caller.get("type") not in (None, "direct"):
        raise TranslationError(
            "Programmatic tool calls are not supported for this provider.",
            param=f"{param}.caller",
        )
    return {
        "id": _string(item, "call_id", param),
        "type": "function",
        "function": {
            "name": _string(item, "name", param),
            "arguments": _string(item, "arguments", param),
        },
    }


def _function_call_output(item: JSONObject, param: str) -> JSONObject:
    call_id = _string(item, "call_id", param)
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for index, part in enumerate(output):
            where = f"{param}.output[{index}]"
            if not isinstance(part, dict) or part.get("type") != "input_text":
                raise TranslationError(
                    "A tool result carries text only in Chat Completions.", param=where
                )
            texts.append(_string(part, "text", where))
        output = "".join(texts)
    elif not isinstance(output, str):
        raise TranslationError(
            "`output` must be a string or a list of parts.", param=f"{param}.output"
        )
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _reasoning_item(conversation: _Conversation, item: JSONObject, param: str) -> None:
    texts = [
        _string(part, "text", f"{param}.summary[{index}]")
        for index, part in enumerate(_part_list(item.get("summary"), f"{param}.summary"))
    ]
    if not texts:
        # Raw reasoning (`content`) is what a model without summaries returns instead.
        texts = [
            _string(part, "text", f"{param}.content[{index}]")
            for index, part in enumerate(_part_list(item.get("content"), f"{param}.content"))
        ]
    text = "".join(texts)
    encrypted = item.get("encrypted_content")
    block = (
        thinking_block(text, encrypted, param=f"{param}.encrypted_content")
        if encrypted is not None
        else None
    )
    conversation.reasoning(text, block)


def _part_list(value: Any, param: str) -> list[JSONObject]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(part, dict) for part in value):
        raise TranslationError("Expected a list of objects.", param=param)
    return value


def _string(container: JSONObject, key: str, param: str) -> str:
    value = container.get(key)
    if not isinstance(value, str):
        raise TranslationError(f"`{key}` is required and must be a string.", param=f"{param}.{key}")
    return value


# --- tools, tool choice, output format, reasoning ---------------------------------------------


def _tools(value: Any) -> list[JSONObject]:
    if not isinstance(value, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    return [_tool(tool, f"tools[{index}]") for index, tool in enumerate(value)]


def _tool(tool: Any, param: str) -> JSONObject:
    if not isinstance(tool, dict):
        raise TranslationError("A tool must be an object.", param=param)
    kind = tool.get("type")
    if kind != "function":
        raise TranslationError(
            f"`{kind}` tools run on OpenAI's servers (or need OpenAI's custom tool calls); "
            "only `function` tools can be translated for this provider.",
            param=f"{param}.type",
        )
    for key, value in tool.items():
        if key in _FUNCTION_TOOL_KEYS or value is None or value is False:
            continue
        if key == "allowed_callers" and value == ["direct"]:
            continue
        raise TranslationError(
            f"Function tool field `{key}` is not supported for this provider.",
            param=f"{param}.{key}",
        )
    function: JSONObject = {"name": _string(tool, "name", param)}
    if tool.get("description") is not None:
        function["description"] = _string(tool, "description", param)
    if tool.get("parameters") is not None:
        if not isinstance(tool["parameters"], dict):
            raise TranslationError(
                "`parameters` must be a JSON Schema object.", param=f"{param}.parameters"
            )
        function["parameters"] = tool["parameters"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(value: Any) -> Any:
    if value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function":
        return {"type": "function", "function": {"name": _string(value, "name", "tool_choice")}}
    if isinstance(value, dict) and value.get("type") == "allowed_tools":
        mode = value.get("mode")
        if mode not in ("auto", "required"):
            raise TranslationError('`mode` must be "auto" or "required".', param="tool_choice.mode")
        tools = value.get("tools")
        if not isinstance(tools, list):
            raise TranslationError("`tools` must be a list.", param="tool_choice.tools")
        allowed = []
        for index, tool in enumerate(tools):
            where = f"tool_choice.tools[{index}]"
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise TranslationError(
                    "Only function tools can be allowed for this provider.", param=where
                )
            allowed.append({"type": "function", "function": {"name": _string(tool, "name", where)}})
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}}
    kind = value.get("type") if isinstance(value, dict) else value
    raise TranslationError(
        f"Tool choice {kind!r} is not available for this provider (only function tools are).",
        param="tool_choice",
    )


def _text(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise TranslationError("`text` must be an object.", param="text")
    chat: JSONObject = {}
    for key in value:
        if key not in ("format", "verbosity"):
            raise TranslationError(f"Unknown field `text.{key}`.", param=f"text.{key}")
    if value.get("verbosity") is not None:
        chat["verbosity"] = value["verbosity"]
    fmt = value.get("format")
    if fmt is None:
        return chat
    if not isinstance(fmt, dict):
        raise TranslationError("`text.format` must be an object.", param="text.format")
    kind = fmt.get("type")
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise TranslationError(
                "`schema` is required and must be an object.", param="text.format.schema"
            )
        json_schema: JSONObject = {"name": _string(fmt, "name", "text.format"), "schema": schema}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                json_schema[key] = fmt[key]
        chat["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    elif kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind != "text":
        raise TranslationError(f"Unsupported text format {kind!r}.", param="text.format.type")
    return chat


def _reasoning(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise TranslationError("`reasoning` must be an object.", param="reasoning")
    for key, setting in value.items():
        if key in ("effort", "summary", "generate_summary") or setting is None:
            continue
        if (key, setting) in (("mode", "standard"), ("context", "auto")):
            continue
        raise TranslationError(
            f"`reasoning.{key}` is not supported for this provider.", param=f"reasoning.{key}"
        )
    effort = value.get("effort")
    return {} if effort is None else {"reasoning_effort": effort}
