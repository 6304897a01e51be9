"""Server-sent events: one incremental framer, and the relay stages built on it.

Upstream network chunks can split an event anywhere, and a line may end with ``\\n``,
``\\r\\n`` or ``\\r`` (all three are legal, WHATWG HTML §9.2.5): an event ends at the first
empty line, so its delimiter is any two line endings in a row (``\\n\\n``, ``\\r\\n\\r\\n``,
``\\r\\r``, ``\\n\\r\\n``…). :class:`SSEFramer` finds those and hands out each event, byte for
byte as received, as soon as its last byte arrives. Every stage that needs whole events uses
it:

* :class:`EventChunker`, for ``Helicone-Stream-Force-Format: true``: some SDKs (Ruby's among
  others) do not reassemble events split over chunks, so every chunk sent holds whole events;
* :class:`UsageChunkFilter`: drops the usage chunk the gateway asked for on the client's behalf.

Without either stage, bytes are relayed exactly as they arrive. Cost per chunk: one regex
search per event boundary (C speed) over the new bytes; an unfinished event is copied once
per chunk until it completes.
"""

from __future__ import annotations

import re

import orjson

# Two line endings in a row. ``\r`` not followed by ``\n`` is a line ending of its own; at the
# end of the buffer it counts as one at once (whatever follows, the empty line is complete),
# and an ``\n`` arriving next is then the tail of a ``\r\n`` (see SSEFramer.feed).
_BOUNDARY = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


class SSEFramer:
    """Splits a byte stream into SSE events, each released the moment it is complete.

    :meth:`feed` returns the events completed by a chunk, each as the exact bytes received
    (its delimiter included), so that joining everything returned, :meth:`flush` included,
    gives back the stream unchanged. When an event ended with a bare ``\\r`` at the end of a
    chunk and the next chunk starts with ``\\n``, that ``\\n`` completed a ``\\r\\n``: it is
    returned as an item of its own (an empty line, harmless to any SSE parser).
    """

    __slots__ = ("_cr_tail", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._cr_tail = False
        """The last event released ended a chunk with ``\\r``: an ``\\n`` may complete it."""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; return the events it completed (maybe none)."""
        if not chunk:
            return []
        events: list[bytes] = []
        if self._cr_tail:
            self._cr_tail = False
            if chunk[0] == 0x0A:
                events.append(b"\n")
                chunk = chunk[1:]
                if not chunk:
                    return events
        pending = self._pending
        if pending:
            data = pending + chunk
            # A boundary wholly inside ``pending`` was found before: start just before the seam.
            search_from = max(0, len(pending) - 3)
        else:
            data, search_from = chunk, 0
        start = 0
        while match := _BOUNDARY.search(data, search_from):
            end = match.end()
            events.append(data[start:end])
            start = search_from = end
        if start == len(data):
            self._pending = b""
            self._cr_tail = data[-1] == 0x0D
        else:
            self._pending = data[start:] if start else data
        return events

    def flush(self) -> list[bytes]:
        """The end of the stream: a last event without its empty line, if any."""
        rest, self._pending = self._pending, b""
        return [rest] if rest else []


class EventChunker:
    """Releases only complete events: what a chunk completed, as one chunk (maybe ``b""``)."""

    __slots__ = ("_framer",)

    def __init__(self) -> None:
        self._framer = SSEFramer()

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._framer.feed(chunk))

    def flush(self) -> bytes:
        """What is left at the end of the stream (an unterminated last event)."""
        return b"".join(self._framer.flush())


class UsageChunkFilter(EventChunker):
    """Whole events, minus the usage-only chunk of a chat-completions stream.

    To log tokens the gateway sets ``stream_options.include_usage`` upstream even when the
    client did not (:func:`request_usage_chunk`); the extra final chunk (``"choices": []``
    plus ``usage``) is then removed here so the client receives exactly the stream it asked
    for. Only an event naming a ``"usage"`` object is parsed.
    """

    __slots__ = ("_dropped",)

    def __init__(self) -> None:
        super().__init__()
        self._dropped = False

    def feed(self, chunk: bytes) -> bytes:
        return self._keep(self._framer.feed(chunk))

    def flush(self) -> bytes:
        return self._keep(self._framer.flush())

    def _keep(self, events: list[bytes]) -> bytes:
        kept: list[bytes] = []
        for event in events:
            if self._dropped and event == b"\n":
                continue  # the tail of the dropped event's final \r\n
            self._dropped = _is_usage_only(event)
            if not self._dropped:
                kept.append(event)
        return b"".join(kept)


def request_usage_chunk(payload: dict[str, object]) -> bool:
    """Ask upstream for the usage chunk of a streamed chat (to log its tokens).

    Sets ``stream_options.include_usage`` in ``payload`` unless the client did already; True
    when it was set here: the body must be re-encoded and the chunk stripped
    (:class:`UsageChunkFilter`) so that the client gets the stream it asked for.
    """
    options = payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return False
    payload["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return True


def _is_usage_only(event: bytes) -> bool:
    if b'"usage"' not in event or _USAGE_OBJECT.search(event) is None:
        return False
    data = [
        line[5:] for line in event.splitlines() if line.startswith(b"data:")
    ]
    if not data:
        return False
    try:
        payload = orjson.loads(b"\n".join(data))
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(payload, dict)
        and payload.get("choices") == []
        and isinstance(payload.get("usage"), dict)
    )
