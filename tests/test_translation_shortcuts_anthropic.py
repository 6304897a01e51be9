"""The Anthropic answer shortcut makes exactly what the general path makes.

``messages_to_chat`` builds the completion of the usual Message (a string id and model, every
content block a ``text`` block with a string ``text``) in one literal, usage inline; every
other Message goes through :func:`_walked_completion`. Compared here over every small Message
— content, stop reason, usage (counts of every kind, thinking details), id and model — byte
for byte once serialised, the Message itself left unchanged.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import orjson
import pytest

from providers.anthropic import response

_ABSENT = object()
COUNTS: list[Any] = [_ABSENT, 0, 7, -1, True, None, "3", 2.0]
TEXTS = ("", "Hello", " there.", "é\n\"q\"")


def _blocks() -> list[list[Any]]:
    """Every content list of up to three text blocks, and ones the walk must take (other
    kinds, a text that is not a string, extra keys the walk ignores)."""
    plain = [
        [{"type": "text", "text": text} for text in texts]
        for length in (0, 1, 2, 3)
        for texts in itertools.product(TEXTS, repeat=length)
    ]
    other: list[list[Any]] = [
        [{"type": "text", "text": "a", "citations": [{"type": "x"}]}],
        [{"type": "text", "text": None}],
        [{"type": "text"}],
        [{"text": "no type"}],
        ["hi"],
        [None],
        [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t", "name": "f",
                                         "input": {"x": 1}}],
        [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "a"}],
        [{"type": "redacted_thinking", "data": "zz"}],
        [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
         {"type": "text", "text": "b"}],
    ]  # fmt: skip
    return plain + other


def _usages() -> list[Any]:
    out: list[Any] = [_ABSENT, None, {}, "usage", [1], {"service_tier": "standard"}]
    names = ("input_tokens", "output_tokens", "cache_read_input_tokens",
             "cache_creation_input_tokens")  # fmt: skip
    for values in itertools.product(COUNTS, COUNTS, COUNTS[:4], COUNTS[:4]):
        out.append({n: v for n, v in zip(names, values, strict=True) if v is not _ABSENT})
    for thinking, output in itertools.product([*COUNTS, 50], [0, 7, 20]):
        for details in ({"thinking_tokens": thinking}, {}, None, "x"):
            usage = {"input_tokens": 5, "output_tokens": output, "output_tokens_details": details}
            if thinking is _ABSENT and details:
                usage["output_tokens_details"] = {}
            out.append(usage)
    return out


REASONS: list[Any] = [_ABSENT, None, "end_turn", "max_tokens", "tool_use", "refusal",
                      "pause_turn", "odd", 5]  # fmt: skip
IDS: list[Any] = ["msg_01", _ABSENT, None, 5, ""]
MODELS: list[Any] = ["claude-sonnet-4-5", _ABSENT, None, 3]


def _message(content: Any, reason: Any, usage: Any, message_id: Any = "msg_01",
             model: Any = "claude-sonnet-4-5") -> dict[str, Any]:  # fmt: skip
    message: dict[str, Any] = {"type": "message", "role": "assistant"}
    for name, value in (("id", message_id), ("model", model), ("content", content),
                        ("stop_reason", reason), ("usage", usage)):  # fmt: skip
        if value is not _ABSENT:
            message[name] = value
    return message


def _messages() -> list[dict[str, Any]]:
    usages = _usages()
    out = [
        _message(content, reason, usage)
        for content, reason, usage in itertools.product(_blocks(), REASONS, usages[::7])
    ]
    plain = [{"type": "text", "text": "hi"}]
    out += [_message(plain, "end_turn", usage) for usage in usages]
    out += [
        _message(content, "end_turn", {"input_tokens": 1}, message_id, model)
        for content, message_id, model in itertools.product(
            [plain, [], None, "hi", _ABSENT], IDS, MODELS
        )
    ]
    return out


def test_every_message_translates_as_the_walk_does() -> None:
    messages = _messages()
    assert len(messages) > 5000
    for message in messages:
        before = copy.deepcopy(message)
        got = response.messages_to_chat(message, created=1)
        expected = response._walked_completion(message, 1)
        assert orjson.dumps(got) == orjson.dumps(expected), message
        assert message == before


def test_the_shortcut_is_taken_for_the_usual_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above would pass if every Message were walked: the usual one is not."""

    def walked(message: dict[str, Any], created: int | None) -> dict[str, Any]:
        raise AssertionError("walked")

    monkeypatch.setattr(response, "_walked_completion", walked)
    usage = {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 0}
    usual = _message([{"type": "text", "text": "hi"}], "end_turn", usage)
    got = response.messages_to_chat(usual, created=7)
    assert got["choices"][0]["message"]["content"] == "hi"
    assert got["usage"]["total_tokens"] == 5
    with pytest.raises(AssertionError, match="walked"):
        response.messages_to_chat(_message([{"type": "tool_use", "id": "t"}], None, None))


def test_created_defaults_to_now() -> None:
    got = response.messages_to_chat(_message([{"type": "text", "text": "hi"}], None, None))
    assert isinstance(got["created"], int) and got["created"] > 1_700_000_000
