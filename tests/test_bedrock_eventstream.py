"""The Bedrock event-stream framer hands botocore's parser one message at a time: it must
frame exactly what botocore's buffer fed whole network reads would (the straightforward way,
the reference here), for any stream cut anywhere — corrupt ones included, with the problem
reported at the same point."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer, ParserError

from providers.bedrock.eventstream import CORRUPT, EventStreamFramer, _event
from tests.emulator import eventstream


def reference(chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    """botocore's buffer given each read whole: the events, then the corruption's name."""
    buffer = EventStreamBuffer()
    out: list[tuple[str | None, bytes]] = []
    for chunk in chunks:
        buffer.add_data(chunk)
        try:
            out.extend(_event(message) for message in buffer)
        except (ParserError, struct.error) as exc:
            out.append((CORRUPT, type(exc).__name__.encode()))
            break
    return out


def framed(chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    framer = EventStreamFramer()
    out: list[tuple[str | None, bytes]] = []
    for chunk in chunks:
        for name, data in framer.feed(chunk):
            if name == CORRUPT and data.startswith(b'{"message":"The Bedrock event stream is'):
                data = data.rsplit(b"(", 1)[1].split(b")", 1)[0]  # the parser error's name
            out.append((name, data))
    assert framer.feed(b"more") == [] or out[-1][0] != CORRUPT  # nothing after corruption
    return out


def _stream(rng: random.Random) -> bytes:
    messages = []
    for i in range(rng.randint(1, 30)):
        size = rng.choice((0, 1, 10, 200, 3000))
        if rng.random() < 0.1:
            messages.append(eventstream.exception("throttlingException", "x" * size))
        elif rng.random() < 0.05:
            messages.append(eventstream.encode_message({}, b""))  # the smallest message
        else:
            messages.append(eventstream.event("contentBlockDelta", {"i": i, "t": "y" * size}))
    return b"".join(messages)


def _cuts(rng: random.Random, raw: bytes) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(0, 25))))
    if rng.random() < 0.3:  # some reads a byte or three long
        start = rng.randrange(len(raw))
        points = sorted({*points, *range(start, min(start + 6, len(raw)))} - {0})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


@pytest.mark.parametrize("seed", range(40))
def test_the_framer_frames_what_botocore_s_buffer_fed_whole_reads_does(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10):
        raw = bytearray(_stream(rng))
        damage = rng.random()
        if damage < 0.3:  # a flipped byte anywhere: a length, a header, a CRC…
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        elif damage < 0.4:  # cut short
            del raw[rng.randrange(1, len(raw)) :]
        chunks = _cuts(rng, bytes(raw))
        assert framed(chunks) == reference(chunks)


def _prelude(total: int, headers: int = 0) -> bytes:
    prelude = struct.pack("!II", total, headers)
    return prelude + struct.pack("!I", zlib.crc32(prelude))


@pytest.mark.parametrize(
    "bad",
    [
        _prelude(8),  # a valid prelude CRC over a length no message has
        _prelude(0),  # botocore's own checks miss this one (its parser fails on a slice)
        _prelude(1 << 30),  # a payload past botocore's limit
        _prelude(100, 1 << 20),  # headers past its limit
        b"\x00\x00\x00\x20" + b"\x00" * 40,  # a prelude CRC that does not match
    ],
)
def test_impossible_lengths_are_reported_as_botocore_reports_them(bad: bytes) -> None:
    good = eventstream.event("messageStart", {"role": "assistant"})
    for cut in range(1, len(good) + len(bad)):
        raw = good + bad
        chunks = [raw[:cut], raw[cut:]]
        got = framed(chunks)
        assert got == reference(chunks)
        assert got[0] == ("messageStart", b'{"role":"assistant"}')


class SpyBuffer(EventStreamBuffer):  # type: ignore[misc]  # botocore is untyped
    """botocore's buffer, noting the size of every hand-over."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[int] = []

    def add_data(self, data: bytes) -> None:
        self.given.append(len(data))
        super().add_data(data)


def test_botocore_s_buffer_is_handed_one_message_at_a_time() -> None:
    """600 messages in one read come out whole and in order, and botocore's buffer never
    holds more than one message (it copies all it holds past a message after each one)."""
    messages = [eventstream.event("contentBlockDelta", {"i": i}) for i in range(600)]
    raw = b"".join(messages)
    framer = EventStreamFramer()
    spy = framer._buffer = SpyBuffer()
    events = framer.feed(raw[:1000]) + framer.feed(raw[1000:])
    assert [data for _, data in events] == [b'{"i":%d}' % i for i in range(600)]
    assert max(spy.given) <= max(len(m) for m in messages)
    assert sum(spy.given) == len(raw)
