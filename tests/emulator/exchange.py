"""What an endpoint handler gets about one request, beyond aiohttp's own ``Request``.

Handlers are plain functions of an ``Exchange`` rather than methods of the emulator, so each
endpoint module stays independent of the server and its thread handling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .faults import Fault
from .messages_plan import PromptCache
from .messages_validation import MessagesValidator
from .validation import RequestValidator


@dataclass(frozen=True)
class AnthropicState:
    """What the Messages endpoint keeps across requests, per emulator."""

    validator: MessagesValidator
    cache: PromptCache


@dataclass(frozen=True)
class Exchange:
    request: web.Request
    body: bytes
    fault: Fault | None
    """The fault taken for this request (pacing and dropping apply to streams)."""
    validator: RequestValidator
    anthropic: AnthropicState
    serial: int
    """Unique per request on this emulator; used in ids (``chatcmpl-emu-<serial>``)."""
    on_disconnect: Callable[[], None]
    """Called when a stream is cut short because the client went away."""
