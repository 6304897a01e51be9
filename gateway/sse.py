"""Server-sent-event framing, for ``Helicone-Stream-Force-Format: true``.

Upstream network chunks can split an event anywhere; most SDKs reassemble them, some (Ruby's
among others) do not. Force-format re-chunks the stream so every chunk the client receives
holds whole events: bytes up to the last event boundary go out, the tail waits for the next
chunk. Without the header, bytes are relayed exactly as they arrive.
"""

from __future__ import annotations

import orjson

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


class UsageChunkFilter(EventChunker):
    """Whole events, minus the usage-only chunk of a chat-completions stream.

    To log tokens the gateway sets ``stream_options.include_usage`` upstream even when the
    client did not; the extra final chunk (``"choices": []`` plus ``usage``) is then removed
    here so the client receives exactly the stream it asked for.
    """

    __slots__ = ()

    def feed(self, chunk: bytes) -> bytes:
        return _drop_usage_events(super().feed(chunk))

    def flush(self) -> bytes:
        return _drop_usage_events(super().flush())


def _drop_usage_events(data: bytes) -> bytes:
    if b'"usage"' not in data:
        return data
    kept: list[bytes] = []
    for event in data.split(b"\n\n"):
        if b'"usage"' in event and _is_usage_only(event):
            continue
        kept.append(event)
    return b"\n\n".join(kept)


def _is_usage_only(event: bytes) -> bool:
    for line in event.splitlines():
        if not line.startswith(b"data:"):
            continue
        try:
            payload = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            return False
        return (
            isinstance(payload, dict)
            and payload.get("choices") == []
            and isinstance(payload.get("usage"), dict)
        )
    return False
