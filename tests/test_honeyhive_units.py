"""HoneyHive events -> logged calls, without a server: the mapping rules the end-to-end test
(``tests/test_honeyhive_e2e.py``) does not reach one by one — times, outputs of every shape,
session paths through odd parent chains, ids, and the per-event checks."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from bench.honeyhive import batch_body, render
from gateway.ingest.access import Caller
from gateway.ingest.honeyhive import (
    Batch,
    BatchError,
    BatchLimits,
    Form,
    parse_batch,
)
from gateway.ingest.logged import LoggedCall, logged_capture

CALLER = Caller("org-1", "key-1", "/v1/events/batch")
NOW = 1_790_000_000.0


def parse(body: Any, form: Form = "v1", **limits: int) -> Batch:
    return parse_batch(body, form, CALLER, BatchLimits(**limits), received=NOW)


def model(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_type": "model", "inputs": {},
                             "config": {"model": "gpt-4o-mini", "provider": "openai"}}  # fmt: skip
    event.update(fields)
    return event


def only_call(body: Any, form: Form = "v1") -> LoggedCall:
    batch = parse(body, form)
    assert batch.errors == []
    [call] = batch.calls
    return call


def response_of(call: LoggedCall) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(call.response_body)
    return document


def test_times_milliseconds_seconds_and_defaults() -> None:
    call = only_call({"events": [model(start_time=1_780_000_000_000, duration=250)]})
    assert (call.start, call.end) == (1_780_000_000.0, 1_780_000_000.25)
    seconds = only_call({"events": [model(start_time=1_780_000_000, end_time=1_780_000_002)]})
    assert (seconds.start, seconds.end) == (1_780_000_000.0, 1_780_000_002.0)
    received = only_call({"events": [model(duration=1000)]})
    assert (received.start, received.end) == (NOW - 1, NOW)
    nothing = only_call({"events": [model()]})
    assert nothing.start == nothing.end == NOW


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"role": "assistant", "content": "a"}, {"role": "assistant", "content": "a"}),
        ({"content": "b"}, {"role": "assistant", "content": "b"}),
        ("plain", {"role": "assistant", "content": "plain"}),
        ({"answer": 42}, {"role": "assistant", "content": '{"answer":42}'}),
        ({"tool_calls": [{"id": "t"}]}, {"role": "assistant", "tool_calls": [{"id": "t"}]}),
    ],
)  # fmt: skip
def test_outputs_become_the_answer_message(outputs: Any, message: dict[str, Any]) -> None:
    call = only_call({"events": [model(outputs=outputs)]})
    assert response_of(call)["choices"] == [{"index": 0, "message": message,
                                             "finish_reason": None}]  # fmt: skip


def test_no_outputs_and_no_usage_leave_the_estimate_to_the_writer() -> None:
    call = only_call({"events": [model(inputs={"prompt": "say hi"})]})
    assert call.usage is None
    assert response_of(call)["choices"] == [] and "usage" not in response_of(call)
    assert orjson.loads(call.request_body)["messages"] == [{"role": "user", "content": "say hi"}]


def test_usage_aliases_and_precedence() -> None:
    call = only_call({"events": [model(
        metadata={"input_tokens": 7, "output_tokens": 2, "cached_tokens": 3},
        metrics={"prompt_tokens": 99, "completion_tokens": 99},
    )]})  # fmt: skip
    assert call.usage == {"prompt_tokens": 7, "completion_tokens": 2, "cache_read_tokens": 3}
    legacy = {"model_events": [{
        "project": "p", "model": "m", "provider": "openai", "messages": [], "response": "r",
        "duration": 1, "usage": {"prompt_tokens": 5, "completion_tokens": 1.0},
        "metadata": {"prompt_tokens": 50, "cost": 0.5},
    }]}  # fmt: skip
    call = only_call(legacy, "legacy")
    assert call.usage == {"prompt_tokens": 5, "completion_tokens": 1}
    assert call.cost == 0.5  # metadata.cost when the event has none
    assert "cost" not in call.properties and "HoneyHive-Cost" not in call.properties
    legacy["model_events"][0]["cost"] = 0.25
    assert only_call(legacy, "legacy").cost == 0.25  # the event's own cost first
    assert call.properties["HoneyHive-Event-Name"] == "model"  # the legacy default name


def test_paths_follow_the_parent_chain_and_survive_cycles() -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    events = [
        {"event_type": "chain", "event_id": a, "parent_id": b, "event_name": "a/x",
         "inputs": {}, "session_id": "s"},
        {"event_type": "chain", "event_id": b, "parent_id": a, "event_name": "b",
         "inputs": {}, "session_id": "s"},
        model(event_id=c, parent_id=a, session_id="s"),
    ]  # fmt: skip
    batch = parse({"events": events})
    assert batch.errors == []
    [call] = batch.calls
    assert call.properties["Helicone-Session-Path"] == "/b/a_x"
    # A parent outside the batch: the event sits at the session's root.
    outside = only_call({"events": [model(parent_id=str(uuid.uuid4()))]})
    assert outside.properties["Helicone-Session-Path"] == "/"


def test_sessions_are_inherited_from_parents_in_the_batch() -> None:
    root = str(uuid.uuid4())
    events = [{"event_type": "session", "event_id": root, "event_name": "Root", "inputs": {}},
              model(parent_id=root), model()]  # fmt: skip
    batch = parse({"events": events})
    first, second = batch.calls
    assert first.properties["Helicone-Session-Id"] == root
    assert first.properties["Helicone-Session-Name"] == "Root"
    assert second.properties["Helicone-Session-Id"] not in ("", root)


def test_ids() -> None:
    upper = str(uuid.uuid4()).upper()
    call = only_call({"events": [model(event_id=upper, session_id="x" * 300)]})
    assert call.request_id == upper.lower()
    session = call.properties["Helicone-Session-Id"]
    assert str(uuid.UUID(session)) == session  # too long for a name: a new session
    single = parse({"events": [model()], "single_session": True,
                    "session_properties": {"session_id": "nope"}})  # fmt: skip
    assert single.session_id is not None and single.session_id != "nope"
    assert str(uuid.UUID(single.session_id)) == single.session_id


def test_metadata_cannot_move_a_record_to_another_session() -> None:
    call = only_call({"events": [model(session_id="mine",
                                       metadata={"Helicone-Session-Id": "theirs"})]})  # fmt: skip
    assert call.properties["Helicone-Session-Id"] == "mine"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"event_type": "span", "inputs": {}}, "event_type must be one of chain, model, "
                                               "session, tool"),
        ({"event_type": "model"}, "due to missing inputs"),
        (model(duration=-1), "duration must be a number >= 0"),
        (model(duration=True), "duration must be a number"),
        (model(start_time="2026-01-01"), "start_time must be a number"),
        (model(end_time=0), "end_time must be Unix milliseconds > 0"),
        (model(metadata=[1]), "metadata must be an object"),
        (model(event_name=3), "event_name must be a string"),
        (model(metadata={"cost": "cheap"}), "metadata.cost must be a number"),
        (model(metadata={"cost": -0.5}), "metadata.cost must be a number >= 0"),
    ],
)  # fmt: skip
def test_event_checks(event: dict[str, Any], error: str) -> None:
    batch = parse({"events": [event, model()]})
    assert len(batch.calls) == 1 and len(batch.event_ids) == 1
    [message] = batch.errors
    assert message.startswith("Could not create event") and error in message
    assert message.endswith("(events[0])")


def test_top_level() -> None:
    with pytest.raises(BatchError, match="events must be an array"):
        parse({"model_events": None})
    with pytest.raises(BatchError) as info:
        parse({"events": [model()] * 3}, max_events=2)
    assert info.value.status == 413
    # Each form takes the other's names as aliases.
    assert len(parse({"model_events": [model()]}).calls) == 1
    assert parse({"events": [model()], "is_single_session": True}).session_id is not None


def test_the_bench_batch_is_all_accepted_and_its_report_reads() -> None:
    """``bench.honeyhive`` measures what it thinks: every event of its body is a record."""
    batch = parse(orjson.loads(batch_body(100)), "legacy")
    assert batch.errors == [] and len(batch.calls) == 100 and batch.session_id is not None
    assert {c.usage["prompt_tokens"] for c in batch.calls if c.usage} == set(range(30, 130))
    lines = render({"events_per_batch": 100, "batch_bytes": 1000, "batches": 5,
                    "warmup_batches": 1, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0,
                    "max_ms": 4.0, "events_per_second_at_p50": 100_000, "accepted": 600,
                    "written": 600, "lost": 0, "settled": True,
                    "written_equals_accepted": True, "gateway_log_problems": []})  # fmt: skip
    assert "p50 1.00 ms" in lines[1] and "written == accepted" in lines[3]


def test_prompt_metadata_links_the_record_to_a_managed_prompt() -> None:
    """``metadata.prompt_id`` / ``prompt_version`` fill the record's prompt columns
    (prompts-and-peer-apis.md E.2), not its properties."""
    call = only_call({"events": [model(metadata={
        "prompt_id": "abc123", "prompt_version": "0190a000-0000-7000-8000-0000000000cc",
        "team": "search"})]})  # fmt: skip
    capture = logged_capture(call)
    assert (capture.prompt_id, capture.prompt_version) == (
        "abc123", "0190a000-0000-7000-8000-0000000000cc")  # fmt: skip
    assert "prompt_id" not in call.properties and call.properties["team"] == "search"
    assert logged_capture(only_call({"events": [model(metadata={"prompt_id": {"x": 1}})]})
                          ).prompt_id == ""  # fmt: skip


def test_usage_details_are_kept_in_the_rebuilt_answer() -> None:
    call = only_call({"events": [model(metadata={
        "prompt_tokens": 30, "completion_tokens": 9, "cache_read_tokens": 12,
        "reasoning_tokens": 4})]})  # fmt: skip
    assert response_of(call)["usage"] == {
        "prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39,
        "prompt_tokens_details": {"cached_tokens": 12},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }  # fmt: skip


def test_session_properties_without_single_session_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"events": [model()], "session_properties": {"session_name": "ignored"}}
    with caplog.at_level("WARNING", logger="gateway.ingest.honeyhive"):
        call = only_call(body)
    assert "Helicone-Session-Name" not in call.properties
    assert "session_properties ignored" in caplog.text


def test_parent_references_match_however_the_uuid_is_spelled() -> None:
    """Event ids are stored in canonical form: a ``parent_id`` spelled in upper case (or
    without hyphens) still names its parent, for the session path and the session."""
    chain, session = uuid.uuid4(), str(uuid.uuid4())
    batch = parse({"events": [
        {"event_type": "chain", "event_id": str(chain), "session_id": session,
         "event_name": "plan", "inputs": {}},
        model(parent_id=chain.hex.upper()),
    ]})  # fmt: skip
    [call] = batch.calls
    assert call.properties["Helicone-Session-Path"] == "/plan"
    assert call.properties["Helicone-Session-Id"] == session
