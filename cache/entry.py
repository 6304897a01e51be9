"""A stored answer and its bytes in the backend.

An entry is the answer as the client received it — status, response headers (the provider's,
less hop-by-hop, as relayed; not the per-request ``Helicone-*`` ones), body — plus what the
request log needs to account for a hit: the id of the request that was answered by the
provider, its provider, model, upstream URL, body format and latency.

A streamed answer is kept as its event sequence: the body bytes and the length of each event
(``events``), so that a replay sends the events one by one, each whole (which is also what
``Helicone-Stream-Force-Format`` asks for). When the gateway had asked upstream for the usage
chunk on the client's behalf, the entry keeps that chunk (the log reads exact tokens from
it) and ``strip_usage`` says to drop it again on replay, as the relay did the first time.

Encoding, chosen to copy the body once and parse only a little JSON on a hit::

    b"GWC1" | 4-byte big-endian length of the header JSON | header JSON | body bytes
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.asgi import RawHeaders

_MAGIC = b"GWC1"
_HEAD = len(_MAGIC) + 4


class EntryFormatError(ValueError):
    """Bytes in the backend that are not an entry (another writer's key, a damaged value)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """The request the provider answered, as the log of a hit needs it."""

    request_id: str
    provider: str = ""
    model: str = ""
    target_url: str = ""
    wire: str = "openai"
    """The format of the stored body (the client's when the gateway translated)."""
    latency_ms: int = 0
    """The original request's time from arrival to its last byte: what a hit saves."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    status: int
    headers: RawHeaders
    body: bytes
    origin: Origin
    events: tuple[int, ...] | None = None
    """Event lengths of a streamed answer (their sum is ``len(body)``); None: a whole one."""
    strip_usage: bool = False

    @property
    def is_stream(self) -> bool:
        return self.events is not None

    def event_chunks(self) -> list[bytes]:
        """The events of a streamed answer, in order."""
        chunks: list[bytes] = []
        start = 0
        body = self.body
        for length in self.events or ():
            chunks.append(body[start : start + length])
            start += length
        return chunks

    def encode(self) -> bytes:
        origin = self.origin
        head = orjson.dumps(
            {
                "s": self.status,
                "h": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in self.headers],
                "e": self.events,
                "x": self.strip_usage,
                "o": [
                    origin.request_id, origin.provider, origin.model, origin.target_url,
                    origin.wire, origin.latency_ms,
                ],
            }
        )
        return b"".join((_MAGIC, len(head).to_bytes(4, "big"), head, self.body))

    @classmethod
    def decode(cls, data: bytes) -> CachedAnswer:
        if not data.startswith(_MAGIC) or len(data) < _HEAD:
            raise EntryFormatError("not a cache entry")
        size = int.from_bytes(data[len(_MAGIC) : _HEAD], "big")
        try:
            head = orjson.loads(data[_HEAD : _HEAD + size])
            request_id, provider, model, target_url, wire, latency = head["o"]
            events = head["e"]
            answer = cls(
                status=int(head["s"]),
                headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in head["h"]],
                body=data[_HEAD + size :],
                origin=Origin(
                    str(request_id), str(provider), str(model), str(target_url), str(wire),
                    int(latency),
                ),
                events=None if events is None else tuple(int(n) for n in events),
                strip_usage=bool(head["x"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise EntryFormatError(f"damaged cache entry: {exc!r}") from exc
        if answer.events is not None and sum(answer.events) != len(answer.body):
            raise EntryFormatError("damaged cache entry: event lengths do not match the body")
        return answer
