"""An AWS event-stream *encoder* (the gateway only decodes, with botocore's parser).

One message on the wire (``application/vnd.amazon.eventstream``)::

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers: name length (u8) | name | value type (u8, 7 = string) | value length (u16) | value
    payload
    message CRC32 (u32, of everything before it)

All integers are big-endian; both CRCs are zlib's CRC-32, the message CRC over the prelude
and its CRC too. tests/test_bedrock_emulator.py decodes what this writes with botocore's
:class:`~botocore.eventstream.EventStreamBuffer`, the parser boto3 itself uses.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import Any

import orjson

_STRING = 7
CONTENT_TYPE = "application/vnd.amazon.eventstream"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + struct.pack("!BH", _STRING, len(raw_value))
        + raw_value
    )


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, payload: Any) -> bytes:
    """An ``event`` message, as Bedrock sends each stream event (JSON payload)."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, orjson.dumps(payload))


def exception(exception_type: str, message: str) -> bytes:
    """An ``exception`` message (an error after the stream began)."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, orjson.dumps({"message": message}))
