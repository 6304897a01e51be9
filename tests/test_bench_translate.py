"""``python -m bench.translate``: the in-process per-provider micro-benchmark runs, and what it
times is the real work (each provider's case answers the client the bench's completion)."""

from __future__ import annotations

import json

import orjson
import pytest

from bench import payloads, translate


def test_each_case_answers_the_benchs_completion() -> None:
    """Every provider's case goes through its own translation (or none, for OpenAI) and
    gives the client a chat completion with the canned answer's text and usage."""
    with translate.cases() as cases:
        assert set(cases) == set(translate.PROVIDERS)
        for name, case in cases.items():
            body = orjson.loads(case.client_body())
            assert body["object"] == "chat.completion", name
            message = body["choices"][0]["message"]
            assert message["content"] == "Hello! How can I assist you today?", name
            assert body["choices"][0]["finish_reason"] == "stop", name
            assert body["usage"]["prompt_tokens"] == 19, name
            assert body["usage"]["completion_tokens"] == 10, name
        # The OpenAI path relays the upstream's bytes as they are.
        assert cases["openai"].client_body() == payloads.chat_completion().encode()


def test_main_reports_every_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert translate.main(["--reps", "2", "--batch", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == set(translate.PROVIDERS)
    for figures in result.values():
        assert figures["median_us"] > 0
        assert figures["min_us"] <= figures["median_us"]
    assert result["openai"]["extra_us"] == 0
    assert result["openai"]["extra_min_us"] == 0


def test_profile_names_the_translation(capsys: pytest.CaptureFixture[str]) -> None:
    assert translate.main(["--profile", "gemini", "--reps", "1", "--batch", "8"]) == 0
    assert "chat_to_gemini" in capsys.readouterr().out
