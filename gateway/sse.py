"""Server-sent-event framing, for ``Helicone-Stream-Force-Format: true``.

Upstream network chunks can split an event anywhere; most SDKs reassemble them, some (Ruby's
among others) do not. Force-format re-chunks the stream so every chunk the client receives
holds whole events: bytes up to the last event boundary go out, the tail waits for the next
chunk. Without the header, bytes are relayed exactly as they arrive.
"""

from __future__ import annotations

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


class EventChunker:
    """Accumulates stream bytes and releases only complete events."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """Add ``chunk``; return the complete events now available (maybe ``b""``)."""
        data = self._pending + chunk if self._pending else chunk
        cut = -1
        for boundary in _BOUNDARIES:
            index = data.rfind(boundary)
            if index != -1:
                cut = max(cut, index + len(boundary))
        if cut == -1:
            self._pending = data
            return b""
        self._pending = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """What is left at the end of the stream (an unterminated last event)."""
        rest, self._pending = self._pending, b""
        return rest
