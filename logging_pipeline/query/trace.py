"""A session's trace tree: ``GET /v1/session/{sessionId}/trace`` (reference §4.1 proposal).

Helicone leaves the tree to the client ("built client-side from ``Helicone-Session-Path``");
this returns it ready to draw. Every request of the session is a node's request at its
normalised path (``"plan/step-1/"`` and ``/plan//step-1`` are ``/plan/step-1``; no path is
the root ``/``). Each node carries ``own`` statistics (its requests only) and ``totals``
rolled up over its subtree, so a collapsed node still shows what it cost.

Statistics: ``requests``, ``errors`` (non-2xx/3xx), ``cost`` (USD; a request with an unknown
price counts 0 and makes ``cost_complete`` false), ``prompt_tokens``, ``completion_tokens``,
``total_tokens``, ``latency_ms`` (sum), ``avg_latency_ms``, ``start``/``end`` (first request
start, last response end, ISO UTC) and ``duration_ms`` (``end - start``: wall-clock span).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from logging_pipeline.query.aggregates import NANO_USD, org_condition
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.rows import iso_timestamp
from logging_pipeline.query.timeseries import as_datetime
from logging_pipeline.schema import REQUEST_TABLE

MAX_TRACE_REQUESTS = 10_000
"""A longer session answers its first 10,000 requests (by time) with ``truncated: true``."""
MAX_SESSION_ID = 1024

_COLUMNS = (
    "request_id",
    "request_created_at",
    "response_created_at",
    "latency",
    "time_to_first_token",
    "status",
    "model",
    "provider",
    "user_id",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "cost_known",
    "session_name",
    "session_path",
    "cache_reference_id",
    "tokens_estimated",
)


def build_trace_query(org_id: str, session_id: str) -> CompiledQuery:
    """The session's requests by time, one more than the cap (to detect truncation)."""
    if not session_id or len(session_id) > MAX_SESSION_ID:
        raise FilterError(f"invalid session id: must be 1-{MAX_SESSION_ID} characters")
    binder = ParamBinder()
    org = org_condition(binder, org_id)
    sid = binder.bind(session_id, "String")
    limit = binder.bind_named("lim", MAX_TRACE_REQUESTS + 1, "UInt64")
    sql = (
        f"SELECT {', '.join(_COLUMNS)} FROM {REQUEST_TABLE} FINAL "
        f"WHERE {org} AND session_id = {sid} "
        f"ORDER BY request_created_at ASC, request_id ASC LIMIT {limit}"
    )
    return CompiledQuery(sql, binder.params)


def path_segments(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    errors: int = 0
    cost_nano: int = 0
    cost_complete: bool = True
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    latency_count: int = 0
    start: datetime | None = None
    end: datetime | None = None

    def add_request(self, row: Mapping[str, Any]) -> None:
        self.requests += 1
        status = int(row.get("status") or 0)
        self.errors += int(status < 200 or status >= 400)
        if row.get("cost") is None or row.get("cost_known") is False:
            self.cost_complete = False
        self.cost_nano += int(row.get("cost") or 0)
        self.prompt_tokens += int(row.get("prompt_tokens") or 0)
        self.completion_tokens += int(row.get("completion_tokens") or 0)
        latency = row.get("latency")
        if latency is not None:
            self.latency_ms += int(latency)
            self.latency_count += 1
        start = as_datetime(row["request_created_at"])
        end = _end_of(row, start)
        self._span(start, end)

    def add(self, other: _Stats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.cost_nano += other.cost_nano
        self.cost_complete = self.cost_complete and other.cost_complete
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.latency_ms += other.latency_ms
        self.latency_count += other.latency_count
        if other.start is not None and other.end is not None:
            self._span(other.start, other.end)

    def _span(self, start: datetime, end: datetime) -> None:
        self.start = start if self.start is None else min(self.start, start)
        self.end = end if self.end is None else max(self.end, end)

    def as_dict(self) -> dict[str, Any]:
        duration = None
        if self.start is not None and self.end is not None:
            duration = round((self.end - self.start).total_seconds() * 1000)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "cost": self.cost_nano / NANO_USD,
            "cost_complete": self.cost_complete,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "latency_ms": self.latency_ms,
            "avg_latency_ms": (
                self.latency_ms / self.latency_count if self.latency_count else None
            ),
            "start": iso_timestamp(self.start),
            "end": iso_timestamp(self.end),
            "duration_ms": duration,
        }


@dataclass(slots=True)
class _Node:
    segments: tuple[str, ...]
    own: _Stats = field(default_factory=_Stats)
    request_ids: list[str] = field(default_factory=list)
    children: dict[str, _Node] = field(default_factory=dict)

    def as_dict(self) -> tuple[dict[str, Any], _Stats]:
        totals = _Stats()
        totals.add(self.own)
        kids: list[tuple[dict[str, Any], _Stats]] = [c.as_dict() for c in self.children.values()]
        for _, child_totals in kids:
            totals.add(child_totals)
        # Children in the order they started (then by name): the order of a timeline.
        kids.sort(key=lambda kid: (kid[1].start is None, kid[1].start, kid[0]["name"]))
        node = {
            "path": "/" + "/".join(self.segments),
            "name": self.segments[-1] if self.segments else "",
            "depth": len(self.segments),
            "request_ids": list(self.request_ids),
            "own": self.own.as_dict(),
            "totals": totals.as_dict(),
            "children": [kid[0] for kid in kids],
        }
        return node, totals


def session_trace(session_id: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trace document for the rows of :func:`build_trace_query` (None: no such session)."""
    if not rows:
        return None
    truncated = len(rows) > MAX_TRACE_REQUESTS
    rows = rows[:MAX_TRACE_REQUESTS]
    root = _Node(())
    requests: list[tuple[tuple[str, ...], datetime, str, dict[str, Any]]] = []
    name = ""
    for row in rows:
        segments = tuple(path_segments(str(row.get("session_path") or "")))
        node = root
        for depth in range(len(segments)):
            node = node.children.setdefault(segments[depth], _Node(segments[: depth + 1]))
        node.own.add_request(row)
        node.request_ids.append(str(row["request_id"]))
        name = name or str(row.get("session_name") or "")
        created = as_datetime(row["request_created_at"])
        requests.append((segments, created, str(row["request_id"]), _request(row, segments)))
    tree, totals = root.as_dict()
    requests.sort(key=lambda item: item[:3])
    return {
        "session_id": session_id,
        "session_name": name,
        "created_at": iso_timestamp(rows[0]["request_created_at"]),
        "latest_request_created_at": iso_timestamp(rows[-1]["request_created_at"]),
        "truncated": truncated,
        "totals": totals.as_dict(),
        "requests": [item[3] for item in requests],
        "tree": tree,
    }


def _request(row: Mapping[str, Any], segments: tuple[str, ...]) -> dict[str, Any]:
    status = int(row.get("status") or 0)
    prompt = row.get("prompt_tokens")
    completion = row.get("completion_tokens")
    cost = row.get("cost")
    created = as_datetime(row["request_created_at"])
    reference = row.get("cache_reference_id")
    return {
        "request_id": str(row["request_id"]),
        "path": "/" + "/".join(segments),
        "path_segments": list(segments),
        "created_at": iso_timestamp(created),
        "end": iso_timestamp(_end_of(row, created)),
        "model": row.get("model") or "",
        "provider": row.get("provider") or "",
        "user_id": row.get("user_id") or None,
        "status": status,
        "error": status < 200 or status >= 400,
        "latency_ms": None if row.get("latency") is None else int(row["latency"]),
        "time_to_first_token": (
            None if row.get("time_to_first_token") is None else int(row["time_to_first_token"])
        ),
        "prompt_tokens": None if prompt is None else int(prompt),
        "completion_tokens": None if completion is None else int(completion),
        "total_tokens": (
            None
            if prompt is None and completion is None
            else int(prompt or 0) + int(completion or 0)
        ),
        "tokens_estimated": bool(row.get("tokens_estimated")),
        "cost": (None if cost is None or row.get("cost_known") is False else int(cost) / NANO_USD),
        "cached": reference not in (None, "", "00000000-0000-0000-0000-000000000000"),
    }


def _end_of(row: Mapping[str, Any], start: datetime) -> datetime:
    """When the request ended: its response time, else start + latency, else its start."""
    if row.get("response_created_at"):
        return as_datetime(row["response_created_at"])
    if row.get("latency") is not None:
        return start + timedelta(milliseconds=int(row["latency"]))
    return start
