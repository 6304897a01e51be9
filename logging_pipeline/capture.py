"""What the request path records about one request: raw facts only, no parsing.

A :class:`Capture` is filled in while the request is served (ids, clock readings, the bytes
that went up and came back) and handed to the batch writer when the response is finished.
Everything that costs CPU — JSON parsing, usage extraction, stream reconstruction, token
estimates, cost — happens later, in the writer (see :mod:`logging_pipeline.record`). The
gateway fills the ``Helicone-*`` facts (user id, properties, omit flags…) from the options it
parsed once (``gateway/context.py``); this package interprets no request header. It keeps
them all, and the provider's response headers, by reference only (``request_headers``,
``response_headers``): the writer decodes and redacts them (:mod:`logging_pipeline.headers`).
"""

from __future__ import annotations

import base64
import operator
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

_BYTES_FIELDS = ("request_body", "response_body")
_HEADER_FIELDS = ("request_headers", "response_headers")


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
    wire: str = "openai"
    """The wire format of ``response_body`` (the provider's own answer): picks its reader."""
    attempts: list[tuple[str, int, int]] = field(default_factory=list)
    """Every upstream attempt of a routed request: (source, status, latency ms), in order."""
    cache_reference_id: str | None = None
    """A cache hit: the id of the request whose answer was replayed (None: not a hit)."""
    cache_saved_latency_ms: int = 0
    """A cache hit: that request's latency, which the hit saved."""
    reported_usage: dict[str, int] | None = None
    """Token counts a client reported with a logged (not proxied) call, as
    :class:`~providers.usage.Usage` field names: used instead of reading the response body
    (``gateway/ingest``). None: read usage from the body, as for proxied requests."""
    prompt_id: str = ""
    """A request assembled from a managed prompt (``prompt_id`` in the body): the prompt's
    short id. Empty: none (the legacy ``Helicone-Prompt-Id`` header is read by the writer)."""
    prompt_version: str = ""
    """That prompt's version id."""
    prompt_inputs: str = ""
    """The request's ``inputs``, as JSON (which inputs produced this answer)."""
    prompt_environment: str = ""
    """The ``environment`` the request asked for (empty: none)."""
    reported_cost: int | None = None
    """A logged call's cost as its client reported it, nano-USD (``gateway/ingest``): above 0
    it is the record's cost, whatever the price table says (a provider's reported cost wins,
    as Helicone's does); 0 means nothing to add: the price table's cost if it prices the
    model, else a known 0 (what a tool or retrieval step, not an LLM call, reports). None:
    the price table's cost, unknown when it has no price (every proxied request)."""
    first_token_reported: bool = False
    """``first_byte_at`` is a time to first token the client measured (a logged call): kept
    for a non-streamed call too. A proxied non-streamed answer's first byte is not one."""
    request_headers: Sequence[tuple[bytes, bytes]] = ()
    """The request's headers as the gateway received them (the ASGI ``scope["headers"]``,
    held by reference: never copied, decoded or redacted on the request path; the writer
    does that, :mod:`logging_pipeline.headers`). Empty: none kept (a logged call)."""
    response_headers: Sequence[tuple[bytes, bytes]] = ()
    """The headers the provider answered with (its ``raw_headers``, by reference; a cache
    hit: the stored answer's). Empty: no provider answer (an error the gateway made, a
    logged call)."""

    def finish(self) -> None:
        if self.finished_at is None:
            self.finished_at = time.perf_counter()

    def to_tuple(self) -> tuple[Any, ...]:
        """Field values in declaration order: the cheapest form to journal for the writer."""
        result: tuple[Any, ...] = _FIELD_VALUES(self)
        return result

    @classmethod
    def from_tuple(cls, values: tuple[Any, ...]) -> Capture:
        """The capture :meth:`to_tuple` gave. Fields are only ever appended, each with a
        default, so a shorter tuple (journaled by an older version) takes the defaults."""
        if not _REQUIRED <= len(values) <= len(_FIELDS):
            raise ValueError(f"a capture has {len(_FIELDS)} fields, got {len(values)} values")
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bodies base64, headers as latin-1 ``[name, value]`` pairs, which
        map every byte to one character and back) for the spill file."""
        data = asdict(self)
        for name in _BYTES_FIELDS:
            data[name] = base64.b64encode(data[name]).decode("ascii")
        for name in _HEADER_FIELDS:
            data[name] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in data[name]]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capture:
        """The capture :meth:`to_json` gave (a dict from an older version lacks the newer
        fields: they take their defaults). ``ValueError`` for malformed headers."""
        values = dict(data)
        for name in _BYTES_FIELDS:
            values[name] = base64.b64decode(values.get(name) or "")
        for name in _HEADER_FIELDS:
            values[name] = _headers_from_json(values.get(name) or [], name)
        return cls(**values)


def _headers_from_json(pairs: Any, name: str) -> list[tuple[bytes, bytes]]:
    """``[[name, value], ...]`` (latin-1 text) back to raw header pairs."""
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        for pair in pairs
    ):
        raise ValueError(f"{name} must be a list of [name, value] strings")
    # Text that is not latin-1 raises UnicodeEncodeError, a ValueError too.
    return [(key.encode("latin-1"), value.encode("latin-1")) for key, value in pairs]


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Capture))
_FIELD_VALUES = operator.attrgetter(*_FIELDS)
_REQUIRED = 22
"""Fields every journaled capture has had (``country_code`` was the last of them)."""
