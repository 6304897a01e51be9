"""Injected upstream misbehaviour: errors, latency, slow and broken streams.

Tests inject faults from their own thread while the emulator's event loop consumes them, so
taking a fault (match, decrement ``times``, drop when spent) happens under one lock: two
concurrent requests can never both consume a fault meant for one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal


@dataclass
class Fault:
    """One kind of misbehaviour, applied to the next ``times`` matching requests."""

    status: int | None = None
    """Reply with this status and the error body of the endpoint's API (OpenAI's, or
    Anthropic's on ``/v1/messages``), or ``body`` if given."""
    body: bytes | None = None
    message: str | None = None
    """The error's message instead of the status's usual one (e.g. Anthropic's
    ``prompt_too_long(...)`` with ``status=400``); also the ``error_after_events`` error's."""
    error_type: str | None = None
    """The error's type instead of the status's usual one: Anthropic's ``error.type``
    (``error_after_events``: instead of ``overloaded_error``), OpenAI's stream error ``type``
    (instead of ``server_error``)."""
    headers: dict[str, str] | None = None
    delay: float = 0.0
    """Seconds to wait before answering (before any header is sent)."""
    chunk_delay: float = 0.0
    """Streaming answers: seconds between SSE events."""
    drop_after_events: int | None = None
    """Streaming answers: send this many SSE events, then cut the connection."""
    error_after_events: int | None = None
    """Streaming answers: send this many SSE events, then the API's error event, then end
    the stream as the provider does when it fails after the answer has begun: Anthropic's
    ``event: error`` (then the stream ends normally), OpenAI's chat ``data: {"error": ...}``
    (no ``[DONE]``)."""
    split_events: bool = False
    """Streaming answers: write each event in two halves, 50 ms apart, so a reader receives
    network chunks that end mid-event (what ``Helicone-Stream-Force-Format`` repairs)."""
    newline: bytes = b"\n"
    """Streaming answers: the line ending of every SSE line; ``b"\\r\\n"`` and ``b"\\r"`` are
    as legal as ``b"\\n"`` (WHATWG SSE), so events end with ``\\r\\n\\r\\n`` or ``\\r\\r``."""
    close: Literal["after_answer", "before_answer"] | None = None
    """Close the connection without announcing it (no ``Connection: close``):
    ``after_answer`` once the ``status`` answer is sent, as a server that drops an idle
    keep-alive connection does; ``before_answer`` once the whole request is read, with no
    answer at all."""
    close_delay: float = 0.0
    """``close="after_answer"``: seconds between the answer and the close."""
    path: str | None = None
    """Only requests whose path ends with this match (``None``: every request)."""
    times: int = 1


class FaultQueue:
    """Faults in injection order, each with how many more requests it may apply to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Fault, int]] = []

    def add(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError(f"Fault.times must be at least 1, got {fault.times}")
        with self._lock:
            self._pending.append((fault, fault.times))

    def take(self, path: str) -> Fault | None:
        """The first fault matching ``path``, consuming one of its uses."""
        with self._lock:
            for index, (fault, left) in enumerate(self._pending):
                if fault.path is not None and not path.endswith(fault.path):
                    continue
                if left > 1:
                    self._pending[index] = (fault, left - 1)
                else:
                    del self._pending[index]
                return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
