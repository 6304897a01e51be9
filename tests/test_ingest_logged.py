"""A logged (not proxied) call becomes the same record a proxied one would: the reported
times give latency and time to first token, reported usage replaces the body's, a reported
cost the price table's, and the capture survives the journal's tuple and spill JSON forms."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.ingest.logged import (
    MAX_REPORTED_USD,
    LoggedCall,
    logged_capture,
    nano_usd,
    reported_usd,
    usage_cost,
)
from logging_pipeline.capture import Capture
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import build_record
from logging_pipeline.schema import INSERT_COLUMNS
from providers.registry import Registry

START = 1_780_000_000.25


def _row(capture: Capture, tmp_path: Path) -> dict[str, Any]:
    record = build_record(capture, Registry.load(), TokenEstimator(tmp_path))
    return dict(zip(INSERT_COLUMNS, record.row, strict=True))


def _call(**overrides: Any) -> LoggedCall:
    values: dict[str, Any] = {
        "organization_id": "org-1", "api_key_id": "key-1", "request_id": "r-1",
        "path": "/custom/v1/log", "start": START, "end": START + 1.5, "provider": "openai",
        "model": "gpt-4o-mini",
        "request_body": orjson.dumps({"model": "gpt-4o-mini", "messages": []}),
        "response_body": orjson.dumps({"usage": {"prompt_tokens": 10, "completion_tokens": 5}}),
    }  # fmt: skip
    values.update(overrides)
    return LoggedCall(**values)


def test_times_and_body_usage_come_out_as_reported(tmp_path: Path) -> None:
    row = _row(logged_capture(_call(first_token=START + 0.2, is_stream=False)), tmp_path)
    assert row["request_created_at"] == datetime.fromtimestamp(START, UTC)
    assert row["latency"] == 1500
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 5)
    assert row["cost"] > 0 and row["cost_known"]
    assert row["request_path"] == "/custom/v1/log"


def test_stream_time_to_first_token_and_clamping(tmp_path: Path) -> None:
    stream = logged_capture(_call(first_token=START + 0.25, is_stream=True, response_body=b""))
    assert _row(stream, tmp_path)["time_to_first_token"] == 250
    # Clocks disagree: an end before the start is latency 0, a first token after the end
    # is the end.
    skewed = logged_capture(_call(end=START - 3, first_token=START + 9, is_stream=True))
    row = _row(skewed, tmp_path)
    assert (row["latency"], row["time_to_first_token"]) == (0, 0)
    assert _row(logged_capture(_call(end=None)), tmp_path)["latency"] == 0


def test_reported_usage_replaces_the_body_and_round_trips(tmp_path: Path) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 40, "reasoning_tokens": 7}
    capture = logged_capture(_call(usage={**usage, "cache_read_tokens": -2, "unknown": 3}))
    for copy in (Capture.from_tuple(capture.to_tuple()), Capture.from_json(capture.to_json())):
        row = _row(copy, tmp_path)
        assert (row["prompt_tokens"], row["completion_tokens"]) == (100, 40)
        assert (row["reasoning_tokens"], row["prompt_cache_read_tokens"]) == (7, 0)
        assert not row["tokens_estimated"]


def test_a_time_to_first_token_is_kept_for_a_non_streamed_logged_call(tmp_path: Path) -> None:
    """The client measured it (``timing.timeToFirstToken``): kept whatever the call; a
    proxied non-streamed answer's first byte is not one (its TTFT stays empty)."""
    logged = logged_capture(_call(first_token=START + 0.15))
    assert logged.first_token_reported and not logged.is_stream
    assert _row(logged, tmp_path)["time_to_first_token"] == 150
    assert not logged_capture(_call()).first_token_reported
    proxied = Capture(request_id="r-2", organization_id="org-1", api_key_id="k", path="/v1/x",
                      status=200, response_body=b"{}")  # fmt: skip
    proxied.first_byte_at, proxied.finished_at = proxied.started + 0.2, proxied.started + 0.3
    assert _row(proxied, tmp_path)["time_to_first_token"] is None


def test_plain_text_answers_count_as_the_completion(tmp_path: Path) -> None:
    """No usage and a plain-text answer (not JSON): the estimate counts the text as the
    completion, streamed or not; SSE no reader understood and binary frames count nothing."""
    count = TokenEstimator(tmp_path).count
    text = "Why did the chicken cross the road? To get to the other side!"
    request = orjson.dumps({"model": "gpt-4o-mini", "prompt": "Tell me a joke"})
    for is_stream in (False, True):
        row = _row(logged_capture(_call(request_body=request, response_body=text.encode(),
                                        is_stream=is_stream)), tmp_path)  # fmt: skip
        assert row["tokens_estimated"] and row["completion_tokens"] == count(text) > 0
        assert row["prompt_tokens"] == count("Tell me a joke")
    for unreadable in (b"data: {not json\n\n", b"\x00\x00\x01\x2cframe text"):
        row = _row(logged_capture(_call(request_body=request, response_body=unreadable,
                                        is_stream=True)), tmp_path)  # fmt: skip
        assert row["tokens_estimated"] and row["completion_tokens"] == 0


def test_reported_cost_precedence(tmp_path: Path) -> None:
    """Above 0 a reported cost is the record's (a priced model too); 0 is the price table's
    cost when it has one, else a known 0 (a tool step); none and no price: unknown."""
    priced = _row(logged_capture(_call()), tmp_path)
    assert priced["cost"] > 0 and priced["cost"] != 1_500_000
    assert _row(logged_capture(_call(cost=0.0015)), tmp_path)["cost"] == 1_500_000
    assert _row(logged_capture(_call(cost=0.0)), tmp_path)["cost"] == priced["cost"]
    unpriced: dict[str, Any] = {"model": "tool:search", "provider": "", "usage": {}}
    row = _row(logged_capture(_call(**unpriced, cost=0.0)), tmp_path)
    assert (row["cost"], row["cost_known"]) == (0, True)
    row = _row(logged_capture(_call(**unpriced)), tmp_path)
    assert (row["cost"], row["cost_known"]) == (0, False)
    # The capture keeps it through the journal's and the spill's forms.
    capture = logged_capture(_call(**unpriced, cost=0.25))
    for copy in (Capture.from_tuple(capture.to_tuple()), Capture.from_json(capture.to_json())):
        assert _row(copy, tmp_path)["cost"] == 250_000_000


def test_reported_costs_are_bounded() -> None:
    assert (nano_usd(None), nano_usd(-1.0), nano_usd(float("nan"))) == (None, 0, 0)
    assert nano_usd(float("inf")) == 0
    assert nano_usd(1e30) == round(MAX_REPORTED_USD * 1e9) < 2**64
    assert (reported_usd("0.5"), reported_usd(True), reported_usd("x")) == (0.5, None, None)
    assert usage_cost({"usage": {"cost": 0.01}}) == 0.01 and usage_cost({"usage": 3}) is None
