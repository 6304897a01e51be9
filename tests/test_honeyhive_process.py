"""The documented HoneyHive batch against a real ``gateway serve`` process (as an operator runs
it: its own data dir, a key from ``gateway keys create``, logging on with the embedded engine),
posted with httpx and read back through the query and sessions APIs. The in-process tests
(``tests/test_honeyhive_e2e.py``) cover the rules; this one covers the deployment's wiring:
route order in front of the passthrough catch-alls, the settings, the writer child."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bench.gateway_proc import Gateway
from tests.harness import wait_for

FIXTURE = Path(__file__).parent / "fixtures" / "honeyhive_model_batch.json"
SESSION = "caf77ace-3417-4da4-944d-f4a0688f3c23"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("honeyhive-serve"), "http://127.0.0.1:9",
                      extra_env={"GATEWAY_HONEYHIVE_MAX_BATCH_EVENTS": "3"})  # fmt: skip
    gateway.create_key()
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def _post(gateway: Gateway, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{gateway.port}{path}", json=body, timeout=30,
                      headers={"authorization": f"Bearer {gateway.key}"})  # fmt: skip


def test_documented_batch_through_gateway_serve(served: Gateway) -> None:
    batch = orjson.loads(FIXTURE.read_bytes())
    response = _post(served, "/events/model/batch", batch)
    assert response.status_code == 200, response.text
    [event_id] = response.json()["event_ids"]
    assert response.json()["session_id"] == SESSION

    def landed() -> dict[str, Any] | None:
        rows = _post(served, "/v1/request/query-ids", {"requestIds": [event_id]}).json()["data"]
        return rows[0] if rows else None

    row = wait_for("the HoneyHive record", landed)
    assert (row["model"], row["provider"], row["response_status"]) == ("gpt-4o", "openai", 200)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 10)
    assert row["cost"] > 0 and row["delay_ms"] == 42
    assert row["properties"]["Helicone-Session-Name"] == "Playground Session"
    now = int(time.time() * 1000)
    sessions = _post(served, "/v1/session/query", {
        "search": SESSION, "timezoneDifference": 0, "filter": "all",
        "timeFilter": {"startTimeUnixMs": now - 3_600_000, "endTimeUnixMs": now + 3_600_000},
    }).json()["data"]  # fmt: skip
    assert [(s["session_id"], s["total_requests"]) for s in sessions] == [(SESSION, 1)]

    # The v1 form is served too, and the settings reach the process.
    v1 = _post(served, "/v1/events/batch", {"events": [{"event_type": "chain", "inputs": {}}]})
    assert v1.status_code == 200 and len(v1.json()["event_ids"]) == 1
    too_many = _post(served, "/events/model/batch", {"model_events": [{}] * 4})
    assert too_many.status_code == 413
    assert served.log_problems() == []
