"""The translations' shortcuts for the usual request and answer make exactly what their full
walk makes, and leave everything else — every error included — to the walk: the Gemini,
Converse and Anthropic conversation of plain messages (every message ``{"role", "content"}``
with string content), the Anthropic request of nothing but those, and the Gemini choice of a
single candidate of plain text parts."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from providers.adapter import TranslationError
from providers.anthropic import conversation
from providers.anthropic import request as anthropic_request
from providers.bedrock import converse
from providers.gemini import contents, response

ROLES = ("system", "developer", "user", "assistant")
TEXTS = ("", "hi", "Two words.")

Walk = Callable[[Any], Any]
SHORTCUTS: dict[str, tuple[Walk, Walk, Walk]] = {
    "gemini": (
        contents._plain_conversation,
        contents._walk_conversation,
        contents.split_conversation,
    ),
    "converse": (converse._plain_conversation, converse._walk_conversation, converse.conversation),
    "anthropic": (
        conversation.plain_conversation,
        conversation._walk_conversation,
        conversation.split_conversation,
    ),
}


def _conversations() -> list[list[dict[str, Any]]]:
    """Every sequence of up to three plain messages (all roles, empty and non-empty texts)."""
    kinds = [{"role": role, "content": text} for role in ROLES for text in TEXTS]
    return [
        [dict(message) for message in sequence]
        for length in (1, 2, 3)
        for sequence in itertools.product(kinds, repeat=length)
    ]


@pytest.mark.parametrize("wire", SHORTCUTS)
def test_the_shortcut_makes_what_the_walk_makes(wire: str) -> None:
    plain, walk, translate = SHORTCUTS[wire]
    checked = 0
    for messages in _conversations():
        before = copy.deepcopy(messages)
        try:
            expected = walk(messages)
        except TranslationError as exc:  # e.g. Gemini's "no user or assistant message"
            assert plain(messages) is None, messages
            with pytest.raises(TranslationError) as raised:
                translate(messages)
            assert (raised.value.message, raised.value.param) == (exc.message, exc.param)
            continue
        assert plain(messages) == expected, messages
        assert translate(messages) == expected, messages
        assert messages == before, "the request is not changed"
        checked += 1
    assert checked > 1000


NOT_PLAIN: list[Any] = [
    [],
    {"role": "user", "content": "hi"},
    [{"role": "user", "content": "hi", "name": "ann"}],
    [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    [{"role": "user", "content": None}],
    [{"role": "assistant", "content": None, "tool_calls": []}],
    [{"role": "tool", "content": "42"}],
    [{"role": "function", "content": "42"}],
    [{"role": ["user"], "content": "hi"}],
    [{"role": "user", "content": "hi"}, "hi"],
    [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}],
    [{"content": "hi", "text": "user"}],
    [{"role": "user"}],
]


@pytest.mark.parametrize("wire", SHORTCUTS)
@pytest.mark.parametrize("messages", NOT_PLAIN)
def test_anything_else_goes_through_the_walk(wire: str, messages: Any) -> None:
    plain, walk, translate = SHORTCUTS[wire]
    assert plain(messages) is None
    try:
        expected = walk(messages)
    except TranslationError as exc:
        with pytest.raises(TranslationError) as raised:
            translate(messages)
        assert (raised.value.message, raised.value.param) == (exc.message, exc.param)
    else:
        assert translate(messages) == expected


def _candidates() -> list[dict[str, Any]]:
    """Single candidates of plain text parts, with every shape of index and finish reason."""
    part_lists = [
        [{"text": text} for text in texts]
        for length in (0, 1, 2, 3)
        for texts in itertools.product(("", "Hello", " there."), repeat=length)
    ]
    indexes: list[Any] = [None, 0, 2, -1, True, "1"]
    reasons: list[Any] = [None, "STOP", "MAX_TOKENS", "SAFETY", "MALFORMED_FUNCTION_CALL", 5]
    out = []
    for parts, index, reason in itertools.product(part_lists, indexes, reasons):
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if index is not None:
            candidate["index"] = index
        if reason is not None:
            candidate["finishReason"] = reason
        out.append(candidate)
    return out


def test_the_plain_gemini_choice_is_the_one_the_walk_makes() -> None:
    candidates = _candidates()
    assert len(candidates) > 1000
    for candidate in candidates:
        before = copy.deepcopy(candidate)
        assert response._plain_choice([candidate]) == response._choice(candidate, 0, "r1", 0)
        answer = {"candidates": [candidate], "responseId": "r1", "modelVersion": "gemini-x"}
        walked = response._choices(answer, [candidate], "r1")
        assert response.gemini_to_chat(answer, created=1)["choices"] == walked
        assert candidate == before


NOT_PLAIN_CANDIDATES: list[Any] = [
    None,
    [],
    {"content": {"parts": [{"text": "hi"}]}},
    [{"content": {"parts": [{"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}}],
    ["hi"],
    [{"content": None}],
    [{"parts": [{"text": "hi"}]}],
    [{"content": {"parts": None}}],
    [{"content": {"parts": ["hi"]}}],
    [{"content": {"parts": [{"text": None}]}}],
    [{"content": {"parts": [{"text": "hmm", "thought": True}]}}],
    [{"content": {"parts": [{"text": "hi", "thoughtSignature": "c2ln"}]}}],
    [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}],
    [{"content": {"parts": [{"text": "a"}, {"functionCall": {"name": "f", "args": {}}}]}}],
]


@pytest.mark.parametrize("candidates", NOT_PLAIN_CANDIDATES)
def test_any_other_answer_is_read_part_by_part(candidates: Any) -> None:
    assert response._plain_choice(candidates) is None
    answer = {"candidates": candidates, "responseId": "r1"}
    assert response.gemini_to_chat(answer, created=1)["choices"] == response._choices(
        answer, candidates, "r1"
    )


PLAIN_REQUESTS: list[Any] = [
    {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]},
    {"model": "claude-x", "messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "hi"}], "stream": True},
    {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "stream": False,
     "stream_options": {"include_usage": True}},
    {"model": "claude-x", "messages": [{"role": "user", "content": "a"},
                                       {"role": "user", "content": "b"}], "stream": None},
    # Not plain: each goes to the full translation (its answer or its error).
    {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
    {"model": "", "messages": [{"role": "user", "content": "hi"}]},
    {"model": 5, "messages": [{"role": "user", "content": "hi"}]},
    {"messages": [{"role": "user", "content": "hi"}]},
    {"model": "claude-x", "messages": [{"role": "tool", "content": "42"}]},
    {"model": "claude-x", "messages": "hi"},
    {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9},
    {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "user": "ann"},
    {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "logprobs": True},
]  # fmt: skip


@pytest.mark.parametrize("payload", PLAIN_REQUESTS)
def test_the_plain_anthropic_request_is_the_full_translation(
    payload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = copy.deepcopy(payload)
    with monkeypatch.context() as patched:  # the shortcut off: the full translation
        patched.setattr(anthropic_request, "_PLAIN_FIELDS", frozenset())
        try:
            expected: Any = anthropic_request.chat_to_messages(payload, default_max_tokens=1024)
        except TranslationError as exc:
            expected = exc
    if isinstance(expected, TranslationError):
        exc = expected
        with pytest.raises(TranslationError) as raised:
            anthropic_request.chat_to_messages(payload, default_max_tokens=1024)
        assert (raised.value.message, raised.value.param) == (exc.message, exc.param)
        return
    made = anthropic_request.chat_to_messages(payload, default_max_tokens=1024)
    assert made == expected and list(made) == list(expected)  # the same keys, in order
    assert payload == before


def test_the_shortcut_is_taken_for_the_usual_request() -> None:
    payload = PLAIN_REQUESTS[1]
    assert anthropic_request._plain_request(payload, 1024) == {
        "model": "claude-x", "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "hi"}], "stream": True,
    }  # fmt: skip
    for other in PLAIN_REQUESTS[4:8]:
        assert anthropic_request._plain_request(other, 1024) is None
