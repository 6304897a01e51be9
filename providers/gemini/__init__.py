"""The Gemini API (Google AI Studio) as a wire format: pure translation to and from the unified
chat format (:mod:`providers.adapter`), with no network and no gateway imports.

* :class:`GeminiAdapter` — all of it behind the adapter protocol (chat and embeddings);
* :func:`chat_to_gemini` — OpenAI chat request → ``(path, generateContent body)``;
* :func:`gemini_to_chat` — ``GenerateContentResponse`` → ``chat.completion``;
* :class:`GeminiStreamDecoder` — the ``alt=sse`` stream → ``chat.completion.chunk`` objects;
* :func:`error_to_openai` — Google error body → OpenAI error object;
* :func:`embeddings_to_gemini`, :func:`gemini_to_embeddings` — embeddings both ways;
* :func:`usage_from_gemini`, :func:`usage_of`, :func:`stream_summary`,
  :func:`model_from_path` — usage, model and final answer of native (passthrough) traffic, for
  the request log;
* :func:`is_file_uri` — the URLs Gemini reads itself (others are fetched by the gateway).
"""

from providers.gemini.adapter import GeminiAdapter
from providers.gemini.contents import IMAGE_TYPES, is_file_uri
from providers.gemini.embeddings import embeddings_to_gemini, gemini_to_embeddings
from providers.gemini.errors import error_to_openai
from providers.gemini.request import EFFORT_BUDGETS, chat_to_gemini
from providers.gemini.response import FINISH_REASONS, gemini_to_chat
from providers.gemini.stream import GeminiStreamDecoder
from providers.gemini.summary import model_from_path, model_of, stream_summary, text_of, usage_of
from providers.gemini.usage import openai_usage, usage_from_gemini

__all__ = [
    "EFFORT_BUDGETS",
    "FINISH_REASONS",
    "IMAGE_TYPES",
    "GeminiAdapter",
    "GeminiStreamDecoder",
    "chat_to_gemini",
    "embeddings_to_gemini",
    "error_to_openai",
    "gemini_to_chat",
    "gemini_to_embeddings",
    "is_file_uri",
    "model_from_path",
    "model_of",
    "openai_usage",
    "stream_summary",
    "text_of",
    "usage_from_gemini",
    "usage_of",
]
