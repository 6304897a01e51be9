"""From a :class:`~logging_pipeline.capture.Capture` to a ClickHouse row and a body document.

This is where a request's bytes are understood: bodies parsed, usage read (or rebuilt from a
stream, or estimated with tiktoken when the provider gave none), the effective model chosen
(``Helicone-Model-Override`` first), and the cost computed from the model registry.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from logging_pipeline.capture import Capture
from logging_pipeline.estimate import TokenEstimator, prompt_text
from logging_pipeline.headers import stored_headers
from logging_pipeline.schema import INSERT_COLUMNS
from providers.cost import CostResult
from providers.formats import ResponseReader, response_reader
from providers.registry import Registry
from providers.usage import Usage

_NO_USAGE = Usage()
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""Control characters plain text does not hold (an event stream's binary frames do)."""
_ROW = operator.itemgetter(*INSERT_COLUMNS)
"""A dict of column values → the row tuple in ``INSERT_COLUMNS`` order (in C, per record)."""


@dataclass(slots=True)
class BuiltRecord:
    """One row (values in ``INSERT_COLUMNS`` order) and the body document to store, if any.

    ``document`` is the JSON text of ``{"token": …, "request": …, "response": …,
    "request_headers": …, "response_headers": …}``, ready to gzip. The headers are objects
    (name → value, credentials redacted: :mod:`logging_pipeline.headers`) or ``null`` when
    not kept (omitted with their body, none captured, or a document from before headers).
    """

    row: tuple[Any, ...]
    document: bytes | None
    capture: Capture


def _parse(raw: bytes) -> tuple[Any, bytes]:
    """The parsed body and its JSON text (the bytes themselves when they are JSON already).

    Reusing the received bytes in the stored document saves serialising every body again.
    """
    if not raw:
        return None, b"null"
    try:
        return orjson.loads(raw), raw
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace")
        return text, orjson.dumps(text)


def _stream_document(raw: bytes, reconstructed: Any) -> bytes:
    """``{"stream": <raw SSE>, "reconstructed": …}``; the raw stream alone if that is unwritable.

    The reconstruction copies values out of the chunks, and orjson writes at most 254 levels
    while it reads 1,024: an upstream's deeply nested chunk must not cost the record its body.
    """
    stream = raw.decode("utf-8", "replace")
    try:
        return orjson.dumps({"stream": stream, "reconstructed": reconstructed})
    except orjson.JSONEncodeError:
        return orjson.dumps({"stream": stream, "reconstructed": None})


def body_token(capture: Capture) -> int:
    """A 64-bit token of one capture, stored on its row and in its body document (non-zero).

    A client may reuse ``Helicone-Request-Id``: rows and bodies are keyed by (organization,
    request id), and a later request's body replaces an earlier one's, in whatever order the
    writers get to them. The query API shows a body only with the row whose token it carries
    (else it reports the body as replaced), so metadata and body always come from one
    request. The token derives from the capture's two clock readings at the start (wall and
    monotonic), which no two captures share, and is the same whenever the capture is rebuilt
    (a spill replay); it costs ~0.2 µs per record.
    """
    return (hash((capture.created_at, capture.started)) & 0xFFFF_FFFF_FFFF_FFFF) or 1


def _headers_json(raw: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The document's headers object (credentials redacted, values bounded), or ``null``."""
    return orjson.dumps(stored_headers(raw))


def _attempts(capture: Capture) -> str:
    if not capture.attempts:
        return ""
    return orjson.dumps(
        [
            {"source": source, "status": status, "latency_ms": latency}
            for source, status, latency in capture.attempts
        ]
    ).decode()


def _ms(start: float, end: float | None) -> int | None:
    return None if end is None else max(0, round((end - start) * 1000))


def _answer_text(reader: ResponseReader, response: Any) -> str:
    """The completion text of a whole answer for an estimate: a plain-text answer (not JSON:
    a custom model's, or a logged ``textBody``) is its own text."""
    return response if isinstance(response, str) else reader.completion_text(response)


def _plain_stream_text(raw: bytes) -> str:
    """A recorded "stream" no stream reader understood: its text when it is plain text (a
    logged ``textBody`` a client streamed and joined), else "" (SSE no reader understood, or
    an event stream's binary frames: not text to count)."""
    if raw.startswith(b"data:") or b"\ndata:" in raw or _CONTROL.search(raw) is not None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _cost(capture: Capture, prices: Registry, model: str, usage: Usage | None) -> CostResult:
    """The price table's cost, unless the client reported one (:attr:`Capture.reported_cost`:
    above 0 it wins; 0 is a known 0 when the table has no price)."""
    reported = capture.reported_cost
    if reported is not None and reported > 0:
        return CostResult(nano_usd=reported, known=True)
    cost = prices.cost(capture.provider, model, usage or _NO_USAGE)
    if reported is not None and not cost.known:
        return CostResult(nano_usd=0, known=True)
    return cost


def _reported(counts: dict[str, int]) -> Usage:
    """A client's reported counts as :class:`Usage` (unknown names ignored, negatives 0)."""
    return Usage(*(max(0, int(counts.get(name) or 0)) for name in Usage._fields))


def build_record(
    capture: Capture, prices: Registry, estimator: TokenEstimator, location: str = "local"
) -> BuiltRecord:
    """Understand one capture. Never raises for odd bodies: unknown shapes just carry no usage.

    ``location`` is the body store's name for the ``storage_location`` column (``omitted``
    when neither body is kept).
    """
    request, request_json = _parse(capture.request_body)
    reader = response_reader(capture.wire)
    response: Any = None
    if capture.is_stream:
        summary = reader.summarise_stream(capture.response_body)
        usage = summary.usage
        response_model = summary.model or ""
        completion_text: str | None = summary.text
        if summary.final is None and summary.usage is None and not completion_text:
            completion_text = None  # no reader understood it: plain text, maybe (below)
        response_json = _stream_document(capture.response_body, summary.final)
    else:
        response, response_json = _parse(capture.response_body)
        usage = reader.usage(response)
        response_model = reader.model(response) or ""
        completion_text = None  # only needed for an estimate; extracted then

    if capture.reported_usage is not None:
        usage = _reported(capture.reported_usage)
    estimated = False
    if usage is None and 200 <= capture.status < 300:
        if completion_text is None:
            completion_text = (
                _plain_stream_text(capture.response_body)
                if capture.is_stream
                else _answer_text(reader, response)
            )
        usage = Usage(
            prompt_tokens=estimator.count(prompt_text(request)),
            completion_tokens=estimator.count(completion_text),
        )
        estimated = True

    request_model = capture.request_model
    if not request_model and isinstance(request, dict) and isinstance(request.get("model"), str):
        request_model = request["model"]  # passthrough mode does not parse bodies in-flight
    model = capture.model_override or response_model or request_model
    cost = _cost(capture, prices, model, usage)
    # A cache hit was not paid for: its cost is 0, and the price of the answer it replayed
    # (the same answer, so the same usage) is what it saved.
    hit = capture.cache_reference_id is not None

    document: bytes | None = None
    token = body_token(capture)
    if not (capture.omit_request and capture.omit_response):
        document = b"".join(
            (
                b'{"token":%d,"request":' % token,
                b"null" if capture.omit_request else request_json,
                b',"response":',
                b"null" if capture.omit_response else response_json,
                b',"request_headers":',
                b"null" if capture.omit_request else _headers_json(capture.request_headers),
                b',"response_headers":',
                b"null" if capture.omit_response else _headers_json(capture.response_headers),
                b"}",
            )
        )

    created = datetime.fromtimestamp(capture.created_at, UTC)
    finished = None
    latency = _ms(capture.started, capture.finished_at)
    if latency is not None:
        finished = datetime.fromtimestamp(capture.created_at + latency / 1000, UTC)
    # The row is written as a tuple in ``INSERT_COLUMNS`` order, each value named in a
    # comment: a dict of the 45 values and ``_ROW`` over it cost ~1.6 µs more per record
    # (``tests/test_record_fastpaths.py`` compares every column with that form).
    counts = _NO_USAGE if usage is None else usage
    properties = capture.properties
    row = (
        capture.organization_id,  # organization_id
        capture.request_id,  # request_id
        created,  # request_created_at
        finished,  # response_created_at
        latency,  # latency
        (  # time_to_first_token
            _ms(capture.started, capture.first_byte_at)
            if capture.is_stream or capture.first_token_reported
            else None
        ),
        capture.status,  # status
        model,  # model
        request_model,  # request_model
        response_model,  # response_model
        capture.model_override,  # model_override
        capture.provider,  # provider
        capture.target_url,  # target_url
        capture.path,  # request_path
        capture.user_id,  # user_id
        capture.api_key_id,  # api_key_id
        capture.country_code,  # country_code
        None if usage is None else usage.prompt_tokens,  # prompt_tokens
        None if usage is None else usage.completion_tokens,  # completion_tokens
        counts.cache_write_tokens,  # prompt_cache_write_tokens
        counts.cache_read_tokens,  # prompt_cache_read_tokens
        counts.prompt_audio_tokens,  # prompt_audio_tokens
        counts.completion_audio_tokens,  # completion_audio_tokens
        counts.reasoning_tokens,  # reasoning_tokens
        estimated,  # tokens_estimated
        0 if hit else cost.nano_usd,  # cost
        hit or cost.known,  # cost_known
        properties,  # properties
        capture.cache_enabled,  # cache_enabled
        capture.cache_reference_id,  # cache_reference_id
        capture.is_stream,  # is_stream
        "omitted" if document is None else location,  # storage_location
        len(capture.request_body),  # request_size_bytes
        len(capture.response_body),  # response_size_bytes
        datetime.now(UTC),  # updated_at
        token,  # body_token
        capture.wire,  # wire_format
        _attempts(capture),  # attempts
        cost.nano_usd if hit else 0,  # cache_saved_cost
        capture.cache_saved_latency_ms if hit else 0,  # cache_saved_latency
        capture.prompt_id or properties.get("Helicone-Prompt-Id", ""),  # prompt_id
        capture.prompt_version,  # prompt_version
        capture.prompt_inputs,  # prompt_inputs
        capture.prompt_environment,  # prompt_environment
    )
    return BuiltRecord(row, document, capture)


def fallback_record(capture: Capture) -> BuiltRecord:
    """A row without usage for a capture :func:`build_record` choked on (never drop it)."""
    created = datetime.fromtimestamp(capture.created_at, UTC)
    values: dict[str, Any] = dict.fromkeys(INSERT_COLUMNS)
    values.update(
        organization_id=capture.organization_id,
        request_id=capture.request_id or str(uuid.uuid4()),
        request_created_at=created,
        latency=_ms(capture.started, capture.finished_at),
        status=capture.status,
        model=capture.model_override or capture.request_model,
        request_model=capture.request_model,
        response_model="",
        model_override=capture.model_override,
        provider=capture.provider,
        target_url=capture.target_url,
        request_path=capture.path,
        user_id=capture.user_id,
        api_key_id=capture.api_key_id,
        prompt_cache_write_tokens=0,
        prompt_cache_read_tokens=0,
        prompt_audio_tokens=0,
        completion_audio_tokens=0,
        reasoning_tokens=0,
        tokens_estimated=False,
        cost=max(0, capture.reported_cost or 0),
        cost_known=bool(capture.reported_cost and capture.reported_cost > 0),
        properties=capture.properties,
        cache_enabled=capture.cache_enabled,
        cache_reference_id=capture.cache_reference_id,
        cache_saved_cost=0,
        cache_saved_latency=capture.cache_saved_latency_ms,
        is_stream=capture.is_stream,
        storage_location="omitted",
        request_size_bytes=len(capture.request_body),
        response_size_bytes=len(capture.response_body),
        updated_at=datetime.now(UTC),
        body_token=body_token(capture),
        wire_format=capture.wire,
        attempts=_attempts(capture),
        **_prompt_columns(capture),
    )
    return BuiltRecord(_ROW(values), None, capture)


def _prompt_columns(capture: Capture) -> dict[str, str]:
    """The managed prompt of the request; the legacy ``Helicone-Prompt-Id`` header (kept in
    the properties) fills ``prompt_id`` when the body named none (E.6 step 6)."""
    return {
        "prompt_id": capture.prompt_id or capture.properties.get("Helicone-Prompt-Id", ""),
        "prompt_version": capture.prompt_version,
        "prompt_inputs": capture.prompt_inputs,
        "prompt_environment": capture.prompt_environment,
    }
