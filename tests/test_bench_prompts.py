"""bench/prompts_e2e.py without timing anything: its two requests reach the provider identical
(so their latency difference is the prompt stage alone), and the verdict reads the right
numbers (no speed is asserted here)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bench.prompts import PARTIAL, saved
from bench.prompts_e2e import (
    PairedRun,
    assembled_request,
    prompt_request,
    verdict,
)
from tests import test_prompts_e2e
from tests.test_prompts_e2e import Gateway

gateway = test_prompts_e2e.gateway


def test_the_paired_requests_reach_the_provider_identical(gateway: Gateway) -> None:
    part = gateway.create(PARTIAL, name="bench part")
    main = gateway.create(saved(part["id"]), name="bench main")
    stored = gateway.data(
        "POST", "/v2/prompt-2025/query/production-version", {"promptId": main["id"]}
    )["prompt_body"]
    request = prompt_request(main["id"])
    plain = assembled_request(stored, PARTIAL, request)
    assert not {"prompt_id", "inputs"} & plain.keys()
    sent: list[Any] = []
    for body in (request, plain):
        response = gateway.call("POST", "/v1/chat/completions", body)
        assert response.status_code == 200, response.text
        sent.append(gateway.upstream.requests[-1].body)
    assert sent[0] == sent[1] == orjson.dumps(plain)
    forwarded = orjson.loads(sent[0])
    assert forwarded["messages"][0]["content"] == (
        "You work for Acme Corp. Help Ann (tier gold, age 42)."
    )
    enum = forwarded["tools"][0]["function"]["parameters"]["properties"]["plan"]["enum"]
    assert enum == ["basic", "pro"] and forwarded["temperature"] == 0.4


def _run(label: str, prompt: list[float], plain: list[float], errors: int = 0) -> Any:
    run = PairedRun(label, prompt, plain, [0.0], errors)
    return run.to_json()


@pytest.mark.parametrize(
    ("warm_added", "cold_added", "store", "errors", "passed"),
    [
        (0.1, 3.0, "postgresql", 0, True),
        (0.3, 3.0, "postgresql", 0, False),  # the warm bar
        (0.1, 6.0, "postgresql", 0, False),  # the cold bar, on PostgreSQL
        (0.1, 6.0, "sqlite", 0, True),  # ... not judged on SQLite
        (0.1, 3.0, "postgresql", 2, False),  # failed requests
    ],
)
def test_the_verdict(
    warm_added: float, cold_added: float, store: str, errors: int, passed: bool
) -> None:
    result = {
        "store": store,
        "upstream": "nginx",
        "request_bytes": {},
        "warm": _run("warm", [1.0 + warm_added] * 3, [1.0] * 3, errors),
        "cold": _run("cold", [1.0 + cold_added] * 3, [1.0] * 3),
    }
    lines, verdict_passed = verdict(result)
    assert verdict_passed is passed
    assert any(f"added p50 {warm_added:.3f} ms" in line for line in lines)
