"""Reading a complete SSE body (the log writer's view of a stream; the relay frames live
streams with :class:`gateway.sse.SSEFramer`)."""

from __future__ import annotations


def iter_sse_data(text: bytes) -> list[tuple[str | None, bytes]]:
    """``(event name, data)`` of every event in a complete SSE body."""
    events: list[tuple[str | None, bytes]] = []
    normalised = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for block in normalised.split(b"\n\n"):
        name: str | None = None
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
        if data:
            events.append((name, b"\n".join(data)))
    return events


