"""End to end: HoneyHive event batches posted over HTTP to a real gateway (logging on, chdb).

The documented ``POST /events/model/batch`` example (``tests/fixtures/honeyhive_model_batch.json``,
byte for byte the body of HoneyHive's reference page) is posted with httpx as a HoneyHive
client posts it, then read back through the request query API and the sessions API: model,
tokens, cost from the price table, latency, status, properties, session and bodies. Also:
a partial failure (HoneyHive's 500 shape), per-event sessions, the v1 ``/v1/events/batch``
form with a session/chain/model tree, and the limits. Every wait is a bounded poll.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.api import honeyhive as honeyhive_api
from gateway.ingest.access import MISSING_SCOPE, too_large
from gateway.store import ControlStore
from providers.registry import Registry
from providers.usage import Usage
from tests.harness import GatewayServer, create_key, make_settings, wait_for

FIXTURE = Path(__file__).parent / "fixtures" / "honeyhive_model_batch.json"
DOC_SESSION = "caf77ace-3417-4da4-944d-f4a0688f3c23"
MAX_EVENTS = 20
MAX_EVENT_BYTES = 8192
MAX_BATCH_BYTES = 64 * 1024


def documented_batch() -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(FIXTURE.read_bytes())
    return body


def model_event(**fields: Any) -> dict[str, Any]:
    """A legacy model event with every required field (overridden by ``fields``)."""
    event: dict[str, Any] = {
        "project": "Batch Project", "model": "gpt-4o-mini", "provider": "openai",
        "messages": [{"role": "user", "content": "hello"}],
        "response": {"role": "assistant", "content": "hi there"},
        "duration": 250, "usage": {"prompt_tokens": 12, "completion_tokens": 3,
                                   "total_tokens": 15},
    }  # fmt: skip
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


@dataclass
class Gateway:
    server: GatewayServer
    keys: dict[str, str]

    def post(self, path: str, body: Any, key: str | None = "acme", **kwargs: Any
             ) -> httpx.Response:  # fmt: skip
        headers = {} if key is None else {"authorization": f"Bearer {self.keys[key]}"}
        if isinstance(body, bytes):
            return httpx.post(self.server.url + path, content=body, timeout=30,
                              headers=headers | {"content-type": "application/json"})  # fmt: skip
        return httpx.post(self.server.url + path, json=body, headers=headers, timeout=30)

    def get(self, path: str, key: str = "acme") -> httpx.Response:
        return httpx.get(self.server.url + path, timeout=30,
                         headers={"authorization": f"Bearer {self.keys[key]}"})  # fmt: skip

    def rows(self, ids: list[str], key: str = "acme") -> dict[str, dict[str, Any]]:
        response = self.post("/v1/request/query-ids", {"requestIds": ids}, key)
        assert response.status_code == 200, response.text
        return {row["request_id"]: row for row in response.json()["data"]}

    def landed(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The records of ``ids`` once all of them are queryable."""

        def complete() -> dict[str, dict[str, Any]] | None:
            rows = self.rows(ids)
            return rows if len(rows) == len(ids) else None

        return wait_for(f"records {ids}", complete)

    def with_body(self, request_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/request/{request_id}?includeBody=true")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def sessions(self, search: str) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        body = {"search": search, "timezoneDifference": 0, "filter": "all",
                "timeFilter": {"startTimeUnixMs": now - 86_400_000,
                               "endTimeUnixMs": now + 86_400_000}}  # fmt: skip
        response = self.post("/v1/session/query", body)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def trace(self, session_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/session/{session_id}/trace")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


def _scoped_key(settings: Any, org: str, scopes: frozenset[str]) -> str:
    async def run() -> str:
        store = ControlStore.from_settings(settings)
        try:
            await store.migrate()
            key, _ = await store.create_key(org, "scoped", scopes)
            return key
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = make_settings(
        tmp_path_factory.mktemp("honeyhive"), logging_enabled=True, log_flush_ms=20,
        honeyhive_max_batch_events=MAX_EVENTS, honeyhive_max_event_bytes=MAX_EVENT_BYTES,
        honeyhive_max_batch_bytes=MAX_BATCH_BYTES,
    )  # fmt: skip
    keys = {org: create_key(settings, org=org) for org in ("acme", "globex")}
    keys["reader"] = _scoped_key(settings, "acme", frozenset({"trace:read"}))
    keys["writer"] = _scoped_key(settings, "acme", frozenset({"trace:write", "trace:read"}))
    with GatewayServer(settings) as server:
        yield Gateway(server, keys)


# --- the documented batch ----------------------------------------------------------------


def test_documented_batch_lands_as_a_request_in_a_session(gateway: Gateway) -> None:
    body = documented_batch()
    before = time.time()
    response = gateway.post("/events/model/batch", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"event_ids", "success", "session_id"}
    assert answer["success"] is True and answer["session_id"] == DOC_SESSION
    [event_id] = answer["event_ids"]
    assert str(uuid.UUID(event_id)) == event_id

    row = gateway.landed([event_id])[event_id]
    assert (row["model"], row["provider"]) == ("gpt-4o", "openai")
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (10, 10, 20)
    assert row["tokens_estimated"] is False
    # The event's own cost (0.00008) over the price table's, as Helicone prefers a reported
    # cost to its own calculation (observability-api.md section 5).
    priced = Registry.load().cost("openai", "gpt-4o", Usage(10, 10)).nano_usd / 1e9
    expected = 0.00008
    assert row["cost"] == pytest.approx(expected) and priced != pytest.approx(expected)
    assert row["delay_ms"] == 42  # duration; the end is the receipt time
    assert row["response_status"] == 200
    assert row["request_path"] == "/events/model/batch"
    assert row["request_user_id"] == "google-oauth2|111840237613341303366"
    created = row["request_created_at"]
    assert created.endswith("Z")
    started = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    assert before - 2 <= started <= time.time() + 1
    properties = row["properties"]
    assert properties["Helicone-Session-Id"] == DOC_SESSION
    assert properties["Helicone-Session-Name"] == "Playground Session"
    assert properties["Helicone-Session-Path"] == "/"
    assert properties["HoneyHive-Project"] == "New Project"
    assert properties["HoneyHive-Source"] == "playground"
    assert properties["HoneyHive-Event-Name"] == "Model Completion"
    assert "HoneyHive-Cost" not in properties  # a column, not a property

    full = gateway.with_body(event_id)
    request, response_body = full["request_body"], full["response_body"]
    event = body["model_events"][0]
    assert request["model"] == "gpt-4o"
    assert request["messages"] == event["messages"]
    assert request["temperature"] == 0 and request["max_tokens"] == 1000
    assert request["tools"] == event["tools"] and request["tool_choice"] == "none"
    assert request["response_format"] == {"type": "text"}
    assert request["template"] == event["template"]
    assert request["inputs"] == {"name": "world"}
    assert response_body["object"] == "chat.completion"
    assert response_body["choices"][0]["message"] == {"role": "assistant",
                                                      "content": "Hello, world!"}  # fmt: skip
    assert response_body["usage"] == {"prompt_tokens": 10, "completion_tokens": 10,
                                      "total_tokens": 20}  # fmt: skip

    [session] = gateway.sessions(DOC_SESSION)
    assert session["session_name"] == "Playground Session"
    assert session["total_requests"] == 1
    assert (session["prompt_tokens"], session["completion_tokens"]) == (10, 10)
    assert session["total_cost"] == pytest.approx(expected)
    assert session["user_ids"] == ["google-oauth2|111840237613341303366"]
    trace = gateway.trace(DOC_SESSION)
    assert trace["session_name"] == "Playground Session"
    assert [(r["request_id"], r["path"]) for r in trace["requests"]] == [(event_id, "/")]

    # Another organisation sees none of it.
    assert gateway.rows([event_id], key="globex") == {}


def test_single_session_without_an_id_gets_one(gateway: Gateway) -> None:
    body = {"model_events": [model_event(), model_event(model="gpt-4o")],
            "is_single_session": True,
            "session_properties": {"session_name": "Nightly eval", "metadata": {"run": "7"},
                                   "user_properties": {"user_id": "batch-bot"}}}  # fmt: skip
    response = gateway.post("/events/model/batch", body)
    assert response.status_code == 200, response.text
    session_id = response.json()["session_id"]
    ids = response.json()["event_ids"]
    rows = gateway.landed(ids)
    assert {rows[i]["properties"]["Helicone-Session-Id"] for i in ids} == {session_id}
    assert [rows[i]["model"] for i in ids] == ["gpt-4o-mini", "gpt-4o"]
    assert all(rows[i]["properties"]["run"] == "7" for i in ids)  # the session's metadata
    assert all(rows[i]["request_user_id"] == "batch-bot" for i in ids)
    [session] = gateway.sessions(session_id)
    assert (session["session_name"], session["total_requests"]) == ("Nightly eval", 2)
    assert session["prompt_tokens"] == 24


# --- partial failure and per-event fields -------------------------------------------------


def test_a_bad_event_fails_alone_with_the_partial_shape(gateway: Gateway) -> None:
    supplied = str(uuid.uuid4())
    start_ms = 1_780_000_000_000
    events = [
        model_event(event_id=supplied, start_time=start_ms, end_time=start_ms + 1500,
                    metadata={"environment": "prod", "attempt": 2}),
        model_event(model=None),
        model_event(provider=None),
        "not an event",
        model_event(usage={"prompt_tokens": "ten"}),
        model_event(error="upstream timed out", response={"role": "assistant", "content": ""}),
        model_event(event_id="not-a-uuid", user_properties={"user": "u-9", "plan": "pro"}),
    ]
    response = gateway.post("/events/model/batch", {"model_events": events})
    assert response.status_code == 500, response.text
    answer = response.json()
    assert answer["success"] is True and "session_id" not in answer
    assert answer["errors"] == [
        "Could not create event due to missing model (model_events[1])",
        "Could not create event due to missing provider (model_events[2])",
        "Could not create event: an event must be a JSON object (model_events[3])",
        "Could not create event: usage.prompt_tokens must be a whole number >= 0 "
        "(model_events[4])",
    ]
    ids = answer["event_ids"]
    assert len(ids) == 3 and ids[0] == supplied and ids[2] != "not-a-uuid"
    rows = gateway.landed(ids)
    timed = rows[supplied]
    assert timed["delay_ms"] == 1500  # start_time/end_time win over duration
    assert timed["request_created_at"].startswith("2026-05-28T")
    assert timed["properties"]["environment"] == "prod"
    assert timed["properties"]["attempt"] == "2"
    failed = rows[ids[1]]
    assert failed["response_status"] == 500
    assert failed["properties"]["HoneyHive-Error"] == "upstream timed out"
    assert failed["prompt_tokens"] == 12  # reported usage is kept for a failed call
    assert gateway.with_body(ids[1])["response_body"]["error"]["message"] == "upstream timed out"
    user = rows[ids[2]]
    assert user["request_user_id"] == "u-9"
    assert user["properties"]["HoneyHive-User-plan"] == "pro"
    # Per-event sessions: each event without a session_id is a session of its own.
    sessions = {rows[i]["properties"]["Helicone-Session-Id"] for i in ids}
    assert len(sessions) == 3

    everything_bad = gateway.post("/events/model/batch", {"model_events": [{"model": "x"}]})
    assert everything_bad.status_code == 500
    assert everything_bad.json() == {
        "event_ids": [], "success": False,
        "errors": ["Could not create event due to missing project (model_events[0])"],
    }  # fmt: skip


def test_events_keep_their_own_sessions_and_join_proxied_ones(gateway: Gateway) -> None:
    shared = "checkout-flow-42"  # a non-UUID Helicone-Session-Id, as a proxy client may use
    events = [model_event(session_id=shared), model_event(session_id=shared), model_event()]
    response = gateway.post("/events/model/batch", {"model_events": events,
                                                   "session_properties": {"session_name": "x"}})
    assert response.status_code == 200, response.text
    assert "session_id" not in response.json()
    ids = response.json()["event_ids"]
    rows = gateway.landed(ids)
    assert [rows[i]["properties"]["Helicone-Session-Id"] for i in ids[:2]] == [shared, shared]
    assert "Helicone-Session-Name" not in rows[ids[0]]["properties"]  # ignored: not single
    [session] = gateway.sessions(shared)
    assert session["total_requests"] == 2


# --- the v1 form --------------------------------------------------------------------------


def test_v1_batch_with_a_session_chain_and_model_tree(gateway: Gateway) -> None:
    session, chain, tool = (str(uuid.uuid4()) for _ in range(3))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    start = int(time.time() * 1000) - 5000
    events = [
        {"event_type": "session", "event_id": session, "session_id": session,
         "event_name": "Support chat", "source": "sdk-python", "inputs": {},
         "user_properties": {"user": "alice@example.com"}, "metadata": {"tier": "gold"}},
        {"event_type": "chain", "event_id": chain, "session_id": session, "parent_id": session,
         "event_name": "retrieve", "inputs": {"query": "refund policy"}},
        {"event_type": "tool", "event_id": tool, "session_id": session, "parent_id": chain,
         "event_name": "vector search", "inputs": {"k": 3}},
        {"event_type": "model", "event_id": first, "session_id": session, "parent_id": tool,
         "event_name": "rerank", "inputs": {"chat_history": [{"role": "user", "content": "q"}]},
         "outputs": {"role": "assistant", "content": "ranked"},
         "config": {"model": "gpt-4o-mini", "provider": "OpenAI", "version": "v3",
                    "hyperparameters": {"temperature": 0.2}},
         "metadata": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48,
                      "cost": 0.001, "region": "eu"},
         "metrics": {"relevance": 0.9}, "feedback": {"rating": 5},
         "start_time": start, "end_time": start + 800},
        {"event_type": "model", "event_id": second, "session_id": session,
         "parent_id": session, "event_name": "answer",
         "inputs": {"chat_history": [{"role": "user", "content": "refund?"}], "lang": "en"},
         "outputs": {"choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Yes."}}]},
         "config": {"model": "gpt-4o", "provider": "openai"},
         "metrics": {"prompt_tokens": 100, "completion_tokens": 20},
         "start_time": start + 1000, "duration": 1200},
        {"event_type": "model", "inputs": "not an object"},
    ]  # fmt: skip
    response = gateway.post("/v1/events/batch", {"events": events})
    assert response.status_code == 500, response.text
    answer = response.json()
    assert answer["event_ids"] == [session, chain, tool, first, second]
    assert answer["errors"] == ["Could not create event: inputs must be an object (events[5])"]
    rows = gateway.landed([first, second])
    one, two = rows[first], rows[second]
    assert (one["model"], one["provider"]) == ("gpt-4o-mini", "openai")
    assert (one["prompt_tokens"], one["completion_tokens"]) == (40, 8)
    assert one["delay_ms"] == 800 and two["delay_ms"] == 1200
    assert (two["prompt_tokens"], two["completion_tokens"]) == (100, 20)  # from metrics
    assert one["cost"] == pytest.approx(0.001)  # metadata.cost, reported
    priced = Registry.load().cost("openai", "gpt-4o", Usage(100, 20)).nano_usd / 1e9
    assert two["cost"] == pytest.approx(priced) and priced > 0  # none reported: the table's
    assert one["request_path"] == "/v1/events/batch"
    assert one["properties"]["Helicone-Session-Path"] == "/retrieve/vector search"
    assert two["properties"]["Helicone-Session-Path"] == "/"
    for row in (one, two):
        assert row["properties"]["Helicone-Session-Name"] == "Support chat"
        assert row["properties"]["tier"] == "gold"  # the session event's metadata
        assert row["request_user_id"] == "alice@example.com"
    assert one["properties"]["region"] == "eu"
    assert one["properties"]["HoneyHive-Metric-relevance"] == "0.9"
    assert one["properties"]["HoneyHive-Feedback-rating"] == "5"
    assert one["properties"]["HoneyHive-Parent-Id"] == tool
    assert "prompt_tokens" not in one["properties"]
    body = gateway.with_body(first)
    assert body["request_body"]["temperature"] == 0.2
    assert body["request_body"]["version"] == "v3"
    answer_body = gateway.with_body(second)
    assert answer_body["request_body"]["inputs"] == {"lang": "en"}
    assert answer_body["response_body"]["choices"][0]["message"]["content"] == "Yes."

    trace = gateway.trace(session)
    assert trace["session_name"] == "Support chat"
    assert sorted(r["path"] for r in trace["requests"]) == ["/", "/retrieve/vector search"]
    [listed] = gateway.sessions(session)
    assert listed["total_requests"] == 2  # the model events; session/chain/tool are not records


def test_v1_single_session(gateway: Gateway) -> None:
    events = [{"event_type": "model", "inputs": {"chat_history": []},
               "config": {"model": "gpt-4o-mini", "provider": "openai"},
               "metadata": {"prompt_tokens": 1, "completion_tokens": 1}}] * 2  # fmt: skip
    body = {"events": events, "single_session": True,
            "session_properties": {"session_name": "v1 single"}}  # fmt: skip
    response = gateway.post("/v1/events/batch", body)
    assert response.status_code == 200, response.text
    session_id = response.json()["session_id"]
    rows = gateway.landed(response.json()["event_ids"])
    assert {r["properties"]["Helicone-Session-Id"] for r in rows.values()} == {session_id}
    assert gateway.trace(session_id)["session_name"] == "v1 single"


# --- limits, auth, bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "the body must be a JSON object"),
        (b"{}", "model_events must be an array of events"),
        (b'{"model_events": {"a": 1}}', "model_events must be an array of events"),
        (b'{"model_events": [], "is_single_session": "yes"}',
         "is_single_session must be a boolean"),
        (b'{"model_events": [], "session_properties": []}',
         "session_properties must be an object"),
        (b'{"model_events": [', "request body is not valid JSON"),
        (b"", "request body is empty"),
    ],
)  # fmt: skip
def test_bad_top_level_is_a_400(gateway: Gateway, body: bytes, message: str) -> None:
    response = gateway.post("/events/model/batch", body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"].startswith(message)


def test_limits(gateway: Gateway) -> None:
    too_many = {"model_events": [model_event()] * (MAX_EVENTS + 1)}
    response = gateway.post("/events/model/batch", too_many)
    assert response.status_code == 413
    assert response.json() == {"success": False,
                               "error": f"{MAX_EVENTS + 1} events in one batch; the limit is "
                                        f"{MAX_EVENTS}"}  # fmt: skip
    big = model_event(messages=[{"role": "user", "content": "x" * MAX_EVENT_BYTES}])
    response = gateway.post("/events/model/batch", {"model_events": [model_event(), big]})
    assert response.status_code == 500
    assert len(response.json()["event_ids"]) == 1
    [error] = response.json()["errors"]
    assert error.startswith("Could not create event: it is ") and error.endswith(
        f"bytes of JSON; the limit is {MAX_EVENT_BYTES} (model_events[1])"
    )
    huge = b'{"model_events": [], "pad": "' + b"x" * MAX_BATCH_BYTES + b'"}'
    response = gateway.post("/events/model/batch", huge)
    assert response.status_code == 413
    assert response.json() == {"success": False, "error": too_large(
        MAX_BATCH_BYTES, "GATEWAY_HONEYHIVE_MAX_BATCH_BYTES")}  # fmt: skip


def test_auth_and_scope(gateway: Gateway) -> None:
    body = {"model_events": [model_event()]}
    missing = gateway.post("/events/model/batch", body, key=None)
    assert missing.status_code == 401 and missing.json()["success"] is False
    forbidden = gateway.post("/v1/events/batch", {"events": []}, key="reader")
    assert forbidden.status_code == 403
    assert forbidden.json() == {"success": False, "error": MISSING_SCOPE}
    assert "trace:write" in MISSING_SCOPE  # the same words as the other ingestion routes
    allowed = gateway.post("/events/model/batch", body, key="writer")
    assert allowed.status_code == 200, allowed.text


def test_large_batches_are_mapped_off_the_event_loop(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the threshold, the same batch is mapped in a worker thread: the same answer and
    records (the gateway serves in this process, so the threshold can be lowered here)."""
    monkeypatch.setattr(honeyhive_api, "THREAD_FROM_EVENTS", 2)
    events = [model_event(), model_event(model=None), model_event(), model_event()]
    response = gateway.post("/events/model/batch", {"model_events": events})
    assert response.status_code == 500, response.text
    assert response.json()["errors"] == [
        "Could not create event due to missing model (model_events[1])"
    ]
    rows = gateway.landed(response.json()["event_ids"])
    assert [r["prompt_tokens"] for r in rows.values()] == [12, 12, 12]


def test_every_accepted_record_is_written(gateway: Gateway) -> None:
    """Run last: the writer wrote exactly what the routes journaled, and lost nothing."""
    body = {"model_events": [copy.deepcopy(model_event()) for _ in range(10)]}
    assert gateway.post("/events/model/batch", body).status_code == 200
    writer = gateway.server.runtime.writer
    assert writer is not None

    def settled() -> bool:
        counters = writer.counters
        return counters.written == counters.enqueued

    wait_for("the writer to catch up", settled)
    assert writer.counters.lost == writer.counters.failed == 0
