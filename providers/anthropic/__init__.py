"""The Anthropic Messages API as a wire format: pure translation to and from the unified
chat format (:mod:`providers.adapter`), with no network and no gateway imports.

* :class:`AnthropicAdapter` — all of it behind the adapter protocol;
* :func:`chat_to_messages` — OpenAI chat request → Messages request body;
  :func:`request_headers` — the headers to send it with;
* :func:`messages_to_chat` — Message → ``chat.completion``;
* :class:`MessagesStreamDecoder` — Messages event stream → ``chat.completion.chunk`` objects;
* :func:`error_to_openai` — Anthropic error body → OpenAI error object;
* :func:`usage_from_message`, :func:`summarise_stream` — usage and final Message of native
  (passthrough) Anthropic traffic, for the request log.
"""

from providers.anthropic.adapter import AnthropicAdapter
from providers.anthropic.errors import error_to_openai
from providers.anthropic.headers import ANTHROPIC_VERSION, CONTEXT_MANAGEMENT_BETA, request_headers
from providers.anthropic.request import EFFORT_BUDGETS, chat_to_messages, context_management
from providers.anthropic.response import FINISH_REASONS, messages_to_chat
from providers.anthropic.stream import MessagesStreamDecoder
from providers.anthropic.summary import MessagesStreamSummary, summarise_stream
from providers.anthropic.usage import openai_usage, usage_from_anthropic, usage_from_message

__all__ = [
    "ANTHROPIC_VERSION",
    "CONTEXT_MANAGEMENT_BETA",
    "EFFORT_BUDGETS",
    "FINISH_REASONS",
    "AnthropicAdapter",
    "MessagesStreamDecoder",
    "MessagesStreamSummary",
    "chat_to_messages",
    "context_management",
    "error_to_openai",
    "messages_to_chat",
    "openai_usage",
    "request_headers",
    "summarise_stream",
    "usage_from_anthropic",
    "usage_from_message",
]
