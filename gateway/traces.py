"""OpenTelemetry traces: one span per request, in the GenAI semantic conventions.

Off by default. With ``GATEWAY_TRACES_ENABLED=true`` and an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), every request the
gateway records becomes one ``SERVER`` span exported over OTLP/HTTP (protobuf) by the official
SDK, so that the gateway shows up in the tracing system a team already runs: a client that sends
``traceparent`` sees the gateway's span under its own.

Where the span comes from, and why there:

* **The request's record.** :meth:`gateway.context.RequestContext.log` hands the finished
  capture (the raw facts the request log is built from) to :meth:`RequestTracer.submit`: one
  place for every route, and a span whose start is the request's arrival and whose end is the
  moment the record was finished.
* **Built off the event loop.** ``submit`` only queues the capture (a bounded queue; when it
  is full the span is dropped and counted, never the request delayed). A thread reads the
  answer as the log writer does — usage, models, finish reasons, from the provider's own wire
  format — creates the span with its recorded start and end times, and the SDK's batch
  processor exports it from its own thread.
* **No content unless asked.** Attributes are ids, models, counts, statuses and timings.
  Messages (``gen_ai.input.messages``, ``gen_ai.output.messages``) are added only with
  ``GATEWAY_TRACES_CAPTURE_CONTENT=true``, and never for a request that asked to omit its
  request or response body (``Helicone-Omit-Request`` / ``-Response``). Keys, user ids and
  custom properties are never attributes.

Everything else the SDK reads from the standard ``OTEL_*`` variables itself (export headers,
timeout, compression, sampler, resource attributes, attribute length limits).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from yarl import URL

from logging_pipeline.capture import Capture
from providers.formats import response_reader

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from gateway.context import RequestContext
    from gateway.settings import Settings

logger = logging.getLogger("gateway.traces")

QUEUE_SIZE = 10_000
"""Captures waiting for their span; past it a span is dropped (and counted)."""

SHUTDOWN_SECONDS = 5.0
"""How long closing waits for the queue and the last export."""

OTLP_PROTOCOL = "http/protobuf"
"""The one OTLP protocol exported (``OTEL_EXPORTER_OTLP_PROTOCOL`` may say it, or nothing)."""

GEN_AI_SYSTEMS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "google-ai-studio": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
"""Provider slug → the semantic conventions' well-known ``gen_ai.system`` value; any other
provider (``groq``, ``deepseek``, ``perplexity``, a custom target…) is named by its slug."""


def traces_endpoint(settings: Settings) -> str | None:
    """The OTLP/HTTP traces URL: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces`` (the OTLP exporter specification)."""
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return None


def traces_problems(settings: Settings) -> list[str]:
    """What keeps traces from working as configured, one line each (none when traces are off)."""
    if not settings.traces_enabled:
        return []
    problems = []
    if traces_endpoint(settings) is None:
        problems.append(
            "GATEWAY_TRACES_ENABLED=true needs an OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT "
            "(e.g. http://otel-collector:4318) or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
    for variable, value in (
        ("OTEL_EXPORTER_OTLP_ENDPOINT", settings.otel_exporter_otlp_endpoint),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", settings.otel_exporter_otlp_traces_endpoint),
    ):
        if value and not _is_http_url(value):
            problems.append(f"{variable} must be an absolute http(s) URL (the collector's "
                            "OTLP/HTTP address, e.g. http://otel-collector:4318)")
    protocol = settings.otel_exporter_otlp_protocol
    if protocol and protocol != OTLP_PROTOCOL:
        problems.append(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: the gateway exports traces over "
            f"OTLP/HTTP only; set it to {OTLP_PROTOCOL} (or unset it) and point the endpoint "
            "at the collector's HTTP port (4318)"
        )
    return problems


def _is_http_url(value: str) -> bool:
    try:
        url = URL(value)
    except (ValueError, TypeError):
        return False
    return url.absolute and url.scheme in ("http", "https") and bool(url.raw_host)


@dataclass(frozen=True, slots=True)
class _Finished:
    """What a span is built from: the capture and the request facts the capture lacks."""

    capture: Capture
    route: str
    traceparent: str | None
    tracestate: str | None
    retries: int
    overhead_ms: float | None
    start_ns: int
    end_ns: int


class RequestTracer:
    """The span exporter of one gateway process (see the module docstring).

    Created by the runtime when traces are on; :meth:`start` builds the SDK's provider and the
    span thread, :meth:`close` drains both (bounded).
    """

    def __init__(self, settings: Settings) -> None:
        endpoint = traces_endpoint(settings)
        if endpoint is None:
            raise ValueError(traces_problems(settings)[0])
        self.endpoint = endpoint
        self.headers = settings.otel_exporter_otlp_headers
        self.service_name = settings.otel_service_name
        self.capture_content = settings.traces_capture_content
        self.dropped = 0
        """Spans not created because the queue was full."""
        self._queue: queue.Queue[_Finished | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None

    def start(self) -> None:
        # Imported here: a gateway with traces off never loads the SDK.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.util.re import parse_env_headers

        from gateway import __version__

        resource = Resource.create(
            {"service.name": self.service_name, "service.version": __version__}
        )
        headers = None
        if self.headers is not None:  # the specification's format: key=value pairs, URL-encoded
            headers = parse_env_headers(self.headers.get_secret_value(), liberal=True)
        exporter = OTLPSpanExporter(endpoint=self.endpoint, headers=headers)
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("llm-gateway", __version__)
        self._thread = threading.Thread(target=self._run, name="gateway-traces", daemon=True)
        self._thread.start()

    def submit(self, ctx: RequestContext, capture: Capture) -> None:
        """Queue a finished request for its span (on the event loop: a put, nothing more).

        The capture is not changed after it is finished, so the thread may read it."""
        traceparent, tracestate = ctx.trace_parent or (None, None)
        # The request's clock readings (perf_counter) placed on the wall clock: the capture's
        # own wall time is taken when it is created, after authentication, not at arrival.
        wall, now = time.time_ns(), time.perf_counter()
        end = wall - int((now - (capture.finished_at or now)) * 1e9)
        start = min(end, wall - int((now - capture.started) * 1e9))
        finished = _Finished(
            capture, ctx.route, traceparent, tracestate, ctx.retries, ctx.overhead_ms, start, end
        )
        try:
            self._queue.put_nowait(finished)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.warning("trace queue full: %d span(s) dropped so far", self.dropped)

    def close(self) -> None:
        """Build the spans still queued, export them, stop (bounded; blocks: run in a thread)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                self._queue.put(None, timeout=SHUTDOWN_SECONDS)
            except queue.Full:
                pass
            thread.join(SHUTDOWN_SECONDS)
        provider, self._provider = self._provider, None
        if provider is not None:
            provider.force_flush(int(SHUTDOWN_SECONDS * 1000))
            provider.shutdown()

    def _run(self) -> None:
        while True:
            finished = self._queue.get()
            if finished is None:
                return
            try:
                self._span(finished)
            except Exception:  # one odd answer must not end the thread
                logger.exception("could not build the span of request %s",
                                 finished.capture.request_id)

    def _span(self, finished: _Finished) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        tracer = self._tracer
        assert tracer is not None
        capture = finished.capture
        carrier = {}
        if finished.traceparent:
            carrier["traceparent"] = finished.traceparent
            if finished.tracestate:
                carrier["tracestate"] = finished.tracestate
        parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
        answer = read_answer(capture)
        attributes = span_attributes(finished, answer)
        if self.capture_content:
            attributes.update(content_attributes(capture, answer))
        operation = attributes["gen_ai.operation.name"]
        model = attributes.get("gen_ai.request.model")
        span = tracer.start_span(
            f"{operation} {model}" if model else str(operation),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=finished.start_ns,
        )
        if capture.status >= 500 or capture.status == 0:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=finished.end_ns)


# --- reading the answer (the thread's work) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the provider's answer says, in its own wire format."""

    final: Any
    """The parsed answer (a stream: the object a non-streamed call would have returned)."""
    input_tokens: int | None
    output_tokens: int | None
    model: str
    text: str | None
    """A stream's completion text (a whole answer's is read from ``final`` when needed)."""


def read_answer(capture: Capture) -> Answer:
    """Usage, model and final object of the recorded answer (nothing when it is unreadable)."""
    reader = response_reader(capture.wire)
    if capture.is_stream:
        summary = reader.summarise_stream(capture.response_body)
        usage, final, model, text = summary.usage, summary.final, summary.model, summary.text
    else:
        try:
            final = orjson.loads(capture.response_body) if capture.response_body else None
        except orjson.JSONDecodeError:
            final = None
        usage, model, text = reader.usage(final), reader.model(final), None
    return Answer(
        final,
        None if usage is None else usage.prompt_tokens,
        None if usage is None else usage.completion_tokens,
        model or "",
        text,
    )


def finish_reasons(wire: str, final: Any) -> list[str]:
    """The answer's finish (stop) reasons, as its provider names them."""
    if not isinstance(final, dict):
        return []
    found: Iterable[Any]
    if wire == "anthropic":
        found = [final.get("stop_reason")]
    elif wire == "bedrock":
        found = [final.get("stopReason")]
    elif wire == "gemini":
        candidates = final.get("candidates")
        found = [c.get("finishReason") for c in candidates if isinstance(c, dict)] if isinstance(
            candidates, list
        ) else []
    else:
        choices = final.get("choices")
        if isinstance(choices, list):
            found = [c.get("finish_reason") for c in choices if isinstance(c, dict)]
        else:  # the Responses API: a status, and why it is incomplete
            details = final.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            found = [reason or final.get("status")]
    return [str(reason) for reason in found if isinstance(reason, str) and reason]


def operation_name(path: str) -> str:
    """``gen_ai.operation.name`` from the request path (``chat`` for the chat-like APIs)."""
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return "text_completion"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "generate_content"
    return "chat"


def span_attributes(finished: _Finished, answer: Answer) -> dict[str, Any]:
    """The span's attributes: GenAI conventions first, then the gateway's own."""
    capture = finished.capture
    provider = capture.provider or ""
    system = GEN_AI_SYSTEMS.get(provider, provider or "_OTHER")
    request_model = capture.request_model
    if not request_model and capture.request_body and capture.request_body[:1] == b"{":
        request_model = _request_model(capture.request_body)  # passthrough: not parsed in-flight
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation_name(capture.path),
        "gen_ai.system": system,
        "gen_ai.provider.name": system,
        "http.response.status_code": capture.status,
        "gateway.request_id": capture.request_id,
        "gateway.organization_id": capture.organization_id,
        "gateway.route": finished.route,
        "gateway.stream": capture.is_stream,
        "gateway.attempts": _attempts(capture),
        "gateway.retries": finished.retries,
    }
    if request_model:
        attributes["gen_ai.request.model"] = request_model
    if answer.model:
        attributes["gen_ai.response.model"] = answer.model
    if isinstance(answer.final, dict) and isinstance(answer.final.get("id"), str):
        attributes["gen_ai.response.id"] = answer.final["id"]
    if answer.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = answer.input_tokens
    if answer.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = answer.output_tokens
    reasons = finish_reasons(capture.wire, answer.final)
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    if capture.status >= 400:
        attributes["error.type"] = str(capture.status)
    if provider:
        attributes["gateway.provider"] = provider
    if capture.attempts:
        attributes["gateway.attempt_sources"] = [source for source, _, _ in capture.attempts]
    if capture.cache_enabled:
        attributes["gateway.cache"] = "hit" if capture.cache_reference_id else "miss"
    if finished.overhead_ms is not None:
        attributes["gateway.overhead_ms"] = round(finished.overhead_ms, 3)
    if capture.is_stream and capture.first_byte_at is not None:
        ttft = (capture.first_byte_at - capture.started) * 1000
        attributes["gateway.time_to_first_token_ms"] = round(ttft, 3)
    return attributes


def _attempts(capture: Capture) -> int:
    """Upstream calls made: each routed attempt, else one unless nothing was sent upstream
    (a cache hit, a request refused before it left)."""
    if capture.attempts:
        return len(capture.attempts)
    if capture.cache_reference_id is not None or not (capture.provider or capture.target_url):
        return 0
    return 1


def _request_model(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return model if isinstance(model, str) else ""


# --- content (only when asked) ------------------------------------------------------------------


def content_attributes(capture: Capture, answer: Answer) -> dict[str, str]:
    """``gen_ai.input.messages`` / ``gen_ai.system_instructions`` / ``gen_ai.output.messages``
    (JSON text, the conventions' role-and-parts shape), each unless its body was omitted."""
    attributes: dict[str, str] = {}
    if not capture.omit_request and capture.request_body:
        try:
            request = orjson.loads(capture.request_body)
        except orjson.JSONDecodeError:
            request = None
        if isinstance(request, dict):
            messages = request.get("messages")
            if isinstance(messages, list):
                attributes["gen_ai.input.messages"] = orjson.dumps(
                    [_message(m) for m in messages if isinstance(m, dict)]
                ).decode()
            system = request.get("system")  # Anthropic's top-level system prompt
            if system is not None:
                attributes["gen_ai.system_instructions"] = orjson.dumps(_parts(system)).decode()
    if not capture.omit_response and 200 <= capture.status < 300:
        text = answer.text
        if text is None:
            text = response_reader(capture.wire).completion_text(answer.final)
        reasons = finish_reasons(capture.wire, answer.final)
        output: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
        if reasons:
            output["finish_reason"] = reasons[0]
        attributes["gen_ai.output.messages"] = orjson.dumps([output]).decode()
    return attributes


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    parts = _parts(message.get("content"))
    return {"role": role if isinstance(role, str) else "user", "parts": parts}


def _parts(content: Any) -> list[dict[str, Any]]:
    """Text kept; any other part (an image, a file, a tool call) named by its type only."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for item in content:
            if isinstance(item, dict):
                if isinstance(item.get("text"), str):
                    parts.append({"type": "text", "content": item["text"]})
                else:
                    parts.append({"type": str(item.get("type", "unknown"))})
    return parts
