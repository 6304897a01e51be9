"""OpenTelemetry ingestion: ``POST /v1/traces`` (OTLP/HTTP) and Helicone's ``POST /v1/trace/log``.

Any OpenTelemetry SDK's OTLP/HTTP exporter can point at the gateway
(``OTEL_EXPORTER_OTLP_ENDPOINT=<gateway>``, ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer
<gateway key>``): its LLM spans become request records, its traces sessions
(:mod:`gateway.ingest.otel`). The two paths take the same bodies (protobuf or JSON, optionally
gzip or deflate) and differ only in the answer:

* ``/v1/traces`` answers as the OTLP/HTTP specification says: ``200`` with an
  ``ExportTraceServiceResponse`` in the request's encoding, its ``partial_success`` naming the
  spans rejected (a malformed span fails alone); a body that cannot be used at all is a
  ``400`` (``413`` over the size limit, ``415`` for another encoding) with a
  ``google.rpc.Status`` body, also in the request's encoding.
* ``/v1/trace/log`` (and ``/v1/trace/log-python``, where ``helicone-async`` for Python sends
  protobuf) answers ``204`` as Helicone documents; errors are Helicone's ``{"data": null,
  "error": "…"}``.

Both need a gateway key allowed to write traces (``trace:write``; a key without scopes may).
Ingestion does not wait for storage: the records are appended to the log journal (a few
microseconds each) and written by the log writer like proxied requests' records, with its
batching, spill and replay. A large or compressed export is decoded in a worker thread (the
journal is still appended to on the event loop). Every answer carries ``Gateway-Spans-Logged`` /
``-Dropped`` / ``-Rejected``: records made, spans that are not LLM, tool or retrieval steps,
spans refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.requests import ClientDisconnect

from gateway.api.envelope import fail
from gateway.errors import GatewayError
from gateway.ingest.access import Caller, Submit, admit, too_large
from gateway.ingest.logged import logged_capture
from gateway.ingest.otel import Mapped, map_spans
from gateway.ingest.otlp import BodyError, Decoded, decode, decompress
from gateway.store import KeyIdentity
from logging_pipeline.capture import Capture

logger = logging.getLogger(__name__)

OTLP_PATH = "/v1/traces"
HELICONE_PATHS = ("/v1/trace/log", "/v1/trace/log-python")
PATHS = frozenset({OTLP_PATH, *HELICONE_PATHS})
"""Every ingestion path; the data plane hands them to this router whatever the headers."""
PROTOBUF = "application/x-protobuf"
RETRY_AFTER_SECONDS = 5
INLINE_BYTES = 64 * 1024
"""Exports up to this size (uncompressed) are decoded on the event loop; larger or compressed
ones in a worker thread, so that a 16 MiB export does not hold up the requests around it."""

_RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 3, 415: 3, 499: 1, 500: 13, 503: 14}
"""HTTP status → ``google.rpc.Code`` of the OTLP error body."""

Authenticate = Callable[[dict[str, str]], Awaitable[KeyIdentity]]


@dataclass(frozen=True, slots=True)
class OtelApiDeps:
    """``authenticate``: lower-cased headers → the caller (401 otherwise); ``sink``: the log
    journal's append, or None while logging is off; the limits of one export (decompressed)
    and of one span (encoded)."""

    authenticate: Authenticate
    sink: Callable[[], Submit | None]
    max_body_bytes: int
    max_span_bytes: int


def otel_router(deps: OtelApiDeps) -> APIRouter:
    router = APIRouter(tags=["Trace"])

    async def ingest(request: Request) -> Response:
        path = request.url.path
        otlp = path == OTLP_PATH
        content_type = request.headers.get("content-type", "")
        protobuf = content_type.split(";", 1)[0].strip().lower() == PROTOBUF
        try:
            identity = await deps.authenticate({k.lower(): v for k, v in request.headers.items()})
            submit = admit(identity, deps.sink())
            raw = await _read(request, deps.max_body_bytes)
            encoding = request.headers.get("content-encoding")
            caller = Caller(identity.org_id, identity.key_id, path)

            def work() -> tuple[Decoded, Mapped, list[Capture]]:
                body = decompress(raw, encoding, deps.max_body_bytes)
                decoded = decode(body, content_type, deps.max_span_bytes)
                mapped = map_spans(decoded, caller)
                return decoded, mapped, [logged_capture(call) for call in mapped.calls]

            if len(raw) > INLINE_BYTES or encoding:
                decoded, mapped, captures = await asyncio.to_thread(work)
            else:
                decoded, mapped, captures = work()
            for capture in captures:  # the journal is appended to on the event loop
                submit(capture)
        except GatewayError as exc:
            return _error(exc.status, exc.message, otlp=otlp, protobuf=protobuf)
        except BodyError as exc:
            return _error(exc.status, exc.message, otlp=otlp, protobuf=protobuf)
        except ClientDisconnect:
            return _error(499, "client disconnected", otlp=otlp, protobuf=protobuf)
        except Exception:
            logger.exception("OTLP ingestion failed: POST %s", path)
            return _error(500, "Internal error while ingesting the export.", otlp=otlp,
                          protobuf=protobuf)  # fmt: skip
        if decoded.rejected:
            logger.info("OTLP export from org %s: %s", identity.org_id, decoded.error_message())
        counts = {
            "gateway-spans-logged": str(len(mapped.calls)),
            "gateway-spans-dropped": str(mapped.dropped),
            "gateway-spans-rejected": str(decoded.rejected),
        }
        if not otlp:
            return Response(status_code=204, headers=counts)
        answer = ExportTraceServiceResponse()
        if decoded.rejected:
            answer.partial_success.rejected_spans = decoded.rejected
            answer.partial_success.error_message = decoded.error_message()
        if protobuf:
            return Response(answer.SerializeToString(), media_type=PROTOBUF, headers=counts)
        document: dict[str, object] = {}
        if decoded.rejected:  # OTLP/JSON: 64-bit integers as strings
            document["partialSuccess"] = {
                "rejectedSpans": str(decoded.rejected),
                "errorMessage": decoded.error_message(),
            }
        return Response(orjson.dumps(document), media_type="application/json", headers=counts)

    router.add_api_route(
        OTLP_PATH, ingest, methods=["POST"], summary="OTLP/HTTP trace export",
        response_class=Response,
    )  # fmt: skip
    for helicone_path in HELICONE_PATHS:
        router.add_api_route(
            helicone_path, ingest, methods=["POST"], summary="Log Trace", status_code=204,
            response_class=Response, include_in_schema=helicone_path == HELICONE_PATHS[0],
        )  # fmt: skip
    return router


async def _read(request: Request, limit: int) -> bytes:
    """The body as sent (compressed or not), 413 from ``Content-Length`` before reading or as
    soon as more than ``limit`` bytes arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BodyError(400, f"Invalid Content-Length header: {declared!r}") from None
        if length > limit:
            raise BodyError(413, _too_large(limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, _too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return too_large(limit, "GATEWAY_OTEL_MAX_BODY_BYTES") + " Export smaller batches."


def _error(status: int, message: str, *, otlp: bool, protobuf: bool) -> Response:
    """An error in the form the path's clients read: Helicone's envelope, or OTLP's
    ``google.rpc.Status`` in the request's encoding."""
    headers = {"retry-after": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    if not otlp:
        response = fail(status, message)
        if headers:
            response.headers.update(headers)
        return response
    rpc = Status(code=_RPC_CODES.get(status, 2), message=message)
    if protobuf:
        return Response(rpc.SerializeToString(), status_code=status, media_type=PROTOBUF,
                        headers=headers)  # fmt: skip
    body = orjson.dumps({"code": rpc.code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def include_otel_api(app: FastAPI, deps: OtelApiDeps) -> None:
    """Mount the ingestion endpoints on ``app`` (the one call :mod:`gateway.app` needs)."""
    app.include_router(otel_router(deps))
