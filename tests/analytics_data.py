"""The analytics tests' dataset: requests as the gateway captures them.

Each :class:`Req` becomes a real :class:`~logging_pipeline.capture.Capture` (OpenAI answer
bodies with usage, SSE for streams, failover attempts, a cache hit), turned into a row by the
writer's own :func:`~logging_pipeline.record.build_record` (so tokens, latency, TTFT and cost
are computed as in production), or submitted to a running gateway's writer. Scores are
applied as the annotation path applies them: the row re-inserted with the ``scores`` map and
a newer ``updated_at``.

Times are in January 2024 (reference §8 example 10 asks for that month); ``BASE`` is Monday
2024-01-08 00:00 UTC.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logging_pipeline.capture import Capture

ACME = "aaaaaaaa-0000-4000-8000-000000000001"
GLOBEX = "bbbbbbbb-0000-4000-8000-000000000002"
KEYS = {"key-acme": ACME, "key-globex": GLOBEX}
BASE = datetime(2024, 1, 8, tzinfo=UTC)
TRIP = "sess-trip"
RESEARCH = "sess-research"


@dataclass(frozen=True)
class Req:
    name: str
    org: str
    minutes: float
    model: str = "gpt-4o-mini"
    user: str = ""
    status: int = 200
    prompt: int = 10
    completion: int = 5
    latency: int = 100
    ttft: int | None = None
    """Set: a streamed request whose first byte came ``ttft`` ms after the start."""
    session: str | None = None
    path: str | None = None
    session_name: str | None = None
    props: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    attempts: tuple[tuple[str, int, int], ...] = ()
    cache_of: str | None = None
    """A cache hit replaying the answer of request ``cache_of``."""

    @property
    def id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"analytics/{self.name}"))

    @property
    def created(self) -> datetime:
        return BASE + timedelta(minutes=self.minutes)


DATA: tuple[Req, ...] = (
    # Session "Trip plan" in acme: a tree /plan -> /plan/flights (2), /plan/hotels; /summary.
    Req(
        "t1",
        ACME,
        0,
        user="alice",
        session=TRIP,
        path="/plan",
        session_name="Trip plan",
        props={"environment": "prod", "app": "web"},
        scores={"accuracy": 0.9, "helicone-score-feedback": 1},
    ),
    Req(
        "t2",
        ACME,
        1,
        model="gpt-4o",
        user="alice",
        session=TRIP,
        path="/plan/flights",
        session_name="Trip plan",
        latency=300,
        prompt=100,
        completion=50,
        props={"environment": "prod"},
        scores={"accuracy": 0.5},
    ),
    Req(
        "t3",
        ACME,
        2,
        user="bob",
        status=500,
        session=TRIP,
        path="plan/flights/",
        session_name="Trip plan",
        latency=50,
        props={"environment": "staging"},
    ),
    Req(
        "t4",
        ACME,
        3,
        user="alice",
        session=TRIP,
        path="/plan/hotels",
        session_name="Trip plan",
        latency=200,
        ttft=40,
        prompt=20,
        completion=30,
        props={"environment": "prod"},
    ),
    Req("t5", ACME, 4, user="alice", session=TRIP, path="/summary", session_name="Trip plan"),
    # Session "Research": one request at a path, one without (the root).
    Req(
        "r1",
        ACME,
        120,
        user="carol",
        session=RESEARCH,
        path="/search",
        session_name="Research",
        latency=400,
        ttft=80,
        scores={"accuracy": 0.7},
    ),
    Req(
        "r2",
        ACME,
        121,
        user="carol",
        status=429,
        session=RESEARCH,
        session_name="Research",
        latency=20,
    ),
    # Outside sessions: the next days, a failover, a cache hit, a request without a user.
    Req(
        "n1",
        ACME,
        1440 + 60,
        model="gpt-4o",
        user="dave",
        props={"environment": "prod"},
        latency=250,
        scores={"accuracy": 1.0, "latency_ok": 1},
    ),
    Req(
        "n2",
        ACME,
        2 * 1440 + 30,
        props={"environment": "staging", "Helicone-Prompt-Id": "p1"},
        latency=150,
        attempts=(("azure", 503, 30), ("openai", 200, 120)),
    ),
    Req("n3", ACME, 2 * 1440 + 45, user="dave", cache_of="t1", latency=5),
    # 02:05 UTC on Jan 8 is still Jan 7 in New York (UTC-5): the time-zone tests use it.
    Req("z1", ACME, 125, user="erin", latency=90, scores={"accuracy": 0.2}),
    # globex: the same session id and user name, its own score and property: never seen by acme.
    Req(
        "g1",
        GLOBEX,
        0,
        user="alice",
        session=TRIP,
        path="/plan",
        session_name="Trip plan",
        props={"secret_key": "x"},
        scores={"globex-only": 3},
    ),
)
ACME_REQS = [r for r in DATA if r.org == ACME]


def capture_of(req: Req, perf_base: float = 1000.0) -> Capture:
    """The capture the gateway would have made for ``req``."""
    body = orjson.dumps({"model": req.model, "messages": [{"role": "user", "content": req.name}]})
    capture = Capture(
        request_id=req.id,
        organization_id=req.org,
        api_key_id="key",
        path="/v1/chat/completions",
        created_at=req.created.timestamp(),
        started=perf_base,
        provider="openai",
        target_url="https://api.openai.com/v1",
        request_model=req.model,
        request_body=body,
        status=req.status,
        response_body=_response(req),
        is_stream=req.ttft is not None,
        first_byte_at=None if req.ttft is None else perf_base + req.ttft / 1000,
        finished_at=perf_base + req.latency / 1000,
        user_id=req.user,
        properties=_properties(req),
        attempts=list(req.attempts),
        cache_reference_id=None if req.cache_of is None else _by_name(req.cache_of).id,
        cache_saved_latency_ms=0 if req.cache_of is None else _by_name(req.cache_of).latency,
    )
    return capture


def _by_name(name: str) -> Req:
    return next(r for r in DATA if r.name == name)


def _properties(req: Req) -> dict[str, str]:
    props = dict(req.props)
    if req.session is not None:
        props["Helicone-Session-Id"] = req.session
    if req.path is not None:
        props["Helicone-Session-Path"] = req.path
    if req.session_name is not None:
        props["Helicone-Session-Name"] = req.session_name
    return props


def _response(req: Req) -> bytes:
    if req.status >= 400:
        return orjson.dumps({"error": {"message": "upstream failed", "type": "server_error"}})
    usage = {
        "prompt_tokens": req.prompt,
        "completion_tokens": req.completion,
        "total_tokens": req.prompt + req.completion,
    }
    if req.ttft is not None:
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": req.model,
            "choices": [{"index": 0, "delta": {"content": "ok"}}],
        }
        last = {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": req.model,
            "choices": [],
            "usage": usage,
        }
        return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in (chunk, last)) + (
            b"data: [DONE]\n\n"
        )
    return orjson.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    )


def scored_row(row: tuple[Any, ...], columns: tuple[str, ...], req: Req) -> tuple[Any, ...]:
    """``row`` (``columns`` order) with ``updated_at`` moved on, plus ``scores`` at the end."""
    values = list(row)
    index = columns.index("updated_at")
    values[index] = values[index] + timedelta(seconds=1)
    return (*values, dict(req.scores))
