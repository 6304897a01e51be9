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


class EventStreamFramer:
    """Event-stream bytes in (network chunks, cut anywhere), complete messages out."""

    __slots__ = ("_broken", "_buffer")

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._broken = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Every message ``chunk`` completes (:meth:`events`, all at once)."""
        return list(self.events(chunk))

    def events(self, chunk: bytes) -> Iterator[Event]:
        """The messages ``chunk`` completes, each parsed only when the previous one has been
        taken: a translator can send the first before the parser reads the next (one network
        read may hold a whole answer)."""
        if self._broken:
            return
        self._buffer.add_data(chunk)
        try:
            for message in self._buffer:
                yield _event(message)
        except ParserError as exc:
            logger.info("corrupt Bedrock event stream: %r", exc)
            self._broken = True
            note = {"message": f"The Bedrock event stream is corrupt ({type(exc).__name__})."}
            yield CORRUPT, orjson.dumps(note)

    def flush(self) -> list[Event]:
        """The end of the body: an incomplete trailing message is dropped (the decoder's
        ``close`` says the answer was cut)."""
        return []


def iter_events(raw: bytes) -> list[Event]:
    """Every message of a complete (recorded) event-stream body."""
    return EventStreamFramer().feed(raw)
