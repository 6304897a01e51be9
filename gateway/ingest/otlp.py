"""OTLP trace exports decoded into plain spans: protobuf or JSON, compressed or not, bounded.

The OTLP/HTTP specification's two encodings of ``ExportTraceServiceRequest``:

* ``application/x-protobuf``: parsed with the protocol's own message types
  (``opentelemetry-proto``); a body that is not a valid message is refused whole (400).
* ``application/json``: the OTLP/JSON mapping (lower-camel-case field names, trace and span
  ids as hex, 64-bit integers as strings or numbers, enums as integers). Read by hand rather
  than with protobuf's JSON parser, which reads ids as base64 and fails the whole request for
  one bad span. Ids in base64 (protobuf's generic JSON mapping, which some exporters send)
  are accepted too: the lengths tell the two apart.

Every span is checked on its own (ids, times, its encoded size against the per-span limit,
attribute nesting); one that fails is counted as rejected with its reason and the others are
kept, as the OTLP partial-success answer expects. Bodies are decompressed (``gzip``,
``deflate``) with a bound on the output, so a small compressed body cannot expand past the
request limit (a "zip bomb" stops at the limit).
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gateway.jsondepth import depth_message, too_deep

MAX_VALUE_DEPTH = 16
"""Nesting of one attribute value (arrays and key-value lists inside each other)."""
MAX_REASONS = 5
"""Distinct rejection reasons named in one answer's error message."""

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
}  # fmt: skip


class BodyError(Exception):
    """The whole body is unusable: ``status`` (400, 413, 415) and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SpanError(Exception):
    """One span is malformed; the others of its request are kept."""


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class OtelSpan:
    """One span, ids as lower-case hex, attribute values as Python values (str, int, float,
    bool, list, dict; bytes as base64 text). ``resource`` is shared by the spans of one
    ``ResourceSpans``."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[SpanEvent] = field(default_factory=list)
    status_code: int = STATUS_UNSET
    status_message: str = ""
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope: str = ""


@dataclass(slots=True)
class Decoded:
    """The spans of one export, and the rejected ones (a count and up to
    :data:`MAX_REASONS` distinct reasons)."""

    spans: list[OtelSpan] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if reason not in self.reasons and len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.reasons)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decoded per ``Content-Encoding`` (none, ``identity``, ``gzip``, ``deflate``),
    never more than ``limit`` bytes out: past it a 413, whatever the compressed size."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return body
    if name not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(415, f"Unsupported Content-Encoding {encoding!r}; use gzip or none.")
    wbits = 16 + zlib.MAX_WBITS if name != "deflate" else zlib.MAX_WBITS
    if name == "deflate" and body[:1] and body[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate, without the zlib header
    out: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:
            inflater = zlib.decompressobj(wbits)
            chunk = inflater.decompress(rest, limit - size + 1)
            size += len(chunk)
            if size > limit or inflater.unconsumed_tail:
                raise BodyError(413, _too_large(limit, "decompressed "))
            if not inflater.eof:
                raise BodyError(400, f"Truncated {name} body.")
            out.append(chunk)
            rest = inflater.unused_data  # gzip allows several members, one after the other
            if wbits != 16 + zlib.MAX_WBITS:
                break
    except zlib.error as exc:
        raise BodyError(400, f"Body is not valid {name} data: {exc}") from None
    return b"".join(out)


def _too_large(limit: int, what: str = "") -> str:
    return (
        f"The {what}request body is larger than the limit of {limit} bytes "
        "(GATEWAY_OTEL_MAX_BODY_BYTES); export smaller batches."
    )


def decode(body: bytes, content_type: str, max_span_bytes: int) -> Decoded:
    """The spans of an export body in the encoding ``content_type`` names."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-protobuf" or media == "application/protobuf":
        return decode_protobuf(body, max_span_bytes)
    if media == "application/json" or media.endswith("+json"):
        return decode_json(body, max_span_bytes)
    raise BodyError(
        415,
        f"Unsupported Content-Type {content_type!r}; use application/x-protobuf or "
        "application/json.",
    )


def decode_protobuf(body: bytes, max_span_bytes: int) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise BodyError(400, f"Body is not a valid ExportTraceServiceRequest: {exc}") from None
    decoded = Decoded()
    for resource_spans in request.resource_spans:
        try:
            resource = _pb_attributes(resource_spans.resource.attributes)
        except SpanError as exc:
            for scope_spans in resource_spans.scope_spans:
                for _ in scope_spans.spans:
                    decoded.reject(f"resource: {exc}")
            continue
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                try:
                    if span.ByteSize() > max_span_bytes:
                        raise SpanError(_span_too_large(max_span_bytes))
                    decoded.spans.append(_pb_span(span, resource, scope))
                except SpanError as exc:
                    decoded.reject(str(exc))
    return decoded


def _span_too_large(limit: int) -> str:
    return f"span larger than the limit of {limit} bytes (GATEWAY_OTEL_MAX_SPAN_BYTES)"


def _pb_span(span: Span, resource: Mapping[str, Any], scope: str) -> OtelSpan:
    return _checked(
        OtelSpan(
            trace_id=_pb_id(span.trace_id, 16, "trace_id"),
            span_id=_pb_id(span.span_id, 8, "span_id"),
            parent_span_id=(
                _pb_id(span.parent_span_id, 8, "parent_span_id") if span.parent_span_id else ""
            ),
            name=span.name,
            kind=int(span.kind),
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            attributes=_pb_attributes(span.attributes),
            events=[
                SpanEvent(event.name, event.time_unix_nano, _pb_attributes(event.attributes))
                for event in span.events
            ],
            status_code=int(span.status.code),
            status_message=span.status.message,
            resource=resource,
            scope=scope,
        )
    )


def _pb_id(raw: bytes, size: int, name: str) -> str:
    if len(raw) != size:
        raise SpanError(f"{name} must be {size} bytes, got {len(raw)}")
    return raw.hex()


def _pb_attributes(pairs: Sequence[KeyValue]) -> dict[str, Any]:
    return {pair.key: _pb_value(pair.value, 1) for pair in pairs}


def _pb_value(value: AnyValue, depth: int) -> Any:
    if depth > MAX_VALUE_DEPTH:
        raise SpanError(f"attribute value nested deeper than {MAX_VALUE_DEPTH} levels")
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_pb_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def decode_json(body: bytes, max_span_bytes: int) -> Decoded:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, f"Body is not valid JSON: {exc}") from None
    if too_deep(body, document):
        raise BodyError(400, depth_message())
    if not isinstance(document, dict):
        raise BodyError(400, "Body must be a JSON object with 'resourceSpans'.")
    groups = _field(document, "resourceSpans", "resource_spans")
    if groups is None:
        raise BodyError(400, "Missing required field 'resourceSpans'.")
    if not isinstance(groups, list):
        raise BodyError(400, "'resourceSpans' must be an array.")
    decoded = Decoded()
    for group in groups:
        scopes = _field(group, "scopeSpans", "scope_spans") if isinstance(group, dict) else None
        if not isinstance(scopes, list):
            decoded.reject("resourceSpans entry without a 'scopeSpans' array")
            continue
        try:
            resource_object = _field(group, "resource")
            resource = _json_attributes(
                _field(resource_object, "attributes") if isinstance(resource_object, dict) else []
            )
        except SpanError as exc:
            for scope_spans in scopes:
                spans = _field(scope_spans, "spans") if isinstance(scope_spans, dict) else None
                for _ in spans if isinstance(spans, list) else [None]:
                    decoded.reject(f"resource: {exc}")
            continue
        for scope_spans in scopes:
            spans = _field(scope_spans, "spans") if isinstance(scope_spans, dict) else None
            if not isinstance(spans, list):
                decoded.reject("scopeSpans entry without a 'spans' array")
                continue
            scope_object = _field(scope_spans, "scope")
            scope = _field(scope_object, "name") if isinstance(scope_object, dict) else ""
            for span in spans:
                try:
                    if len(orjson.dumps(span)) > max_span_bytes:
                        raise SpanError(_span_too_large(max_span_bytes))
                    decoded.spans.append(_json_span(span, resource, str(scope or "")))
                except SpanError as exc:
                    decoded.reject(str(exc))
    return decoded


def _field(obj: Any, camel: str, snake: str | None = None) -> Any:
    """A message field by its JSON name, or its proto name (both are valid OTLP/JSON)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    if value is None and snake is not None:
        value = obj.get(snake)
    return value


def _json_span(span: Any, resource: Mapping[str, Any], scope: str) -> OtelSpan:
    if not isinstance(span, dict):
        raise SpanError("span must be an object")
    name = span.get("name", "")
    if not isinstance(name, str):
        raise SpanError("span 'name' must be a string")
    status = span.get("status") or {}
    if not isinstance(status, dict):
        raise SpanError("span 'status' must be an object")
    events = span.get("events") or []
    if not isinstance(events, list):
        raise SpanError("span 'events' must be an array")
    parent = _field(span, "parentSpanId", "parent_span_id")
    end = _field(span, "endTimeUnixNano", "end_time_unix_nano")
    message = status.get("message") or ""
    return _checked(
        OtelSpan(
            trace_id=_json_id(_field(span, "traceId", "trace_id"), 16, "traceId"),
            span_id=_json_id(_field(span, "spanId", "span_id"), 8, "spanId"),
            parent_span_id=_json_id(parent, 8, "parentSpanId") if parent else "",
            name=name,
            kind=_enum(span.get("kind"), _KIND_NAMES, "kind"),
            start_ns=_uint(_field(span, "startTimeUnixNano", "start_time_unix_nano"), "start"),
            end_ns=_uint(end, "end") if end is not None else 0,
            attributes=_json_attributes(span.get("attributes")),
            events=[_json_event(event) for event in events],
            status_code=_enum(status.get("code"), _STATUS_NAMES, "status.code"),
            status_message=message if isinstance(message, str) else str(message),
            resource=resource,
            scope=scope,
        )
    )


def _json_event(event: Any) -> SpanEvent:
    if not isinstance(event, dict):
        raise SpanError("span event must be an object")
    name = event.get("name", "")
    time_ns = _field(event, "timeUnixNano", "time_unix_nano")
    return SpanEvent(
        str(name),
        _uint(time_ns, "event time") if time_ns is not None else 0,
        _json_attributes(event.get("attributes")),
    )


def _json_id(value: Any, size: int, name: str) -> str:
    """Hex (the OTLP/JSON rule) or base64 (protobuf's generic mapping) of ``size`` bytes."""
    if not isinstance(value, str) or not value:
        raise SpanError(f"missing {name}")
    if len(value) == size * 2:
        try:
            return bytes.fromhex(value).hex()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise SpanError(f"{name} must be {size * 2} hex digits, got {value[:40]!r}")
    return raw.hex()


def _uint(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise SpanError(f"{name} time must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    elif value is None:
        raise SpanError(f"missing {name} time")
    else:
        raise SpanError(f"{name} time must be an integer of nanoseconds, got {value!r}")
    if number < 0 or number >= 2**64:
        raise SpanError(f"{name} time out of range")
    return number


def _enum(value: Any, names: Mapping[str, int], field_name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise SpanError(f"invalid {field_name} {value!r}")


def _json_attributes(pairs: Any) -> dict[str, Any]:
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise SpanError("'attributes' must be an array of {key, value}")
    out: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise SpanError("attribute without a string 'key'")
        out[pair["key"]] = _json_value(pair.get("value"), 1)
    return out


def _json_value(value: Any, depth: int) -> Any:
    if depth > MAX_VALUE_DEPTH:
        raise SpanError(f"attribute value nested deeper than {MAX_VALUE_DEPTH} levels")
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise SpanError("attribute value must be an AnyValue object")
    if "stringValue" in value or "string_value" in value:
        text = _field(value, "stringValue", "string_value")
        return text if isinstance(text, str) else str(text)
    if "boolValue" in value or "bool_value" in value:
        return bool(_field(value, "boolValue", "bool_value"))
    if "intValue" in value or "int_value" in value:
        number = _field(value, "intValue", "int_value")
        try:
            return int(number)
        except (TypeError, ValueError):
            raise SpanError(f"intValue {number!r} is not an integer") from None
    if "doubleValue" in value or "double_value" in value:
        number = _field(value, "doubleValue", "double_value")
        try:
            double = float(number)
        except (TypeError, ValueError):
            raise SpanError(f"doubleValue {number!r} is not a number") from None
        return double if math.isfinite(double) else None
    if "arrayValue" in value or "array_value" in value:
        items = _field(_field(value, "arrayValue", "array_value"), "values") or []
        if not isinstance(items, list):
            raise SpanError("arrayValue.values must be an array")
        return [_json_value(item, depth + 1) for item in items]
    if "kvlistValue" in value or "kvlist_value" in value:
        pairs = _field(_field(value, "kvlistValue", "kvlist_value"), "values") or []
        if not isinstance(pairs, list):
            raise SpanError("kvlistValue.values must be an array")
        out: dict[str, Any] = {}
        for pair in pairs:
            if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
                raise SpanError("kvlistValue entry without a string 'key'")
            out[pair["key"]] = _json_value(pair.get("value"), depth + 1)
        return out
    if "bytesValue" in value or "bytes_value" in value:
        return str(_field(value, "bytesValue", "bytes_value"))
    raise SpanError(f"unknown attribute value type {sorted(value)[:3]}")


def _checked(span: OtelSpan) -> OtelSpan:
    """The checks both encodings share."""
    if span.trace_id == "0" * 32:
        raise SpanError("trace id is all zeros")
    if span.span_id == "0" * 16:
        raise SpanError("span id is all zeros")
    if span.start_ns <= 0:
        raise SpanError("missing start time")
    if span.end_ns and span.end_ns < span.start_ns:
        span.end_ns = span.start_ns  # clocks disagree: latency 0, not a rejected span
    if span.parent_span_id == "0" * 16:
        span.parent_span_id = ""
    return span
