"""AWS Bedrock as a wire format: Converse (every model family), InvokeModel with Anthropic's
body (Claude), event-stream decoding, SigV4 signing (the gateway's own signer, checked against
botocore's). Pure translation, no network and no gateway imports.

* :class:`BedrockAdapter` — all of it behind the adapter protocol;
* :func:`chat_to_converse`, :func:`converse_to_chat`, :class:`ConverseStreamDecoder` —
  Converse both ways; :func:`chat_to_invoke`, :class:`InvokeStreamDecoder` — Claude's
  InvokeModel;
* :class:`EventStreamFramer` — ``application/vnd.amazon.eventstream`` bytes → messages;
* :mod:`providers.bedrock.signing` — credentials and SigV4 (imported on its own, by the two
  callers that sign: the translated path's router and the passthrough);
* :func:`endpoint_url`, :func:`model_path`, :func:`is_anthropic` — addressing;
* :func:`error_to_openai` — Bedrock error → OpenAI error object;
* :func:`usage_from_answer`, :func:`summarise_stream` — the request log's reader.
"""

from providers.bedrock.adapter import BedrockAdapter
from providers.bedrock.converse import chat_to_converse
from providers.bedrock.errors import error_to_openai
from providers.bedrock.eventstream import CONTENT_TYPE, EventStreamFramer, iter_events
from providers.bedrock.invoke import BEDROCK_ANTHROPIC_VERSION, chat_to_invoke
from providers.bedrock.models import (
    DEFAULT_REGION,
    base_model,
    endpoint_url,
    is_anthropic,
    is_region,
    model_path,
)
from providers.bedrock.response import FINISH_REASONS, converse_to_chat, usage_from_converse
from providers.bedrock.stream import ConverseStreamDecoder, InvokeStreamDecoder
from providers.bedrock.summary import completion_text, summarise_stream, usage_from_answer

__all__ = [
    "BEDROCK_ANTHROPIC_VERSION",
    "CONTENT_TYPE",
    "DEFAULT_REGION",
    "FINISH_REASONS",
    "BedrockAdapter",
    "ConverseStreamDecoder",
    "EventStreamFramer",
    "InvokeStreamDecoder",
    "base_model",
    "chat_to_converse",
    "chat_to_invoke",
    "completion_text",
    "converse_to_chat",
    "endpoint_url",
    "error_to_openai",
    "is_anthropic",
    "is_region",
    "iter_events",
    "model_path",
    "summarise_stream",
    "usage_from_answer",
    "usage_from_converse",
]
