"""HoneyHive event batches -> request records (``POST /events/model/batch``, ``/v1/events/batch``).

HoneyHive's model is a tree of *events* per session: ``model`` events (one LLM call each),
``tool`` and ``chain`` events (steps around them) and one ``session`` event at the root. The
gateway's log is one record per LLM call, and a session is the records sharing
``Helicone-Session-Id``. So here:

* every **model** event becomes one :class:`~gateway.ingest.logged.LoggedCall` (then the same
  record, cost and body storage as a proxied request): model and provider from the event,
  tokens from the legacy ``usage`` or from ``metadata``/``metrics`` (where HoneyHive's own SDKs
  put them), the reported ``cost`` (or ``metadata.cost``) as the record's cost when above 0
  (else the price table's), an OpenAI-shaped request and response body rebuilt from
  ``inputs.chat_history`` and ``outputs``, the reported times, status 500 when ``error`` is
  set;
* the **session** (``session_properties`` in single-session mode, or a ``session`` event of a
  v1 batch) is not a record: its id and name go on its model events as
  ``Helicone-Session-Id`` / ``-Name``, and its source, metadata and user fill in what they
  leave out;
* **tool** and **chain** events are not records either: their names are the segments of
  ``Helicone-Session-Path`` for the model events below them (the ``parent_id`` chain).

A malformed event fails alone (:class:`EventError`, reported in the answer's ``errors``);
only a malformed top level is a :class:`BatchError` (the whole request is a 400). Nothing
here does I/O: the route (``gateway/api/honeyhive.py``) authenticates, reads the body and
submits the captures.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from gateway.ingest.access import Caller
from gateway.ingest.logged import LoggedCall, openai_usage

logger = logging.getLogger(__name__)

Form = Literal["legacy", "v1"]
"""``legacy``: ``POST /events/model/batch`` (``model_events`` of CreateModelEvent);
``v1``: ``POST /v1/events/batch`` (``events`` of generic events with ``event_type``)."""

EVENT_TYPES = ("chain", "model", "session", "tool")
MAX_SESSION_ID_CHARS = 256
MAX_PATH_DEPTH = 32
"""Ancestors followed for a session path (a longer, or cyclic, chain is cut there)."""
SECONDS_BELOW = 1e11
"""A ``start_time``/``end_time`` below this is taken as Unix seconds, not milliseconds (1e11 ms
is 1973; 1e11 s is the year 5138): HoneyHive documents milliseconds, some clients send seconds."""

_LEGACY_REQUIRED = ("project", "model", "provider", "messages", "response", "duration", "usage")
_TOKEN_KEYS: Mapping[str, tuple[str, ...]] = {
    "prompt_tokens": ("prompt_tokens", "input_tokens"),
    "completion_tokens": ("completion_tokens", "output_tokens"),
    "cache_read_tokens": ("cache_read_tokens", "cached_tokens", "cache_read_input_tokens"),
    "cache_write_tokens": ("cache_write_tokens", "cache_creation_input_tokens"),
    "reasoning_tokens": ("reasoning_tokens",),
}
"""Usage field -> the names HoneyHive events carry it under (first found wins)."""
_PROMPT_KEYS = ("prompt_id", "prompt_version")
"""``metadata`` keys linking a model event to a managed prompt (the record's prompt columns)."""
_CONSUMED_METADATA = frozenset(
    {"total_tokens", "cost", *_PROMPT_KEYS}.union(*(set(names) for names in _TOKEN_KEYS.values()))
)
"""Metadata keys that become columns (tokens, cost, prompt), not plain properties."""
_CONFIG_PLACED = frozenset(
    {"model", "provider", "hyperparameters", "template", "tools", "tool_choice",
     "response_format", "messages"}
)  # fmt: skip
_USER_ID_KEYS = ("user_id", "user", "id", "email")


class BatchError(Exception):
    """The top level of the body is not a batch: the whole request fails with ``status``
    (400; 413 for more events than the limit) and this text."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class EventError(Exception):
    """One event cannot be stored; the others are (the answer's ``errors`` carries this text)."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Per request: at most ``max_events`` events; per event: at most ``max_event_bytes`` of
    JSON (the request's own byte limit is the route's)."""

    max_events: int = 1000
    max_event_bytes: int = 1024 * 1024


@dataclass(slots=True)
class Event:
    """One event in HoneyHive's generic shape, checked (a legacy model event is remapped
    into it first, as HoneyHive's legacy route does)."""

    index: int
    event_id: str
    event_type: str
    event_name: str
    session_id: str | None
    parent_id: str | None
    source: str | None
    project: str | None
    start_ms: float | None
    end_ms: float | None
    duration_ms: float | None
    error: str | None
    inputs: dict[str, Any]
    outputs: Any
    config: dict[str, Any]
    metadata: dict[str, Any]
    metrics: dict[str, Any]
    feedback: dict[str, Any]
    user_properties: dict[str, Any]
    usage: dict[str, Any] | None = None
    cost: float | None = None


@dataclass(slots=True)
class SessionInfo:
    """What a session event says that its model events inherit."""

    name: str | None = None
    source: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    """A parsed batch: the answer's parts and the calls to log.

    ``event_ids`` and ``errors`` are in the order of the body's events; ``calls`` holds one
    :class:`LoggedCall` per accepted model event.
    """

    event_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    calls: list[LoggedCall] = field(default_factory=list)
    session_id: str | None = None


def parse_batch(body: Any, form: Form, caller: Caller, limits: BatchLimits,
                received: float | None = None) -> Batch:  # fmt: skip
    """``body`` (parsed JSON) as a :class:`Batch`; :class:`BatchError` for a bad top level.

    ``received`` (Unix seconds, default now) is the end time of events that give none.
    """
    received = time.time() if received is None else received
    if not isinstance(body, dict):
        raise BatchError("the body must be a JSON object")
    key, alias = ("model_events", "events") if form == "legacy" else ("events", "model_events")
    items = body.get(key, body.get(alias))
    if not isinstance(items, list):
        raise BatchError(f"{key} must be an array of events")
    if len(items) > limits.max_events:
        raise BatchError(
            f"{len(items)} events in one batch; the limit is {limits.max_events}", 413
        )
    single_name, single_alias = (
        ("is_single_session", "single_session") if form == "legacy"
        else ("single_session", "is_single_session")
    )  # fmt: skip
    single = body.get(single_name, body.get(single_alias))
    if single is not None and not isinstance(single, bool):
        raise BatchError(f"{single_name} must be a boolean")
    properties = body.get("session_properties")
    if properties is not None and not isinstance(properties, dict):
        raise BatchError("session_properties must be an object")

    batch = Batch()
    events: list[Event | None] = []
    for index, item in enumerate(items):
        try:
            events.append(_event(index, item, form, limits))
        except EventError as exc:
            events.append(None)
            batch.errors.append(f"{exc} ({key}[{index}])")
    accepted = [e for e in events if e is not None]
    sessions = _sessions(accepted, single is True, properties or {}, batch)
    by_id = {e.event_id: e for e in accepted}
    for event in accepted:
        batch.event_ids.append(event.event_id)
        if event.event_type == "model":
            session = sessions.get(event.session_id or "", SessionInfo())
            batch.calls.append(_call(event, session, _path(event, by_id), caller, received))
    return batch


# --- one event --------------------------------------------------------------------------


def _event(index: int, item: Any, form: Form, limits: BatchLimits) -> Event:
    if not isinstance(item, dict):
        raise EventError("Could not create event: an event must be a JSON object")
    size = len(orjson.dumps(item))
    if size > limits.max_event_bytes:
        raise EventError(
            f"Could not create event: it is {size} bytes of JSON; the limit is "
            f"{limits.max_event_bytes}"
        )
    return _legacy(index, item) if form == "legacy" else _generic(index, item)


def _legacy(index: int, item: dict[str, Any]) -> Event:
    """A CreateModelEvent, its model fields remapped into ``inputs``/``outputs``/``config``/
    ``metadata`` (prompts-and-peer-apis.md C.4.4); the required ones must be there."""
    for name in _LEGACY_REQUIRED:
        if item.get(name) is None or item.get(name) == "":
            raise EventError(f"Could not create event due to missing {name}")
    messages = _typed(item, "messages", list, "an array of message objects")
    if not all(isinstance(m, dict) for m in messages):
        raise EventError("Could not create event: messages must be an array of message objects")
    usage = _typed(item, "usage", dict, "an object")
    for name, value in usage.items():
        if value is not None and _count(value) is None:
            raise EventError(f"Could not create event: usage.{name} must be a whole number >= 0")
    template_inputs = _optional(item, "template_inputs", dict, "an object") or {}
    hyperparameters = _optional(item, "hyperparameters", dict, "an object") or {}
    event = _generic(index, {**item, "event_type": "model", "inputs": item.get("inputs") or {}})
    event.inputs = {**event.inputs, "chat_history": messages, **template_inputs}
    event.outputs = item["response"]
    config: dict[str, Any] = {**event.config}
    config["model"] = _text(item, "model")
    config["provider"] = _text(item, "provider")
    if hyperparameters:
        config["hyperparameters"] = {**config.get("hyperparameters", {}), **hyperparameters}
    for name, kind, what in (("template", list, "an array"), ("tools", list, "an array"),
                             ("response_format", dict, "an object")):  # fmt: skip
        value = _optional(item, name, kind, what)
        if value is not None:
            config[name] = value
    choice = item.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, str | dict):
            raise EventError("Could not create event: tool_choice must be a string or an object")
        config["tool_choice"] = choice
    event.config = config
    event.usage = usage
    if item.get("cost") is not None:
        event.cost = _cost(item, "cost")
    if event.event_name == "unknown":
        event.event_name = "model"
    return event


def _generic(index: int, item: dict[str, Any]) -> Event:
    """An event of ``POST /v1/events/batch`` (or a legacy one on its way through)."""
    event_type = item.get("event_type")
    if event_type not in EVENT_TYPES:
        raise EventError(
            "Could not create event: event_type must be one of " + ", ".join(EVENT_TYPES)
        )
    if item.get("inputs") is None:
        raise EventError("Could not create event due to missing inputs")
    inputs = _typed(item, "inputs", dict, "an object")
    duration = _number(item, "duration")
    if duration is not None and duration < 0:
        raise EventError("Could not create event: duration must be a number >= 0")
    start, end = _time(item, "start_time"), _time(item, "end_time")
    metadata = _optional(item, "metadata", dict, "an object") or {}
    return Event(
        index=index,
        event_id=_uuid(item.get("event_id")) or str(uuid.uuid4()),
        event_type=event_type,
        event_name=(_text(item, "event_name") or "unknown").strip() or "unknown",
        session_id=_session_id(item.get("session_id")),
        parent_id=_parent_id(_text(item, "parent_id")),
        source=_text(item, "source"),
        project=_text(item, "project"),
        start_ms=start,
        end_ms=end,
        duration_ms=duration,
        error=_text(item, "error"),
        inputs=inputs,
        outputs=item.get("outputs"),
        config=_optional(item, "config", dict, "an object") or {},
        metadata=metadata,
        metrics=_optional(item, "metrics", dict, "an object") or {},
        feedback=_optional(item, "feedback", dict, "an object") or {},
        user_properties=_optional(item, "user_properties", dict, "an object") or {},
        cost=_cost(metadata, "cost", "metadata.cost"),
    )


def _typed(item: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = item.get(name)
    if not isinstance(value, kind):
        raise EventError(f"Could not create event: {name} must be {what}")
    return value


def _optional(item: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    return None if item.get(name) is None else _typed(item, name, kind, what)


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(f"Could not create event: {name} must be a string")
    return value


def _number(item: Mapping[str, Any], name: str, label: str | None = None) -> float | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventError(f"Could not create event: {label or name} must be a number")
    return float(value)


def _cost(item: Mapping[str, Any], name: str, label: str | None = None) -> float | None:
    """A reported cost: USD, a number >= 0 (the record's cost; see :class:`LoggedCall`)."""
    value = _number(item, name, label)
    if value is not None and value < 0:
        raise EventError(f"Could not create event: {label or name} must be a number >= 0")
    return value


def _time(item: Mapping[str, Any], name: str) -> float | None:
    """Unix milliseconds (seconds below :data:`SECONDS_BELOW`, see there)."""
    value = _number(item, name)
    if value is None:
        return None
    if value <= 0:
        raise EventError(f"Could not create event: {name} must be Unix milliseconds > 0")
    return value * 1000 if value < SECONDS_BELOW else value


def _count(value: Any) -> int | None:
    """A token count: a whole number >= 0 (``12.0`` accepted), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return None


def _parent_id(value: str | None) -> str | None:
    """A parent's id spelled as its event's id is kept (a UUID in canonical form), so that an
    upper-case or unhyphenated reference still finds its parent in the batch."""
    return _uuid(value) or value


def _session_id(value: Any) -> str | None:
    """A UUID in its canonical form; any other non-empty string (up to 256 characters) as
    given, so that events can join a proxied session named by a non-UUID
    ``Helicone-Session-Id``; None (a new session) for anything else."""
    canonical = _uuid(value)
    if canonical is not None:
        return canonical
    if isinstance(value, str) and value.strip() and len(value) <= MAX_SESSION_ID_CHARS:
        return value.strip()
    return None


# --- sessions and paths -----------------------------------------------------------------


def _sessions(events: list[Event], single: bool, properties: dict[str, Any],
              batch: Batch) -> dict[str, SessionInfo]:  # fmt: skip
    """Give every event its session id (in place) and return what each session's event says.

    Single-session mode: one session for all, from ``session_properties`` (its ``session_id``
    if a UUID, else a new one), each event without a parent in the batch parented to it.
    Otherwise an event keeps its ``session_id``; one without takes its parent's (in the batch),
    a ``session`` event its own id, and any other a new session of its own.
    """
    sessions: dict[str, SessionInfo] = {}
    if properties and not single:
        logger.warning(
            "HoneyHive batch: session_properties ignored without is_single_session "
            "(each event keeps its own session)"
        )
    if single:
        session_id = _uuid(properties.get("session_id")) or str(uuid.uuid4())
        batch.session_id = session_id
        sessions[session_id] = _session_info(properties, "session_name")
        ids = {e.event_id for e in events}
        for event in events:
            event.session_id = session_id
            if event.parent_id not in ids:
                event.parent_id = session_id
    else:
        by_id = {e.event_id: e for e in events}
        for event in events:
            _resolve_session(event, by_id, 0)
    for event in events:
        if event.event_type == "session" and event.session_id is not None:
            info = _session_info(
                {"session_name": event.event_name if event.event_name != "unknown" else None,
                 "source": event.source, "metadata": event.metadata,
                 "user_properties": event.user_properties},
                "session_name",
            )  # fmt: skip
            known = sessions.get(event.session_id)
            sessions[event.session_id] = info if known is None else _merge(known, info)
    return sessions


def _resolve_session(event: Event, by_id: Mapping[str, Event], depth: int) -> str:
    if event.session_id is None:
        parent = by_id.get(event.parent_id or "")
        if parent is not None and parent is not event and depth < MAX_PATH_DEPTH:
            event.session_id = _resolve_session(parent, by_id, depth + 1)
        elif event.event_type == "session":
            event.session_id = event.event_id
        else:
            event.session_id = str(uuid.uuid4())
    return event.session_id


def _session_info(properties: Mapping[str, Any], name_key: str) -> SessionInfo:
    name = properties.get(name_key)
    source = properties.get("source")
    metadata = properties.get("metadata")
    users = properties.get("user_properties")
    return SessionInfo(
        name=name if isinstance(name, str) and name.strip() else None,
        source=source if isinstance(source, str) and source else None,
        user_id=_user_id(users) if isinstance(users, dict) else None,
        metadata=metadata if isinstance(metadata, dict) else {},
    )


def _merge(first: SessionInfo, second: SessionInfo) -> SessionInfo:
    """``session_properties`` first, a ``session`` event of the batch filling its gaps."""
    return SessionInfo(
        name=first.name or second.name,
        source=first.source or second.source,
        user_id=first.user_id or second.user_id,
        metadata={**second.metadata, **first.metadata},
    )


def _path(event: Event, by_id: Mapping[str, Event]) -> str:
    """``Helicone-Session-Path``: the names of the event's ancestors in the batch below the
    session (``/retrieve/answer``), ``/`` when its parent is the session or not in the batch."""
    names: list[str] = []
    seen = {event.event_id}
    parent = by_id.get(event.parent_id or "")
    while parent is not None and parent.event_type != "session" and len(names) < MAX_PATH_DEPTH:
        if parent.event_id in seen:
            break
        seen.add(parent.event_id)
        names.append(parent.event_name.replace("/", "_").strip() or parent.event_type)
        parent = by_id.get(parent.parent_id or "")
    return "/" + "/".join(reversed(names))


# --- event -> logged call ---------------------------------------------------------------


def _call(event: Event, session: SessionInfo, path: str, caller: Caller,
          received: float) -> LoggedCall:  # fmt: skip
    """The logged call of one model event (its record; see the module docstring)."""
    end_ms = event.end_ms
    if end_ms is None:
        if event.start_ms is not None and event.duration_ms is not None:
            end_ms = event.start_ms + event.duration_ms
        else:
            end_ms = received * 1000
    start_ms = event.start_ms
    if start_ms is None:
        start_ms = end_ms - (event.duration_ms or 0.0)
    model = _config_text(event.config, "model")
    provider = _config_text(event.config, "provider").strip().lower()
    usage = _usage(event)
    user_id = _user_id(event.user_properties) or session.user_id or ""
    return LoggedCall(
        organization_id=caller.organization_id,
        api_key_id=caller.api_key_id,
        request_id=event.event_id,
        path=caller.path,
        start=start_ms / 1000,
        end=end_ms / 1000,
        provider=provider,
        model=model,
        request_body=orjson.dumps(_request_body(event, model)),
        response_body=orjson.dumps(_response_body(event, model, usage, end_ms), default=str),
        status=500 if event.error else 200,
        wire="openai",
        user_id=user_id[:1024],
        properties=_properties(event, session, path),
        usage=usage,
        cost=event.cost,
        prompt_id=_metadata_text(event.metadata, "prompt_id"),
        prompt_version=_metadata_text(event.metadata, "prompt_version"),
    )


def _metadata_text(metadata: Mapping[str, Any], name: str) -> str:
    """A metadata value as a column's text (a number as its digits; anything else: none)."""
    value = metadata.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value)[:MAX_SESSION_ID_CHARS]


def _config_text(config: Mapping[str, Any], name: str) -> str:
    value = config.get(name)
    return value if isinstance(value, str) else ""


def _usage(event: Event) -> dict[str, int] | None:
    """Token counts from the legacy ``usage``, else ``metadata``, else ``metrics`` (None: the
    event reports none, and the writer estimates them from the bodies as for a proxy)."""
    for source in (event.usage, event.metadata, event.metrics):
        if not source:
            continue
        counts: dict[str, int] = {}
        for name, keys in _TOKEN_KEYS.items():
            for key in keys:
                count = _count(source.get(key))
                if count is not None:
                    counts[name] = count
                    break
        if "prompt_tokens" in counts or "completion_tokens" in counts:
            return counts
    return None


def _messages(inputs: Mapping[str, Any]) -> list[Any]:
    for key in ("chat_history", "messages"):
        value = inputs.get(key)
        if isinstance(value, list):
            return value
    prompt = inputs.get("prompt")
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else []


def _request_body(event: Event, model: str) -> dict[str, Any]:
    """An OpenAI chat request: model, messages (``chat_history``), the hyperparameters and
    tools; the template and the other inputs (its variables) kept beside them."""
    config = event.config
    body: dict[str, Any] = {"model": model, "messages": _messages(event.inputs)}
    hyperparameters = config.get("hyperparameters")
    extras = {k: v for k, v in config.items() if k not in _CONFIG_PLACED}
    for source in (hyperparameters if isinstance(hyperparameters, dict) else {}, extras):
        body.update((k, v) for k, v in source.items() if k not in ("model", "messages"))
    for name in ("tools", "tool_choice", "response_format", "template"):
        if config.get(name) is not None:
            body[name] = config[name]
    others = {k: v for k, v in event.inputs.items() if k not in ("chat_history", "messages")}
    if others:
        body["inputs"] = others
    return body


def _response_body(event: Event, model: str, usage: dict[str, int] | None,
                   end_ms: float) -> dict[str, Any]:  # fmt: skip
    """An OpenAI chat completion around ``outputs`` (already one, with ``choices``: as is);
    ``error`` set: an ``error`` object beside it."""
    outputs = event.outputs
    body: dict[str, Any]
    if isinstance(outputs, dict) and isinstance(outputs.get("choices"), list):
        body = dict(outputs)
    else:
        choices: list[dict[str, Any]] = []
        message = _message(outputs)
        if message is not None:
            choices.append({"index": 0, "message": message, "finish_reason": None})
        body = {"id": event.event_id, "object": "chat.completion",
                "created": int(end_ms / 1000), "model": model, "choices": choices}  # fmt: skip
    body.setdefault("model", model)
    if usage is not None:
        body["usage"] = openai_usage(usage)
    if event.error:
        body["error"] = {"message": event.error, "type": "honeyhive_event_error"}
    return body


def _message(outputs: Any) -> dict[str, Any] | None:
    if outputs is None:
        return None
    if isinstance(outputs, dict) and ({"role", "content", "tool_calls"} & outputs.keys()):
        return {"role": "assistant", **outputs}
    if isinstance(outputs, str):
        return {"role": "assistant", "content": outputs}
    return {"role": "assistant", "content": orjson.dumps(outputs, default=str).decode()}


def _user_id(properties: Mapping[str, Any]) -> str | None:
    for key in _USER_ID_KEYS:
        value = properties.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _property_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def _properties(event: Event, session: SessionInfo, path: str) -> dict[str, str]:
    """The record's properties: the session's then the event's metadata (minus the token
    counts and cost, which are columns), ``HoneyHive-*`` facts, and the session last (a
    metadata key cannot move a record to another session)."""
    properties: dict[str, str] = {}
    for metadata in (session.metadata, event.metadata):
        for key, value in metadata.items():
            if key not in _CONSUMED_METADATA and value is not None:
                properties[str(key)] = _property_text(value)
    for prefix, values in (("HoneyHive-Metric-", event.metrics),
                           ("HoneyHive-Feedback-", event.feedback)):  # fmt: skip
        for key, value in values.items():
            if value is not None:
                properties[prefix + str(key)] = _property_text(value)
    for key, value in event.user_properties.items():
        if key not in _USER_ID_KEYS and value is not None:
            properties["HoneyHive-User-" + str(key)] = _property_text(value)
    facts = {
        "HoneyHive-Project": event.project,
        "HoneyHive-Source": event.source or session.source,
        "HoneyHive-Event-Name": event.event_name,
        "HoneyHive-Parent-Id": event.parent_id if event.parent_id != event.session_id else None,
        "HoneyHive-Error": event.error,
    }
    properties.update((k, v) for k, v in facts.items() if v)
    properties["Helicone-Session-Id"] = event.session_id or ""
    properties["Helicone-Session-Path"] = path
    if session.name:
        properties["Helicone-Session-Name"] = session.name
    return properties
