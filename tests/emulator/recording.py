"""What the emulator received, kept so tests can assert on what the gateway sent upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class RecordedRequest:
    """One request exactly as it arrived (header names lower-cased, body undecoded)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client_port: int | None = None
    """The sender's TCP port: requests with the same port came over one connection."""
    raw_path: str = ""
    """The path as sent, percent-encoding kept (Bedrock's model ids: ``%3A``)."""

    @property
    def json(self) -> Any:
        """The body parsed as JSON (raises if it is not JSON)."""
        return orjson.loads(self.body)
