"""Which reader understands a recorded answer, by the wire format the record says it is in.

The log writer calls :func:`response_reader` with a capture's ``wire`` (the format of the
bytes the provider sent back: a translated request records the provider's own answer, so its
usage is read exactly as that provider reported it, cache tokens included). Adding a wire
format is one entry in :func:`response_reader`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from providers import openai_format
from providers.adapter import StreamSummary
from providers.anthropic import adapter as anthropic_adapter
from providers.anthropic.usage import usage_from_message
from providers.bedrock import summary as bedrock_summary
from providers.gemini import summary as gemini_summary
from providers.usage import Usage

__all__ = ["ResponseReader", "response_reader"]


@dataclass(frozen=True, slots=True)
class ResponseReader:
    """One wire format's readers of a whole answer and of a recorded stream."""

    wire: str
    usage: Callable[[Any], Usage | None]
    """Usage of a parsed (non-streamed) answer, None when it reports none."""
    summarise_stream: Callable[[bytes], StreamSummary]
    """A recorded stream body (SSE; an AWS event stream for Bedrock) → final object, usage,
    model and text."""
    completion_text: Callable[[Any], str]
    """The text of a parsed answer (for a token estimate when usage is missing)."""
    model: Callable[[Any], str | None]
    """The model a parsed answer names."""


def _model(obj: Any) -> str | None:
    value = obj.get("model") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def response_reader(wire: str) -> ResponseReader:
    """The reader for ``wire``; an unknown format is read as OpenAI's (the passthrough of an
    OpenAI-compatible server is the common case, and nothing here ever raises on a body)."""
    return _READERS.get(wire, _OPENAI)


_OPENAI = ResponseReader(
    "openai",
    openai_format.usage_from,
    openai_format.summarise_stream,
    openai_format.completion_text,
    _model,
)
_ANTHROPIC = ResponseReader(
    "anthropic",
    usage_from_message,
    anthropic_adapter.stream_summary,
    anthropic_adapter.completion_text,
    _model,
)
_GEMINI = ResponseReader(
    "gemini",
    gemini_summary.usage_of,
    gemini_summary.stream_summary,
    gemini_summary.text_of,
    gemini_summary.model_of,
)
_BEDROCK = ResponseReader(
    "bedrock",
    bedrock_summary.usage_from_answer,
    bedrock_summary.summarise_stream,
    bedrock_summary.completion_text,
    bedrock_summary.model_of,
)
_READERS: Mapping[str, ResponseReader] = MappingProxyType(
    {"anthropic": _ANTHROPIC, "gemini": _GEMINI, "bedrock": _BEDROCK}
)
