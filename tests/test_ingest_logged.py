"""A logged (not proxied) call becomes the same record a proxied one would: the reported
times give latency and time to first token, reported usage replaces the body's, and the
capture survives the journal's tuple and spill JSON forms."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.ingest.logged import LoggedCall, logged_capture
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
