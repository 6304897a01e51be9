"""The manual logger's body (``HeliconeAsyncLogRequest``) → a :class:`LoggedCall`.

``POST /custom/v1/log`` and its provider aliases (reference §2.10) carry one call the client
made itself: ``providerRequest {url, json, meta}``, ``providerResponse {json | textBody,
status, headers}`` and an optional ``timing {startTime, endTime, timeToFirstToken}``. This
module checks the shape (every problem is a :class:`ManualLogError`, a 400 naming the field)
and decides, with a few dictionary look-ups, what the writer needs to understand the call the
way it understands a proxied one:

* **Helicone options** from ``Helicone-*`` keys in ``providerRequest.meta``, the log request's
  own HTTP headers and ``providerResponse.headers``, in that order of precedence (the SDKs
  copy their constructor headers into the last two), parsed by the data plane's own
  :func:`~gateway.context.parse_options`. Other meta keys are kept with the stored request
  under :data:`META_KEY`.
* **Provider and wire** (the reader of the response): the path's hint (``/oai``,
  ``/anthropic``, ``/googleapis``), else the body's ``provider`` field (the TypeScript SDK
  sends it), else the host of ``providerRequest.url``, else the model's family; the wire
  follows the provider, or the response's shape for ``/custom``.
* **Streams**: a ``textBody`` holding SSE is kept as it is; JSON lines (what both SDKs send:
  one chunk per line) become SSE events, so the writer's stream readers rebuild the answer
  and read its usage exactly as for a proxied stream.
* **Usage**: left to the writer's reader when it can read it; any other documented format
  (another provider's ``usage``, Google's ``usageMetadata``, Bedrock's, the alternative
  ``prompt_token_count``/``generation_token_count``) is normalised here into reported usage.
* **Cost**: the price table's, unless the answer reports one (``usage.cost``, OpenRouter's);
  a custom event (``tool``, ``vector_db``, ``data``) is not an LLM call: no tokens, cost a
  known 0.

Parsing the envelope is the only JSON work done on the request path; everything else (the
answer's parse, stream rebuild, estimates, cost) happens in the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.context import HELICONE_PREFIX, HeliconeOptions, parse_options
from gateway.ingest.logged import LoggedCall, usage_cost
from gateway.jsondepth import depth_message, too_deep
from providers import openai_format
from providers.anthropic.usage import usage_from_message
from providers.bedrock import summary as bedrock_summary
from providers.formats import response_reader
from providers.gemini import summary as gemini_summary
from providers.spec import ProviderTable
from providers.usage import Usage
from providers.vertex import answer_wire

CUSTOM = "custom"
"""The provider of a call to no known provider (``Helicone-Target-Provider``'s default too)."""
META_KEY = "_helicone_meta"
"""Where ``providerRequest.meta`` keys that are not ``Helicone-*`` are kept: added to the
stored request (only when there are any, and never over a key the request has)."""
EVENT_TYPES = ("tool", "vector_db", "data")
"""``providerRequest.json._type`` values of the SDKs' custom events (not LLM calls)."""
MAX_TIME_SECONDS = 10**11
"""A ``seconds`` past this (year 5138) is a millisecond timestamp sent by mistake."""
MAX_STATUS = 999
MIN_STATUS = -999
"""``providerResponse.status`` bounds: the SDKs send -3 for a cancelled stream."""
MAX_URL_CHARS = 2048
MAX_OPTION_CHARS = 64 * 1024
"""The ``Helicone-*`` names and values of one call together (meta, headers, response
headers): what fits a proxied request's header block, so a log call cannot attach more."""

_STREAM_EVENTS = frozenset(
    {
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop", "ping",
    }
)  # fmt: skip
"""Anthropic stream event types: a JSON line with one of these is a stream chunk."""
_FAMILIES = (
    ("claude", "anthropic"),
    ("gemini", "google-ai-studio"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("text-embedding", "openai"),
    ("grok", "xai"),
    ("mistral", "mistral"),
    ("deepseek", "deepseek"),
)
"""Model-name prefixes → the maker that prices them, for ``/custom`` calls naming no provider
(so that a library-only model is priced by its maker, as a proxied call would be)."""


class ManualLogError(ValueError):
    """A body the manual logger refuses: a 400 with this message."""


@dataclass(slots=True)
class ManualLog:
    """One parsed log call: what the writer gets, and the options that are not in it."""

    call: LoggedCall
    event_type: str | None
    """``tool``, ``vector_db`` or ``data`` for a custom event, else None."""


def parse_manual_log(
    raw: bytes,
    *,
    hint: str,
    headers: Mapping[str, str],
    organization_id: str,
    api_key_id: str,
    path: str,
    table: ProviderTable,
    now: float,
) -> ManualLog:
    """Check and understand one log body; raises :class:`ManualLogError` on a bad one.

    ``hint``: the provider the path names (``openai``, ``anthropic``, ``google-ai-studio``)
    or ``""`` for ``/custom``. ``headers``: the log request's own, lower-cased. ``now``: the
    arrival time (Unix seconds), used as start and end when ``timing`` is absent.
    """
    body = _object_body(raw)
    request = _field(body, "providerRequest", dict, "providerRequest", required=True)
    response = _field(body, "providerResponse", dict, "providerResponse", required=True)
    request_json = _field(request, "json", dict, "providerRequest.json", required=True)
    url = _field(request, "url", str, "providerRequest.url") or ""
    meta = _strings(request.get("meta"), "providerRequest.meta")
    response_headers = _strings(response.get("headers"), "providerResponse.headers")
    status = _status(response.get("status"))
    start, end, first_token = _timing(body.get("timing"), now)

    options = _options(meta, headers, response_headers)
    event_type = request_json.get("_type")
    if event_type not in EVENT_TYPES:
        event_type = None

    provider, named_wire = _provider(hint, body.get("provider"), url, request_json, table)
    answer = _answer(response, request_json, first_token is not None)
    if first_token is None and answer.ttft_ms is not None:
        first_token = start + answer.ttft_ms / 1000
    wire = answer.shape or named_wire or "openai"
    usage: dict[str, int] | None = None
    cost: float | None = None
    if event_type is not None:
        # Not an LLM call: no tokens (none estimated), a known 0 cost unless it reports one.
        usage, cost = {}, usage_cost(answer.parsed) or 0.0
    elif answer.parsed is not None:
        usage = _reported_usage(answer.parsed, wire)
        cost = usage_cost(answer.parsed)

    stored_request = request_json
    extra_meta = {k: v for k, v in meta.items() if not k.lower().startswith(HELICONE_PREFIX)}
    if extra_meta and META_KEY not in request_json:
        stored_request = {**request_json, META_KEY: extra_meta}
    call = LoggedCall(
        organization_id=organization_id,
        api_key_id=api_key_id,
        request_id=options.request_id,
        path=path,
        start=start,
        end=end,
        first_token=first_token,
        provider=provider,
        target_url=url[:MAX_URL_CHARS],
        model=_model(request_json, answer.parsed, event_type),
        request_body=orjson.dumps(stored_request),
        response_body=answer.body,
        status=status,
        is_stream=answer.is_stream,
        wire=wire,
        user_id=options.user_id,
        properties=options.properties,
        usage=usage,
        cost=cost,
        omit_request=options.omit_request,
        omit_response=options.omit_response,
        model_override=options.model_override,
    )
    return ManualLog(call, event_type)


# --- the envelope ------------------------------------------------------------------------------


def _object_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise ManualLogError(
            "The request body is empty; send a JSON object with providerRequest and "
            "providerResponse."
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ManualLogError(f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise ManualLogError(f"The request body must be a JSON object, not {_kind(body)}.")
    if too_deep(raw, body):
        raise ManualLogError(depth_message())
    return body


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _field(
    container: dict[str, Any], name: str, kind: type, label: str, *, required: bool = False
) -> Any:
    """``container[name]`` if of ``kind``; None when absent or null (a 400 if ``required``)."""
    value = container.get(name)
    if value is None:
        if required:
            raise ManualLogError(f"Missing required field '{label}'.")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = "an object" if kind is dict else "a string" if kind is str else kind.__name__
        raise ManualLogError(f"'{label}' must be {expected}, not {_kind(value)}.")
    return value


def _strings(value: Any, label: str) -> dict[str, str]:
    """A ``Record<string, string>``: numbers and booleans are taken as their text (clients
    send them), nested values are refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManualLogError(f"'{label}' must be an object of strings, not {_kind(value)}.")
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[key] = item
        elif isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int | float):
            out[key] = str(item)
        elif item is not None:
            raise ManualLogError(f"'{label}.{key}' must be a string, not {_kind(item)}.")
    return out


def _status(value: Any) -> int:
    if value is None:
        return 200
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ManualLogError(
            f"'providerResponse.status' must be an integer HTTP status, not {value!r}."
        )
    status = int(value)
    if not MIN_STATUS <= status <= MAX_STATUS:
        raise ManualLogError(
            f"'providerResponse.status' {status} is out of range ({MIN_STATUS} to {MAX_STATUS})."
        )
    return status


def _timing(value: Any, now: float) -> tuple[float, float, float | None]:
    """(start, end, first token) in Unix seconds; the arrival time for both ends without
    ``timing`` (as documented). ``timeToFirstToken`` is milliseconds after the start."""
    if value is None:
        return now, now, None
    if not isinstance(value, dict):
        raise ManualLogError(f"'timing' must be an object, not {_kind(value)}.")
    start = _moment(value.get("startTime"), "timing.startTime")
    end = _moment(value.get("endTime"), "timing.endTime")
    ttft = value.get("timeToFirstToken")
    if ttft is None:
        return start, end, None
    if isinstance(ttft, bool) or not isinstance(ttft, int | float) or ttft < 0:
        raise ManualLogError(
            f"'timing.timeToFirstToken' must be a number of milliseconds (0 or more), not {ttft!r}."
        )
    return start, end, start + ttft / 1000


def _moment(value: Any, label: str) -> float:
    """``{seconds, milliseconds}`` → Unix seconds."""
    if not isinstance(value, dict):
        raise ManualLogError(
            f"Missing required field '{label}' ({{\"seconds\": <Unix seconds>, "
            "\"milliseconds\": <0-999>}) when 'timing' is given."
        )
    seconds = value.get("seconds")
    millis = value.get("milliseconds", 0)
    for name, number in (("seconds", seconds), ("milliseconds", millis)):
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise ManualLogError(f"'{label}.{name}' must be a number (0 or more), not {number!r}.")
    assert isinstance(seconds, int | float) and isinstance(millis, int | float)
    if seconds >= MAX_TIME_SECONDS:
        raise ManualLogError(
            f"'{label}.seconds' {seconds} is not a Unix time in seconds (milliseconds sent by "
            "mistake?)."
        )
    moment = float(seconds) + float(millis) / 1000
    if moment >= MAX_TIME_SECONDS:
        raise ManualLogError(f"'{label}.milliseconds' {millis} puts the time past year 5000.")
    return moment


def _options(
    meta: dict[str, str], headers: Mapping[str, str], response_headers: dict[str, str]
) -> HeliconeOptions:
    """The ``Helicone-*`` options: meta over the log request's headers over the response's."""
    merged: dict[str, str] = {}
    for source in (response_headers, headers, meta):
        for name, value in source.items():
            lowered = name.lower()
            if lowered.startswith(HELICONE_PREFIX):
                merged[lowered] = value
    if sum(len(name) + len(value) for name, value in merged.items()) > MAX_OPTION_CHARS:
        raise ManualLogError(
            f"The Helicone-* entries of meta and the headers exceed {MAX_OPTION_CHARS} "
            "characters together (what a request's headers may carry)."
        )
    return parse_options(merged)


# --- provider, model and answer ------------------------------------------------------------


def _provider(
    hint: str, named: Any, url: str, request: dict[str, Any], table: ProviderTable
) -> tuple[str, str | None]:
    """(provider, its wire or None to pick the wire from the answer's shape)."""
    name = hint
    if not name and isinstance(named, str) and named.strip():
        name = _table_name(named.strip().lower(), table)
    host_path = ""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        host_path = parts.path
        if not name:
            name = _host_provider((parts.hostname or "").lower(), table)
    if not name:
        model = request.get("model")
        lowered = model.lower() if isinstance(model, str) else ""
        lowered = lowered.rpartition("/")[2]
        name = next((maker for prefix, maker in _FAMILIES if lowered.startswith(prefix)), "")
        return (name or CUSTOM), None  # a guess for pricing: the answer's shape picks the wire
    spec = table.get(name)
    if spec is None:
        return name, None
    wire = answer_wire(host_path) if spec.wire == "vertex" else spec.wire
    return name, wire


def _table_name(named: str, table: ProviderTable) -> str:
    if table.get(named) is not None:
        return named
    if named in ("google", "gemini", "googleapis"):
        return "google-ai-studio"
    routed = table.passthrough_name(named) or table.model_aliases().get(named)
    return routed or named


def _host_provider(host: str, table: ProviderTable) -> str:
    """The provider whose API host ``host`` is (``*.`` and ``{region}`` patterns too)."""
    for spec in table:
        for pattern in spec.hosts:
            head, region, tail = pattern.partition("{region}")
            if (
                host == pattern
                or (pattern.startswith("*.") and host.endswith(pattern[1:]))
                or (region and host.startswith(head) and host.endswith(tail))
            ):
                return spec.name
    return ""


def _model(request: dict[str, Any], answer: Any, event_type: str | None) -> str:
    if event_type == "tool":
        return f"tool:{request.get('toolName') or 'unknown'}"
    if event_type == "vector_db":
        return f"vector_db:{request.get('operation') or 'unknown'}"
    if event_type == "data":
        return f"data:{request.get('name') or 'unknown'}"
    model = request.get("model")
    if isinstance(model, str) and model:
        return model
    if isinstance(answer, dict):
        model = answer.get("model") or answer.get("modelVersion")
        if isinstance(model, str):
            return model
    return ""


@dataclass(slots=True)
class _Answer:
    body: bytes
    parsed: Any
    """The answer as JSON (usage is read from it); None for a stream or plain text."""
    is_stream: bool
    shape: str | None
    """The wire its shape says (``openai``, ``anthropic``, ``gemini``), None when it says
    nothing."""
    ttft_ms: float | None = None
    """A time to first token the answer itself carries (helicone-helpers' chunks recipe)."""


def _answer(response: dict[str, Any], request: dict[str, Any], has_ttft: bool) -> _Answer:
    """``json`` if it has content, else ``textBody`` (the SDKs send ``json: {}`` with a text
    answer), else an empty body."""
    value = response.get("json")
    if value is not None and not isinstance(value, dict | list):
        raise ManualLogError(
            f"'providerResponse.json' must be an object, not {_kind(value)}; send text in "
            "'textBody'."
        )
    text = response.get("textBody")
    if text is not None and not isinstance(text, str):
        raise ManualLogError(f"'providerResponse.textBody' must be a string, not {_kind(text)}.")
    wants_stream = request.get("stream") is True
    if value or text is None:
        if isinstance(value, dict) and isinstance(value.get("chunks"), list):
            # helicone-helpers' documented stream recipe: {"chunks": [chunk dicts], ...}
            chunks = [c for c in value["chunks"] if isinstance(c, dict)]
            if chunks:
                answer = _stream([orjson.dumps(c) for c in chunks], [], chunks[0])
                ttft = value.get("time_to_first_token_ms")
                if isinstance(ttft, int | float) and not isinstance(ttft, bool) and ttft >= 0:
                    answer.ttft_ms = float(ttft)
                return answer
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return _stream([orjson.dumps(v) for v in value], [], value[0])  # Gemini's array
        parsed = value if value is not None else None
        body = orjson.dumps(value) if value is not None else b""
        return _Answer(body, parsed, False, _shape(parsed))
    return _text_answer(text, wants_stream, has_ttft)


def _text_answer(text: str, streamed: bool, has_ttft: bool) -> _Answer:
    """A ``textBody``: SSE (kept as sent), a whole JSON answer, JSON chunks (one per line, or
    an array), or plain text (a stream when the request says so; a time to first token is
    recorded either way, as documented for a string response)."""
    raw = text.encode()
    stripped = raw.lstrip()
    if stripped.startswith((b"data:", b"event:")) or b"\ndata:" in raw:
        return _Answer(raw, None, True, _shape(_first_sse_object(raw)))
    if stripped.startswith((b"{", b"[")):
        whole = _loads(raw)
        if isinstance(whole, dict):
            if _is_chunk(whole):
                return _stream([stripped.rstrip()], [], whole)
            return _Answer(raw, whole, False, _shape(whole))  # a whole answer sent as text
        if isinstance(whole, list) and whole and all(isinstance(v, dict) for v in whole):
            return _stream([orjson.dumps(v) for v in whole], [], whole[0])  # Gemini's array
    if b"{" in raw:
        # JSON lines (both SDKs: one chunk per line), maybe after an error text (the
        # TypeScript log builder's setError puts the stack first).
        events: list[bytes] = []
        other: list[bytes] = []
        first: dict[str, Any] | None = None
        for line in raw.splitlines():
            line = line.strip()
            parsed = _loads(line) if line.startswith(b"{") else None
            if isinstance(parsed, dict):
                events.append(line)
                first = first or parsed
            elif line:
                other.append(line)
        # Chunks, not a text that happens to hold JSON lines: the first is a chunk, or there
        # are several and the request streamed or their shape names a provider's.
        several = len(events) > 1 and (streamed or has_ttft or _shape(first) is not None)
        if first is not None and (_is_chunk(first) or several):
            return _stream(events, other, first)
    return _Answer(raw, None, streamed, None)


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _first_sse_object(raw: bytes) -> Any:
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            parsed = _loads(line[5:].strip())
            if isinstance(parsed, dict):
                return parsed
    return None


def _stream(events: list[bytes], other: list[bytes], first: Any) -> _Answer:
    """JSON chunks → the SSE the provider would have sent (the writer's stream readers read
    only ``data:`` fields); text lines that are not chunks are kept as SSE comments."""
    parts = [b": " + line.replace(b"\r", b" ") + b"\n" for line in other]
    parts.extend(b"data: " + event + b"\n\n" for event in events)
    return _Answer(b"".join(parts), None, True, _shape(first))


def _is_chunk(obj: dict[str, Any]) -> bool:
    kind = obj.get("object")
    if isinstance(kind, str) and kind.endswith(".chunk"):
        return True
    event = obj.get("type")
    return isinstance(event, str) and (event in _STREAM_EVENTS or event.startswith("response."))


def _shape(obj: Any) -> str | None:
    """The wire an answer's own shape names, when it names one."""
    if isinstance(obj, list):
        obj = obj[0] if obj and isinstance(obj[0], dict) else None
    if not isinstance(obj, dict):
        return None
    if "usageMetadata" in obj or "candidates" in obj:
        return "gemini"
    kind = obj.get("type")
    if kind == "message" or kind in _STREAM_EVENTS:
        return "anthropic"
    named = obj.get("object")
    if "choices" in obj or (isinstance(kind, str) and kind.startswith("response.")) or (
        isinstance(named, str) and named.startswith(("chat.completion", "text_completion"))
    ):
        return "openai"  # chat, completions, Responses events: whatever the provider
    usage = obj.get("usage")
    if isinstance(usage, dict) and (
        "cache_creation_input_tokens" in usage or "cache_read_input_tokens" in usage
    ):
        return "anthropic"
    return None


# --- usage -------------------------------------------------------------------------------------

_UsageReader = Callable[[Any], Usage | None]


def _alternative_usage(obj: Any) -> Usage | None:
    """The documented alternative format: top-level ``prompt_token_count`` and
    ``generation_token_count`` (Bedrock's Llama answers)."""
    if not isinstance(obj, dict):
        return None
    prompt, completion = obj.get("prompt_token_count"), obj.get("generation_token_count")
    if type(prompt) is not int and type(completion) is not int:
        return None
    return Usage(
        prompt_tokens=prompt if type(prompt) is int and prompt > 0 else 0,
        completion_tokens=completion if type(completion) is int and completion > 0 else 0,
    )


_FALLBACK_READERS: tuple[_UsageReader, ...] = (
    openai_format.usage_from,
    usage_from_message,
    gemini_summary.usage_of,
    bedrock_summary.usage_from_answer,
    _alternative_usage,
)


def _reported_usage(parsed: Any, wire: str) -> dict[str, int] | None:
    """None when the writer's reader for ``wire`` reads the usage itself; else the usage
    another documented format gives, as reported counts (None: the answer reports none)."""
    if response_reader(wire).usage(parsed) is not None:
        return None
    for read in _FALLBACK_READERS:
        found = read(parsed)
        if found is not None:
            return dict(found._asdict())
    return None
