"""Reading ``application/vnd.amazon.eventstream`` bodies incrementally, with botocore's parser.

Bedrock streams (ConverseStream, InvokeModelWithResponseStream) are AWS event streams: binary
messages, each a prelude (total and headers length, CRC32), typed headers, a payload and a
CRC32 of the whole. :class:`EventStreamFramer` hands each *complete* message on as soon as its
last byte arrives (botocore's :class:`~botocore.eventstream.EventStreamBuffer` checks both
CRCs), as an ``(event name, payload)`` pair, the shape the SSE framer gives the chat stream
decoders (:class:`providers.adapter.ChatStreamDecoder`):

* an event (``:message-type: event``): its ``:event-type`` (``contentBlockDelta``, ``chunk``…)
  and its JSON payload;
* an exception (``:message-type: exception``): its ``:exception-type``
  (``throttlingException``…; every such name ends in ``Exception``) and its JSON payload
  ``{"message": …}``;
* an error (``:message-type: error``): its ``:error-code`` and ``{"message": <:error-message>}``.

A corrupt stream (a CRC mismatch, an impossible length) ends the framing with one
``internalServerException`` naming the problem; nothing after it is read.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

logger = logging.getLogger("providers.bedrock")

CONTENT_TYPE = "application/vnd.amazon.eventstream"
CORRUPT = "internalServerException"

Event = tuple[str | None, bytes]


def _event(message: Any) -> Event:
    headers = message.headers
    kind = headers.get(":message-type")
    if kind == "exception":
        return str(headers.get(":exception-type", CORRUPT)), bytes(message.payload)
    if kind == "error":
        text = headers.get(":error-message") or "Bedrock reported an error in the stream."
        return str(headers.get(":error-code", CORRUPT)), orjson.dumps({"message": str(text)})
    name = headers.get(":event-type")
    return (name if isinstance(name, str) else None), bytes(message.payload)


_PRELUDE = 12
"""Total length, headers length (4 bytes each, big-endian), the prelude's CRC32."""
_SMALLEST = _PRELUDE + 4
"""A message with no headers and no payload: the prelude and the message CRC32."""


class EventStreamFramer:
    """Event-stream bytes in (network chunks, cut anywhere), complete messages out.

    botocore's buffer is handed one message at a time (cut at each message's total length,
    the first four bytes of its prelude), never a whole network read: the buffer copies
    everything it holds past a message each time it parses one, which for a read of *n*
    messages is O(n²) copying. botocore still checks every prelude (as soon as it has its 12
    bytes, as before) and every CRC. A length too small to be a message is not cut on: from
    there on the buffer gets the bytes as they come, as it would have anyway, and reports
    what is wrong with them."""

    __slots__ = ("_broken", "_buffer", "_carry", "_owed", "_uncut")

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._broken = False
        self._carry = b""
        """The first bytes (fewer than 4) of a message whose length is not known yet."""
        self._owed = 0
        """How many bytes the message the buffer holds part of still lacks (0: it holds none)."""
        self._uncut = False
        """A length that is no message's was met: the buffer gets everything as it comes."""

    def feed(self, chunk: bytes) -> list[Event]:
        """Every message ``chunk`` completes (:meth:`events`, all at once)."""
        return list(self.events(chunk))

    def events(self, chunk: bytes) -> Iterator[Event]:
        """The messages ``chunk`` completes, each parsed only when the previous one has been
        taken: a translator can send the first before the parser reads the next (one network
        read may hold a whole answer)."""
        if self._broken:
            return
        try:
            yield from self._messages(chunk)
        except (ParserError, struct.error) as exc:  # struct: lengths botocore does not check
            logger.info("corrupt Bedrock event stream: %r", exc)
            self._broken = True
            note = {"message": f"The Bedrock event stream is corrupt ({type(exc).__name__})."}
            yield CORRUPT, orjson.dumps(note)

    def _messages(self, chunk: bytes) -> Iterator[Event]:
        buffer = self._buffer
        if self._uncut:
            buffer.add_data(chunk)
            for message in buffer:
                yield _event(message)
            return
        data = self._carry + chunk if self._carry else chunk
        self._carry = b""
        at, end = 0, len(data)
        if self._owed:  # the rest of the message the buffer holds the start of
            at = min(self._owed, end)
            buffer.add_data(data[:at] if at < end else data)
            self._owed -= at
            for message in buffer:
                yield _event(message)
            if self._owed:
                return
        while end - at >= 4:
            total = int.from_bytes(data[at : at + 4], "big")
            if total < _SMALLEST:
                self._uncut = True
                buffer.add_data(data[at:])
                for message in buffer:
                    yield _event(message)
                return
            stop = at + total
            if stop > end:
                self._owed = stop - end
                stop = end
            buffer.add_data(data[at:stop] if at or stop < end else data)
            at = stop
            for message in buffer:
                yield _event(message)
        if at < end:
            self._carry = data[at:]

    def flush(self) -> list[Event]:
        """The end of the body: an incomplete trailing message is dropped (the decoder's
        ``close`` says the answer was cut)."""
        return []


def iter_events(raw: bytes) -> list[Event]:
    """Every message of a complete (recorded) event-stream body."""
    return EventStreamFramer().feed(raw)
