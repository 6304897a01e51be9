"""OpenTelemetry spans → :class:`~gateway.ingest.logged.LoggedCall`: one request record per
LLM call (and per tool or retrieval step), one session per trace.

What becomes a record (README "OpenTelemetry ingestion" has the full attribute table):

* **LLM spans** — a chat, text-completion, embeddings or generate-content call, recognised by
  ``gen_ai.operation.name``, OpenLLMetry's ``llm.request.type``, or any model or token-usage
  attribute (``gen_ai.request.model``, ``llm.request.model``, ``gen_ai.usage.*``,
  ``llm.usage.*``). Model, provider (``gen_ai.provider.name`` / ``gen_ai.system`` /
  ``llm.vendor`` mapped to the gateway's provider names), tokens (input, output, cache read
  and write, reasoning), prompts and completions as an OpenAI-shaped body
  (:mod:`gateway.ingest.otel_content`), timing from the span, status from the span status,
  and a reported cost (``gen_ai.usage.cost``) over the price table's.
* **Tool spans** (``gen_ai.operation.name=execute_tool``, ``traceloop.span.kind=tool``) and
  **retrieval spans** (``gen_ai.operation.name=retrieval``, a vector database's
  ``db.system``) — records in Helicone's custom-event shapes (``_type: tool`` / ``vector_db``),
  without tokens and with a known cost of 0, so that a session shows them as its nodes.
* Everything else (workflow, agent, task, HTTP, database spans) — not recorded, counted as
  dropped; their names still make up the session paths of the spans under them. An agent
  span's token totals would double the cost of the LLM calls under it.

Sessions: every record of a trace is in one session, its id the trace id (as a UUID) unless
the span names one (``Helicone-Session-Id``, ``session.id``, ``gen_ai.conversation.id``).
The path is the chain of span names from the trace's root (as far as the spans of the same
export reach) to the span itself — ``/agent/search/chat gpt-4o`` — unless the span names one
(``Helicone-Session-Path``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.context import HELICONE_PREFIX, HeliconeOptions, parse_options
from gateway.ingest.access import Caller
from gateway.ingest.logged import LoggedCall, openai_usage, reported_usd
from gateway.ingest.otel_content import (
    chat_content,
    indexed,
    message_text,
    parse_json,
    tool_definitions,
)
from gateway.ingest.otlp import STATUS_ERROR, Decoded, OtelSpan

logger = logging.getLogger(__name__)

ASSOCIATION = "traceloop.association.properties."
"""OpenLLMetry's association properties (``set_association_properties``, ``helicone-async``'s
``set_properties`` / ``withProperties``): one attribute per property on every span."""
_NAMESPACE = uuid.UUID("5b0c1d3e-7f0a-4c59-9a57-0f7e0c2d6a11")
"""Request ids are uuid5(trace id, span id) in this namespace: an export retried after a
timeout logs the same records again, not new ones."""
MAX_PATH_DEPTH = 64
MAX_SEGMENT_CHARS = 128
"""A span name longer than this is cut in its path segment."""
MAX_PROPERTY_CHARS = 10_000

LLM_OPERATIONS = frozenset({"chat", "text_completion", "completion", "generate_content"})
EMBEDDING_OPERATIONS = frozenset({"embeddings", "embedding"})
NOT_RECORDED = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
TRACELOOP_CONTAINERS = frozenset({"workflow", "task", "agent"})
VECTOR_DATABASES = frozenset({
    "pinecone", "chroma", "chromadb", "qdrant", "milvus", "weaviate", "lancedb", "marqo",
    "pgvector", "vespa", "redis-vector", "elasticsearch-vector", "opensearch-vector",
})  # fmt: skip

PROVIDERS = {
    "openai": "openai", "anthropic": "anthropic", "aws.bedrock": "bedrock",
    "bedrock": "bedrock", "aws": "bedrock", "azure.ai.openai": "azure",
    "az.ai.openai": "azure", "azure": "azure", "azure openai": "azure",
    "azure.ai.inference": "azure", "az.ai.inference": "azure", "gcp.gemini": "google-ai-studio",
    "gemini": "google-ai-studio", "google": "google-ai-studio", "gcp.gen_ai": "google-ai-studio",
    "google-ai-studio": "google-ai-studio", "gcp.vertex_ai": "vertex", "vertex_ai": "vertex",
    "vertexai": "vertex", "vertex ai": "vertex", "vertex": "vertex", "cohere": "cohere",
    "mistral_ai": "mistral", "mistralai": "mistral", "mistral ai": "mistral",
    "mistral": "mistral", "x_ai": "xai", "xai": "xai", "deepseek": "deepseek", "groq": "groq",
    "perplexity": "perplexity", "together": "together", "together ai": "together",
    "togetherai": "together", "fireworks": "fireworks", "ollama": "ollama",
    "openrouter": "openrouter", "ibm.watsonx.ai": "watsonx", "watsonx": "watsonx",
}  # fmt: skip
"""``gen_ai.provider.name`` / ``gen_ai.system`` values (the semantic conventions' and
OpenLLMetry's spellings, compared lower-cased) → the gateway's provider names."""

_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens")
_OUTPUT = (
    "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
)  # fmt: skip
_TOTAL = ("llm.usage.total_tokens", "gen_ai.usage.total_tokens")
_CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
    "llm.usage.cache_read_input_tokens", "gen_ai.usage.input_tokens.cached",
)  # fmt: skip
_CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
    "llm.usage.cache_creation_input_tokens", "gen_ai.usage.input_tokens.cache_write",
)  # fmt: skip
_REASONING = (
    "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens", "gen_ai.usage.output_tokens.reasoning",
)  # fmt: skip
_COST = ("gen_ai.usage.cost", "llm.usage.cost")
"""A cost the instrumentation reported (USD; not a semantic convention, but what Langfuse
reads and OpenRouter-aware instrumentations set): the record's cost over the price table's."""
_REQUEST_MODEL = ("gen_ai.request.model", "llm.request.model")
_RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model")
_PARAMETERS = (
    ("temperature", ("gen_ai.request.temperature", "llm.temperature")),
    ("top_p", ("gen_ai.request.top_p", "llm.top_p")),
    ("top_k", ("gen_ai.request.top_k", "llm.top_k")),
    ("max_tokens", ("gen_ai.request.max_tokens", "llm.request.max_tokens")),
    ("frequency_penalty", ("gen_ai.request.frequency_penalty", "llm.frequency_penalty")),
    ("presence_penalty", ("gen_ai.request.presence_penalty", "llm.presence_penalty")),
    ("seed", ("gen_ai.request.seed", "gen_ai.openai.request.seed")),
    ("stop", ("gen_ai.request.stop_sequences", "llm.chat.stop_sequences")),
    ("n", ("gen_ai.request.choice.count",)),
    ("reasoning_effort", ("gen_ai.request.reasoning_effort",)),
)
"""Request body field ← the attributes that carry it (first present wins)."""


@dataclass(slots=True)
class Mapped:
    """The records an export becomes; ``dropped``: spans that are not LLM, tool or
    retrieval steps (not recorded)."""

    calls: list[LoggedCall]
    dropped: int


def span_kind(span: OtelSpan) -> str | None:
    """``llm``, ``completion``, ``embedding``, ``tool``, ``vector_db``, or None (not recorded)."""
    attributes = span.attributes
    operation = str(attributes.get("gen_ai.operation.name") or "").lower()
    traceloop = str(attributes.get("traceloop.span.kind") or "").lower()
    if operation == "execute_tool" or traceloop == "tool":
        return "tool"
    if operation in NOT_RECORDED or traceloop in TRACELOOP_CONTAINERS:
        return None
    database = str(attributes.get("db.system.name") or attributes.get("db.system") or "")
    if operation == "retrieval" or database.lower() in VECTOR_DATABASES:
        return "vector_db"
    request_type = str(attributes.get("llm.request.type") or "").lower()
    if operation in EMBEDDING_OPERATIONS or request_type == "embedding":
        return "embedding"
    if operation in ("text_completion", "completion") or request_type == "completion":
        return "completion"
    if operation in LLM_OPERATIONS or request_type in ("chat", "rerank"):
        return "llm"
    if any(name in attributes for name in (*_REQUEST_MODEL, *_RESPONSE_MODEL, *_INPUT, *_OUTPUT)):
        return "llm"
    return None


def map_spans(decoded: Decoded, caller: Caller) -> Mapped:
    """Each span of ``decoded`` as a logged call (or dropped); a span that cannot be mapped is
    rejected alone (counted in ``decoded``)."""
    by_id = {(span.trace_id, span.span_id): span for span in decoded.spans}
    calls: list[LoggedCall] = []
    dropped = 0
    for span in decoded.spans:
        try:
            kind = span_kind(span)
            if kind is None:
                dropped += 1
                continue
            calls.append(_call(span, kind, caller, by_id))
        except (ValueError, TypeError, OverflowError, orjson.JSONEncodeError) as exc:
            decoded.reject(f"span {span.span_id}: {exc}")
        except Exception:  # a bug of ours: the span still fails alone, the trace is logged
            logger.exception("OTLP span %s could not be mapped", span.span_id)
            decoded.reject(f"span {span.span_id}: internal error while reading it")
    return Mapped(calls, dropped)


def _first(attributes: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attributes.get(name)
        if value is not None and value != "":
            return value
    return None


def _int(attributes: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    value = _first(attributes, names)
    if value is None or isinstance(value, bool):
        return None
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        return None


def usage_of(attributes: Mapping[str, Any]) -> dict[str, int] | None:
    """Reported token counts (None: the span reports none, the record estimates them).

    Input counts include cache reads and writes, and output counts include reasoning, as the
    semantic conventions say; an instrumentation reporting cache traffic larger than its
    input count (Anthropic's own convention, input without the cache) gets it added.
    """
    prompt = _int(attributes, _INPUT)
    completion = _int(attributes, _OUTPUT)
    total = _int(attributes, _TOTAL)
    if prompt is None and completion is None and total is None:
        return None
    if prompt is None:
        prompt = max(0, (total or 0) - (completion or 0))
    if completion is None:
        completion = max(0, (total or 0) - prompt)
    cache_read = _int(attributes, _CACHE_READ) or 0
    cache_write = _int(attributes, _CACHE_WRITE) or 0
    if cache_read + cache_write > prompt:
        prompt += cache_read + cache_write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": _int(attributes, _REASONING) or 0,
    }


def cost_of(attributes: Mapping[str, Any]) -> float | None:
    """The span's reported cost in USD (None: none, or not a number >= 0)."""
    return reported_usd(_first(attributes, _COST))


def provider_of(attributes: Mapping[str, Any]) -> str:
    """The gateway's provider name for the span's GenAI system ("" when it names none)."""
    raw = _first(attributes, ("gen_ai.provider.name", "gen_ai.system", "llm.vendor", "llm.system"))
    if raw is None:
        return ""
    name = str(raw).strip().lower()
    return PROVIDERS.get(name, name.replace(" ", "-").replace("_", "-"))


def _string(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = orjson.dumps(value).decode()
    return text[:MAX_PROPERTY_CHARS]


@dataclass(slots=True)
class _Labels:
    """What the span says about itself as Helicone headers would: properties, session,
    user, omissions."""

    properties: dict[str, str]
    options: HeliconeOptions
    """The span's ``Helicone-*`` attributes read by the proxy's own header parser."""
    plain: dict[str, str]
    """Association properties that are not ``Helicone-*``."""


def _labels(span: OtelSpan) -> _Labels:
    """Resource attributes first, the span's own over them: a ``Helicone-*`` attribute (any
    case, plain or as an association property) is read as that header would be on a proxied
    request (:func:`~gateway.context.parse_options`, the one parser of those headers); other
    association properties are custom properties under their own names."""
    helicone: dict[str, str] = {}
    plain: dict[str, str] = {}
    for source in (span.resource, span.attributes):
        for key, value in source.items():
            associated = key.startswith(ASSOCIATION)
            name = key[len(ASSOCIATION) :] if associated else key
            lower = name.lower()
            if lower.startswith(HELICONE_PREFIX):
                helicone[lower] = _string(value)
            elif associated and name:
                plain[name] = _string(value)
    options = parse_options(helicone)
    return _Labels({**plain, **options.properties}, options, plain)


def record_id(trace_id: str, span_id: str) -> str:
    """The request id of a span's record (hex ids): the same for every export of the span."""
    return str(uuid.uuid5(_NAMESPACE, f"{trace_id}:{span_id}"))


def _trace_uuid(trace_id: str) -> str:
    return str(uuid.UUID(hex=trace_id))


def session_path(span: OtelSpan, by_id: Mapping[tuple[str, str], OtelSpan]) -> str:
    """``/root/child/span``: the names of the span's ancestors present in ``by_id`` and its
    own (a ``/`` inside a name becomes ``-``, so that it does not add a level)."""
    names = [span.name]
    seen = {span.span_id}
    parent_id = span.parent_span_id
    while parent_id and len(names) < MAX_PATH_DEPTH:
        parent = by_id.get((span.trace_id, parent_id))
        if parent is None or parent.span_id in seen:
            break
        seen.add(parent.span_id)
        names.append(parent.name)
        parent_id = parent.parent_span_id
    segments = [
        name.replace("/", "-").strip()[:MAX_SEGMENT_CHARS] or "span" for name in reversed(names)
    ]
    return "/" + "/".join(segments)


def _session(span: OtelSpan, labels: _Labels, by_id: Mapping[tuple[str, str], OtelSpan]) -> None:
    attributes = {**span.resource, **span.attributes}
    properties = labels.properties
    if "Helicone-Session-Id" not in properties:
        explicit = _first(attributes, ("session.id", "gen_ai.conversation.id"))
        explicit = explicit if explicit is not None else labels.plain.get("session_id")
        properties["Helicone-Session-Id"] = (
            _string(explicit) if explicit is not None else _trace_uuid(span.trace_id)
        )
    if "Helicone-Session-Path" not in properties:
        properties["Helicone-Session-Path"] = session_path(span, by_id)
    if "Helicone-Session-Name" not in properties:
        name = _first(attributes, ("traceloop.workflow.name", "gen_ai.agent.name"))
        if name is None:
            service = span.resource.get("service.name")
            if isinstance(service, str) and not service.startswith("unknown_service"):
                name = service
        if name is not None:
            properties["Helicone-Session-Name"] = _string(name)


def _user(span: OtelSpan, labels: _Labels) -> str:
    user = labels.options.user_id
    if not user:
        attributes = {**span.resource, **span.attributes}
        found = _first(attributes, ("user.id", "enduser.id"))
        found = found if found is not None else labels.plain.get("user_id")
        found = found if found is not None else _first(attributes, ("llm.user",))
        user = _string(found) if found is not None else ""
    return user


def _status(span: OtelSpan) -> int:
    """200 unless the span's status is ERROR: then the HTTP status the span records
    (``http.response.status_code``, a numeric ``error.type``), else 500."""
    if span.status_code != STATUS_ERROR:
        return 200
    attributes = span.attributes
    for value in (
        attributes.get("http.response.status_code"),
        attributes.get("http.status_code"),
        attributes.get("error.type"),
    ):
        try:
            status = int(str(value))
        except ValueError:
            continue
        if 400 <= status <= 599:
            return status
    return 500


def _error_body(span: OtelSpan) -> dict[str, Any]:
    message = span.status_message
    kind = span.attributes.get("error.type")
    for event in span.events:
        if event.name == "exception":
            message = message or _string(event.attributes.get("exception.message") or "")
            kind = kind or event.attributes.get("exception.type")
    return {"error": {"message": message or "error", "type": _string(kind or "error")}}


def _first_token(span: OtelSpan, start: float) -> float | None:
    chunk = span.attributes.get("gen_ai.response.time_to_first_chunk")
    if isinstance(chunk, int | float) and not isinstance(chunk, bool) and chunk >= 0:
        return start + float(chunk)
    for event in span.events:
        if event.name.endswith("completion.chunk") and event.time_ns:
            return event.time_ns / 1e9
    return None


def _call(
    span: OtelSpan, kind: str, caller: Caller, by_id: Mapping[tuple[str, str], OtelSpan]
) -> LoggedCall:
    labels = _labels(span)
    _session(span, labels, by_id)
    start = span.start_ns / 1e9
    status = _status(span)
    call = LoggedCall(
        organization_id=caller.organization_id,
        api_key_id=caller.api_key_id,
        request_id=record_id(span.trace_id, span.span_id),
        path=caller.path,
        start=start,
        end=span.end_ns / 1e9 if span.end_ns else None,
        status=status,
        user_id=_user(span, labels),
        properties=labels.properties,
        omit_request=labels.options.omit_request,
        omit_response=labels.options.omit_response,
    )
    if kind in ("tool", "vector_db"):
        _event_bodies(span, kind, call)
    else:
        _llm_bodies(span, kind, call, start)
    return call


def _parameters(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field_name, names in _PARAMETERS:
        value = _first(attributes, names)
        if value is not None:
            out[field_name] = value
    return out


def _llm_bodies(span: OtelSpan, kind: str, call: LoggedCall, start: float) -> None:
    attributes = span.attributes
    request_model = _string(_first(attributes, _REQUEST_MODEL) or "")
    response_model = _string(_first(attributes, _RESPONSE_MODEL) or "") or request_model
    call.model = request_model or response_model
    call.provider = provider_of(attributes)
    call.usage = usage_of(attributes)
    call.cost = cost_of(attributes)
    call.wire = "openai"
    stream = bool(_first(attributes, ("gen_ai.request.stream", "llm.is_streaming")))
    messages, choices = chat_content(span) if kind != "embedding" else ([], [])
    request: dict[str, Any] = {"model": request_model or response_model}
    request.update(_parameters(attributes))
    response: dict[str, Any] = {
        "id": _string(attributes.get("gen_ai.response.id") or f"otel-{span.span_id}"),
        "created": int(start),
        "model": response_model,
    }
    if kind == "embedding":
        inputs = [message_text(m) for m in chat_content(span)[0]]
        if inputs:
            request["input"] = inputs[0] if len(inputs) == 1 else inputs
        response.update(object="list", data=[])
    elif kind == "completion":
        prompts = indexed(attributes, "gen_ai.prompt.") or indexed(attributes, "llm.prompts.")
        texts = [_string(p.get("content") or p.get("user") or "") for p in prompts]
        texts = texts or [message_text(m) for m in messages]
        if texts:
            request["prompt"] = texts[0] if len(texts) == 1 else texts
        response["object"] = "text_completion"
        if choices:
            response["choices"] = [
                {"index": c["index"], "text": message_text(c["message"]),
                 "finish_reason": c["finish_reason"]}
                for c in choices
            ]  # fmt: skip
    else:
        if messages:
            request["messages"] = messages
        tools = tool_definitions(attributes)
        if tools:
            request["tools"] = tools
        response["object"] = "chat.completion"
        if choices:
            response["choices"] = choices
    if stream:
        request["stream"] = True
    if call.usage is not None:
        response["usage"] = openai_usage(call.usage)
    call.request_body = orjson.dumps(request)
    if call.status >= 400:
        call.response_body = orjson.dumps(_error_body(span))
    elif stream and kind == "llm":
        call.is_stream = True
        call.first_token = _first_token(span, start)
        call.response_body = _sse(response)
    else:
        call.response_body = orjson.dumps(response)


def _sse(response: dict[str, Any]) -> bytes:
    """A streamed answer as the stream it was: one chunk with each choice's whole message,
    one with the usage, then ``[DONE]`` (read back as a proxied stream is)."""
    base = {k: response[k] for k in ("id", "created", "model")}
    deltas = []
    for choice in response.get("choices", []):
        delta = dict(choice["message"])
        if "tool_calls" in delta:
            delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(delta["tool_calls"])]
        deltas.append(
            {"index": choice["index"], "delta": delta, "finish_reason": choice["finish_reason"]}
        )
    events = [{**base, "object": "chat.completion.chunk", "choices": deltas}]
    if "usage" in response:
        events.append(
            {**base, "object": "chat.completion.chunk", "choices": [], "usage": response["usage"]}
        )
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _event_bodies(span: OtelSpan, kind: str, call: LoggedCall) -> None:
    """A tool or retrieval step as Helicone's custom events log it (no tokens, no price)."""
    attributes = span.attributes
    call.wire = "custom"
    call.usage = {}
    call.cost = cost_of(attributes) or 0.0  # not an LLM call: a known 0 unless reported
    ok = call.status < 400
    outcome: dict[str, Any] = {"status": "success" if ok else "error"}
    if not ok:
        outcome["message"] = _error_body(span)["error"]["message"]
    if kind == "tool":
        name = _string(
            _first(attributes, ("gen_ai.tool.name", "traceloop.entity.name")) or span.name
        )
        call.model = f"tool:{name}"
        request: dict[str, Any] = {"_type": "tool", "toolName": name}
        request["input"] = parse_json(
            _first(attributes, ("gen_ai.tool.call.arguments", "traceloop.entity.input"))
        )
        metadata = {"span": span.name}
        for key, field_name in (("gen_ai.tool.call.id", "toolCallId"),
                                ("gen_ai.tool.description", "description")):  # fmt: skip
            if attributes.get(key) is not None:
                metadata[field_name] = _string(attributes[key])
        request["metadata"] = metadata
        response: dict[str, Any] = {"_type": "tool", "toolName": name, **outcome}
        result = _first(attributes, ("gen_ai.tool.call.result", "traceloop.entity.output"))
        if result is not None:
            response["output"] = parse_json(result)
    else:
        database = _string(
            _first(attributes, ("db.system.name", "db.system", "gen_ai.data_source.id")) or ""
        )
        call.model = f"vector_db:{database}" if database else "vector_db"
        call.provider = ""
        request = {"_type": "vector_db", "operation": _operation(attributes)}
        text = _first(attributes, ("gen_ai.retrieval.query.text", "db.query.text"))
        if text is not None:
            request["text"] = _string(text)
        top_k = _first(attributes, ("gen_ai.request.top_k", "db.vector.query.top_k"))
        if top_k is not None:
            request["topK"] = top_k
        if database:
            request["databaseName"] = database
        response = {"_type": "vector_db", **outcome}
        documents = attributes.get("gen_ai.retrieval.documents")
        if documents is not None:
            response["documents"] = parse_json(documents)
    call.request_body = orjson.dumps(request)
    call.response_body = orjson.dumps(response)


def _operation(attributes: Mapping[str, Any]) -> str:
    raw = str(_first(attributes, ("db.operation.name", "db.operation")) or "search").lower()
    for known in ("search", "insert", "delete", "update"):
        if known in raw:
            return known
    return "search" if raw in ("query", "retrieval", "get") else raw
