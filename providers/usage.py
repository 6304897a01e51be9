"""The one token-usage type every adapter converts its provider's usage into.

The request log, pricing and (later) metering all read :class:`Usage`; each wire format's
adapter owns the conversion from its provider's report (the rules are below).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Usage"]


class Usage(NamedTuple):
    """Token counts of one request, in the OpenAI convention (the persisted-columns convention).

    * ``prompt_tokens`` is **all** input the model processed: uncached + cache reads + cache
      writes + audio. ``cache_read_tokens``, ``cache_write_tokens`` and ``prompt_audio_tokens``
      are subsets of it.
    * ``completion_tokens`` is **all** output: visible text + reasoning + audio.
      ``reasoning_tokens`` and ``completion_audio_tokens`` are subsets of it.

    Adapters convert provider usage into this shape:

    * OpenAI chat: ``prompt_tokens``, ``completion_tokens`` as reported;
      ``cache_read_tokens = prompt_tokens_details.cached_tokens``;
      ``reasoning_tokens = completion_tokens_details.reasoning_tokens``; audio from
      ``prompt_tokens_details.audio_tokens`` / ``completion_tokens_details.audio_tokens``.
    * Anthropic reports ``input_tokens`` *excluding* cache traffic, so the adapter must sum:
      ``prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens``,
      ``cache_read_tokens = cache_read_input_tokens``,
      ``cache_write_tokens = cache_creation_input_tokens``,
      ``completion_tokens = output_tokens`` (extended thinking is already inside it).
      Cache writes are priced at the 5-minute write price (1-hour writes are not split out yet).
    * Gemini: ``prompt_tokens = promptTokenCount`` (already includes
      ``cachedContentTokenCount``), ``cache_read_tokens = cachedContentTokenCount``,
      ``completion_tokens = candidatesTokenCount + thoughtsTokenCount`` (Gemini reports thoughts
      outside the candidates count), ``reasoning_tokens = thoughtsTokenCount``.

    Inconsistent counts never raise: a subset larger than what is left of its total is clamped,
    and negative counts are treated as 0, so the cost is never negative or double counted.

    A named tuple rather than a frozen dataclass: one is built per logged request, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost 1.4 µs of it
    against 0.4.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    prompt_audio_tokens: int = 0
    completion_audio_tokens: int = 0
