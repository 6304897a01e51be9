"""Failover classification and the final error (providers/failover.py): every trigger, the
documented priority 403 > 401 > 400 > 500 > 429, and each scenario of the reference's
error-handling page walked over a real plan."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.shared import ErrorObject
from pydantic import TypeAdapter

from providers.anthropic.errors import error_to_openai
from providers.failover import (
    Outcome,
    error_object,
    final_error,
    insufficient_credits,
    is_context_length_error,
    triggers_failover,
)
from providers.plan import Attempt, KeySources, Offer, Planner, ProviderKey, StaticRegistry

OPENAI_CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your "
        "messages resulted in 411525 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
ANTHROPIC_CONTEXT = error_to_openai(
    400,
    json.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 203284 tokens > 200000 maximum",
            },
            "request_id": "req_011",
        }
    ).encode(),
)
BAD_REQUEST = {
    "error": {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }
}


def upstream(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


INVALID_KEY = upstream(
    "Incorrect API key provided: sk-...abcd.", "invalid_request_error", "invalid_api_key"
)
PROVIDER_DOWN = upstream("The server had an error while processing your request.", "server_error")
RATE_LIMITED = upstream("Rate limit reached for gpt-4o-mini.", "requests", "rate_limit_exceeded")


@pytest.mark.parametrize("status", [401, 402, 403, 404, 408, 429, 500, 502, 503, 504, 529])
def test_failover_statuses(status: int) -> None:
    assert triggers_failover(Outcome("m/p/byok", status, upstream("x", "y")))


@pytest.mark.parametrize("status", [400, 405, 409, 413, 415, 422])
def test_client_errors_do_not_fail_over(status: int) -> None:
    assert not triggers_failover(Outcome("m/p/byok", status, BAD_REQUEST))


def test_context_length_400s_fail_over() -> None:
    assert is_context_length_error(400, OPENAI_CONTEXT)
    assert is_context_length_error(400, ANTHROPIC_CONTEXT)
    assert is_context_length_error(400, error_object(ANTHROPIC_CONTEXT))
    # An OpenAI-compatible server that sends OpenAI's message without the code.
    assert is_context_length_error(
        400, {"error": {"message": "This model's maximum context length is 4096 tokens."}}
    )
    assert triggers_failover(Outcome("m/openai/byok", 400, OPENAI_CONTEXT))
    assert triggers_failover(Outcome("m/anthropic/byok", 400, ANTHROPIC_CONTEXT))
    assert not is_context_length_error(400, BAD_REQUEST)
    assert not is_context_length_error(400, None)
    assert not is_context_length_error(413, OPENAI_CONTEXT)


def test_gateway_errors() -> None:
    assert triggers_failover(insufficient_credits("m/openai/credits"))
    budget = Outcome(
        "m/openai/credits", 429, {"message": "Budget exceeded", "type": "budget"}, gateway=True
    )
    assert not triggers_failover(budget)


def outcome(source: str, status: int, body: dict[str, Any] | None = None) -> Outcome:
    return Outcome(source, status, body)


@pytest.mark.parametrize(
    ("statuses", "chosen"),
    [
        ([429, 500, 400, 401, 403], 403),
        ([429, 500, 400, 401], 401),
        ([429, 500, 400], 400),
        ([500, 400, 429], 400),
        ([429, 500], 500),
        ([429, 503, 500], 503),
        ([429, 408], 408),
        ([429, 429], 429),
        ([402, 500], 402),
        ([404, 500], 404),
    ],
)
def test_priority(statuses: list[int], chosen: int) -> None:
    outcomes = [outcome(f"m/p{i}/byok", s, upstream(f"e{i}", "t")) for i, s in enumerate(statuses)]
    status, body = final_error(outcomes)
    assert status == chosen
    assert body["error"]["message"] == f"e{statuses.index(chosen)}"
    assert [d["statusCode"] for d in body["error"]["details"]] == statuses


def test_earliest_attempt_wins_within_a_class() -> None:
    outcomes = [
        outcome("a/openai/byok", 502, upstream("bad gateway", "server_error")),
        outcome("a/azure/byok", 500, PROVIDER_DOWN),
    ]
    assert final_error(outcomes)[1]["error"]["message"] == "bad gateway"


def test_insufficient_credits_beats_provider_rate_limits() -> None:
    outcomes = [
        outcome("m/openai/byok", 429, RATE_LIMITED),
        insufficient_credits("m/openai/credits"),
    ]
    status, body = final_error(outcomes)
    assert status == 429
    assert body["error"]["message"] == "Insufficient credits"
    assert body["error"]["code"] == "insufficient_credits"
    # Only provider rate limits: the first one, as sent.
    status, body = final_error([outcome("m/openai/byok", 429, RATE_LIMITED)])
    assert body["error"]["message"] == "Rate limit reached for gpt-4o-mini."


def test_shape_is_openai_with_details() -> None:
    outcomes = [
        outcome("gpt-4o-mini/openai/byok", 401, INVALID_KEY),
        insufficient_credits("gpt-4o-mini/openai/credits"),
        outcome("gpt-4o-mini/groq/credits", 502, None),
    ]
    status, body = final_error(outcomes)
    assert status == 401
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code", "details"}
    parsed = TypeAdapter(ErrorObject).validate_python(error)
    assert parsed.message == "Incorrect API key provided: sk-...abcd."
    assert parsed.code == "invalid_api_key"
    assert error["details"] == [
        {
            "source": "gpt-4o-mini/openai/byok",
            "type": "invalid_request_error",
            "message": "Incorrect API key provided: sk-...abcd.",
            "statusCode": 401,
        },
        {
            "source": "gpt-4o-mini/openai/credits",
            "type": "insufficient_quota",
            "message": "Insufficient credits",
            "statusCode": 429,
        },
        {
            "source": "gpt-4o-mini/groq/credits",
            "type": "server_error",
            "message": "The provider answered HTTP 502",
            "statusCode": 502,
        },
    ]


def test_non_string_code_and_param_are_dropped() -> None:
    google = {"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID"}}
    status, body = final_error([outcome("g/google/byok", 400, google)])
    assert status == 400
    assert body["error"]["code"] is None
    assert body["error"]["type"] == "invalid_request_error"
    TypeAdapter(ErrorObject).validate_python(body["error"])
    with pytest.raises(ValueError):
        final_error([])


# The error-handling page's scenarios, walked over a real plan: BYOK first, then credits.

REGISTRY = StaticRegistry({"gpt-4o-mini": [Offer("openai", "gpt-4o-mini", 0.75)]})
PLANNER = Planner(REGISTRY, {"openai": None, "azure": None})


def walk(
    attempts: list[Attempt], answer: dict[str, Outcome | None]
) -> tuple[str, int, dict[str, Any] | None]:
    """What the runtime does: try each attempt, fail over while the rules say so. ``answer``
    maps an attempt's source to its failure (None: it succeeds)."""
    outcomes: list[Outcome] = []
    for attempt in attempts:
        failed = answer[attempt.source]
        if failed is None:
            return attempt.source, 200, None
        outcomes.append(failed)
        if not triggers_failover(failed):
            break
    status, body = final_error(outcomes)
    return "", status, body


BYOK = "gpt-4o-mini/openai/byok"
CREDITS = "gpt-4o-mini/openai/credits"


def test_credits_ok() -> None:
    attempts = PLANNER.plan("gpt-4o-mini", KeySources(credits={"openai"}))
    assert walk(attempts, {CREDITS: None}) == (CREDITS, 200, None)


def test_no_credits_valid_byok_succeeds() -> None:
    keys = KeySources(byok={"openai": [ProviderKey("k")]}, credits={"openai"})
    attempts = PLANNER.plan("gpt-4o-mini", keys)
    assert walk(attempts, {BYOK: None, CREDITS: insufficient_credits(CREDITS)})[:2] == (BYOK, 200)
    # Credits first (an earlier chain item): its 429 fails over and is hidden by the success.
    chained = PLANNER.plan("gpt-4o-mini/azure,gpt-4o-mini/openai", KeySources(
        byok={"openai": [ProviderKey("k")]}, credits={"azure"}, credits_for_unlisted=True
    ))
    azure = "gpt-4o-mini/azure/credits"
    assert [a.source for a in chained] == [azure, BYOK]
    assert walk(chained, {azure: insufficient_credits(azure), BYOK: None})[:2] == (BYOK, 200)


@pytest.mark.parametrize(
    ("byok_failure", "status", "message"),
    [
        (INVALID_KEY, 401, "Incorrect API key provided: sk-...abcd."),
        (PROVIDER_DOWN, 500, "The server had an error while processing your request."),
        (upstream("Service unavailable", "server_error"), 503, "Service unavailable"),
    ],
)
def test_no_credits_failing_byok_returns_byoks_error(
    byok_failure: dict[str, Any], status: int, message: str
) -> None:
    keys = KeySources(byok={"openai": [ProviderKey("k")]}, credits={"openai"})
    attempts = PLANNER.plan("gpt-4o-mini", keys)
    answer = {
        BYOK: Outcome(BYOK, status, byok_failure),
        CREDITS: insufficient_credits(CREDITS),
    }
    source, got, body = walk(attempts, answer)
    assert (source, got) == ("", status)
    assert body is not None
    assert body["error"]["message"] == message
    assert [d["source"] for d in body["error"]["details"]] == [BYOK, CREDITS]


def test_no_credits_no_byok_is_insufficient_credits() -> None:
    attempts = PLANNER.plan("gpt-4o-mini", KeySources(credits={"openai"}))
    source, status, body = walk(attempts, {CREDITS: insufficient_credits(CREDITS)})
    assert (source, status) == ("", 429)
    assert body == {
        "error": {
            "message": "Insufficient credits",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_credits",
            "details": [
                {
                    "source": CREDITS,
                    "type": "insufficient_quota",
                    "message": "Insufficient credits",
                    "statusCode": 429,
                }
            ],
        }
    }


def test_a_bad_request_stops_the_walk() -> None:
    keys = KeySources(byok={"openai": [ProviderKey("k")]}, credits={"openai"})
    attempts = PLANNER.plan("gpt-4o-mini", keys)
    source, status, body = walk(attempts, {BYOK: Outcome(BYOK, 400, BAD_REQUEST), CREDITS: None})
    assert (source, status) == ("", 400)
    assert body is not None and body["error"]["param"] == "messages"
    # A context-length 400 goes on to the next attempt.
    assert walk(attempts, {BYOK: Outcome(BYOK, 400, OPENAI_CONTEXT), CREDITS: None})[0] == CREDITS
