"""What the request path records about one request: raw facts only, no parsing.

A :class:`Capture` is filled in while the request is served (ids, clock readings, the bytes
that went up and came back) and handed to the batch writer when the response is finished.
Everything that costs CPU — JSON parsing, usage extraction, stream reconstruction, token
estimates, cost — happens later, in the writer (see :mod:`logging_pipeline.record`).
"""

from __future__ import annotations

import base64
import operator
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

_PROPERTY_PREFIX = "helicone-property-"
_SESSION_HEADERS = {
    "helicone-session-id": "Helicone-Session-Id",
    "helicone-session-path": "Helicone-Session-Path",
    "helicone-session-name": "Helicone-Session-Name",
    "helicone-prompt-id": "Helicone-Prompt-Id",
}
_COUNTRY_HEADERS = ("cf-ipcountry", "cloudfront-viewer-country", "x-vercel-ip-country",
                    "x-country-code")
_BYTES_FIELDS = ("request_body", "response_body")


@dataclass(slots=True)
class Capture:
    """Raw facts of one request, cheap to fill on the hot path."""

    request_id: str
    organization_id: str
    api_key_id: str
    path: str
    created_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    provider: str = ""
    target_url: str = ""
    request_model: str = ""
    request_body: bytes = b""
    status: int = 0
    response_body: bytes = b""
    is_stream: bool = False
    first_byte_at: float | None = None
    finished_at: float | None = None
    user_id: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    model_override: str = ""
    omit_request: bool = False
    omit_response: bool = False
    cache_enabled: bool = False
    country_code: str | None = None

    def finish(self) -> None:
        if self.finished_at is None:
            self.finished_at = time.perf_counter()

    def to_tuple(self) -> tuple[Any, ...]:
        """Field values in declaration order: the cheapest form to pickle to the writer."""
        result: tuple[Any, ...] = _FIELD_VALUES(self)
        return result

    @classmethod
    def from_tuple(cls, values: tuple[Any, ...]) -> Capture:
        """The capture :meth:`to_tuple` gave (both sides run the same code: same fields)."""
        if len(values) != len(_FIELDS):
            raise ValueError(f"a capture has {len(_FIELDS)} fields, got {len(values)} values")
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bodies base64) for the spill file."""
        data = asdict(self)
        for name in _BYTES_FIELDS:
            data[name] = base64.b64encode(data[name]).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capture:
        values = dict(data)
        for name in _BYTES_FIELDS:
            values[name] = base64.b64decode(values.get(name) or "")
        return cls(**values)


def apply_headers(capture: Capture, headers: dict[str, str]) -> None:
    """Copy the ``Helicone-*`` facts a record keeps from the (lower-cased) request headers.

    Custom property keys arrive lower-cased (HTTP header names are case-insensitive and ASGI
    lower-cases them), so they are stored lower-cased; the reserved session/prompt keys use
    their canonical casing because queries name them that way (``Helicone-Session-Id``).
    """
    properties: dict[str, str] = {}
    for name, value in headers.items():
        if not name.startswith("helicone-"):
            continue
        if name.startswith(_PROPERTY_PREFIX) and len(name) > len(_PROPERTY_PREFIX):
            properties[name[len(_PROPERTY_PREFIX) :]] = value
        elif name in _SESSION_HEADERS:
            properties[_SESSION_HEADERS[name]] = value
    capture.properties = properties
    capture.user_id = headers.get("helicone-user-id", "")
    capture.model_override = headers.get("helicone-model-override", "")
    capture.omit_request = headers.get("helicone-omit-request", "").lower() == "true"
    capture.omit_response = headers.get("helicone-omit-response", "").lower() == "true"
    capture.cache_enabled = headers.get("helicone-cache-enabled", "").lower() == "true"
    for name in _COUNTRY_HEADERS:
        country = headers.get(name)
        if country and len(country) == 2 and country.isalpha():
            capture.country_code = country.upper()
            break


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Capture))
_FIELD_VALUES = operator.attrgetter(*_FIELDS)
