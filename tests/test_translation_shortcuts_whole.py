"""The whole-request and whole-answer shortcuts make exactly what the general path makes.

``chat_to_converse`` and ``chat_to_gemini`` take the usual request (model, messages, and only
fields accepted and not sent) without the unknown-field check and the later steps;
``converse_to_chat`` builds the completion of an answer of plain text blocks in one literal.
Each is compared here with the general path over every small case: the request shortcut
against the same request with one more null field (which sends it down the general path and
changes nothing else), the answer shortcut against :func:`_walked_completion` — errors
included, message and parameter.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from providers.adapter import TranslationError
from providers.bedrock import converse, response
from providers.bedrock.adapter import BedrockAdapter
from providers.gemini import request as gemini_request
from providers.gemini import usage as gemini_usage

MESSAGES: list[Any] = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": ""},
    ],
    [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],  # walked
    [{"role": "system", "content": "only a system message"}],
    [{"role": "tool", "content": "42"}],  # refused (no tool call id)
    [{"role": "user", "content": 5}],  # refused
    [],
    None,
    "hi",
]
FIELDS: dict[str, list[Any]] = {
    "model": ["nova", "gemini-2.5-flash", None, 5, "bad/model"],
    "stream": [True, False, None, 1, "yes"],
    "stream_options": [{"include_usage": True}, None, "x"],
    "prompt_cache_key": ["k", None, 5],
}
_ABSENT = object()


def _requests() -> list[dict[str, Any]]:
    """Every request of :data:`MESSAGES` with every combination of the other fields' values
    (each field also absent)."""
    names = list(FIELDS)
    out = []
    for messages in MESSAGES:
        for values in itertools.product(*([_ABSENT, *FIELDS[name]] for name in names)):
            payload: dict[str, Any] = {"messages": copy.deepcopy(messages)}
            payload.update(
                (name, value) for name, value in zip(names, values, strict=True)
                if value is not _ABSENT
            )  # fmt: skip
            out.append(payload)
    return out


def _outcome(translate: Callable[[dict[str, Any]], Any], payload: dict[str, Any]) -> Any:
    try:
        return ("ok", translate(copy.deepcopy(payload)))
    except TranslationError as exc:
        return ("error", exc.message, exc.param)


def _converse(payload: dict[str, Any]) -> Any:
    return converse.chat_to_converse(payload, claude=False, default_max_tokens=1000)


@pytest.mark.parametrize(
    ("translate", "plain", "general_field"),
    [
        (_converse, converse._PLAIN_FIELDS, "temperature"),
        (gemini_request.chat_to_gemini, gemini_request._PLAIN_FIELDS, "user"),
    ],
    ids=["converse", "gemini"],
)
def test_the_usual_request_translates_as_the_general_path_does(
    translate: Callable[[dict[str, Any]], Any], plain: frozenset[str], general_field: str
) -> None:
    assert general_field not in plain
    checked = errors = shortcut = 0
    for payload in _requests():
        shortcut += plain.issuperset(payload)
        before = copy.deepcopy(payload)
        got = _outcome(translate, payload)
        expected = _outcome(translate, {**payload, general_field: None})
        assert got == expected, payload
        translate_again = _outcome(translate, payload)
        assert translate_again == got
        assert payload == before, "the request is not changed"
        checked += 1
        errors += got[0] == "error"
    assert checked > 5000 and shortcut > 1000 and 0 < errors < checked


def test_the_adapter_sends_the_usual_request_as_before() -> None:
    chat = {
        "model": "us.amazon.nova-lite-v1:0",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "hi"},
        ],
    }
    call = BedrockAdapter().build_request(chat, api_key=None, default_max_tokens=1000)
    assert call.path == "/model/us.amazon.nova-lite-v1%3A0/converse"
    assert orjson.dumps(call.body) == (
        b'{"messages":[{"role":"user","content":[{"text":"hi"}]}],'
        b'"system":[{"text":"You are a helpful assistant."}]}'
    )


# --- answers ------------------------------------------------------------------------------------

COUNTS: list[Any] = [None, 0, 7, -3, True, 2.0, "5"]
USAGES: list[Any] = [
    {"inputTokens": i, "outputTokens": o, "totalTokens": 9}
    for i, o in itertools.product(COUNTS, COUNTS)
] + [
    {"inputTokens": 10, "outputTokens": 4, "cacheReadInputTokens": r, "cacheWriteInputTokens": w}
    for r, w in itertools.product(COUNTS, COUNTS)
] + [None, {}, {"totalTokens": 3}, {"outputTokens": 2}, "usage", [1]]  # fmt: skip
REASONS: list[Any] = [None, "end_turn", "max_tokens", "tool_use", "content_filtered", "odd", 5]


def _contents() -> list[list[dict[str, Any]]]:
    return [
        [{"text": text} for text in texts]
        for length in (0, 1, 2, 3)
        for texts in itertools.product(("", "Hello", " there.", "é"), repeat=length)
    ]


def _answers() -> list[dict[str, Any]]:
    out = []
    for content, reason, usage in itertools.product(_contents(), REASONS, USAGES[::3]):
        answer: dict[str, Any] = {"output": {"message": {"role": "assistant", "content": content}}}
        if reason is not None:
            answer["stopReason"] = reason
        if usage is not None:
            answer["usage"] = usage
        out.append(answer)
    base = {"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}}
    out += [{**base, "usage": usage, "stopReason": "end_turn"} for usage in USAGES]
    return out


def _same_but_id(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got["id"].startswith("chatcmpl-") and len(got["id"]) == len(expected["id"])
    assert orjson.dumps({**got, "id": ""}) == orjson.dumps({**expected, "id": ""})


def test_a_plain_converse_answer_is_the_completion_the_walk_makes() -> None:
    answers = _answers()
    assert len(answers) > 1000
    for answer in answers:
        before = copy.deepcopy(answer)
        got = response.converse_to_chat(answer, model="nova", created=1)
        _same_but_id(got, response._walked_completion(answer, "nova", 1))
        assert answer == before
    now = response.converse_to_chat(answers[0], model="nova")
    assert isinstance(now["created"], int) and now["created"] > 1_700_000_000


NOT_PLAIN_ANSWERS: list[Any] = [
    {"output": {"message": {"content": [{"text": "a", "extra": 1}]}}},
    {"output": {"message": {"content": [{"text": None}]}}},
    {"output": {"message": {"content": ["hi"]}}},
    {"output": {"message": {"content": [{"text": "a"}, {"toolUse": {"toolUseId": "t", "name": "f",
                                                                     "input": {}}}]}}},
    {"output": {"message": {"content": [{"reasoningContent": {"reasoningText": {"text": "r"}}}]}}},
    {"output": {"message": {"content": None}}},
    {"output": {"message": {}}},
    {"output": {"message": "hi"}},
    {"output": None},
    {},
]  # fmt: skip


@pytest.mark.parametrize("answer", NOT_PLAIN_ANSWERS)
def test_any_other_converse_answer_is_walked(answer: dict[str, Any]) -> None:
    answer = {**answer, "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 1}}
    try:
        expected = response._walked_completion(answer, "nova", 1)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            response.converse_to_chat(answer, model="nova", created=1)
    else:
        _same_but_id(response.converse_to_chat(answer, model="nova", created=1), expected)


def _metadata() -> list[Any]:
    """``usageMetadata`` objects: every combination of a few values of each count (absent
    included) and of the audio details, and some that are not usage at all."""
    counts: list[Any] = [_ABSENT, 0, 12, -1, True, "3"]
    details: list[Any] = [
        _ABSENT,
        None,
        [{"modality": "TEXT", "tokenCount": 12}],
        [{"modality": "AUDIO", "tokenCount": 5}, {"modality": "TEXT", "tokenCount": 7}],
        [{"modality": "AUDIO", "tokenCount": 50}],
        "x",
    ]
    names = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
             "cachedContentTokenCount", "toolUsePromptTokenCount")  # fmt: skip
    out: list[Any] = [None, "usage", {}, {"trafficType": "ON_DEMAND"}]
    for values in itertools.product(counts, counts, counts[:3], counts[:3], counts[:2]):
        for prompt_details in details[::2]:
            metadata = {n: v for n, v in zip(names, values, strict=True) if v is not _ABSENT}
            metadata["totalTokenCount"] = 30
            if prompt_details is not _ABSENT:
                metadata["promptTokensDetails"] = prompt_details
            out.append(metadata)
    for prompt_details, completion_details in itertools.product(details, details):
        metadata = {"promptTokenCount": 12, "candidatesTokenCount": 40}
        if prompt_details is not _ABSENT:
            metadata["promptTokensDetails"] = prompt_details
        if completion_details is not _ABSENT:
            metadata["candidatesTokensDetails"] = completion_details
        out.append(metadata)
    return out


def test_a_gemini_answer_s_usage_is_the_one_the_usage_type_makes() -> None:
    metadata = _metadata()
    assert len(metadata) > 1000
    for item in metadata:
        usage = gemini_usage.usage_from_gemini(item)
        expected = None if usage is None else gemini_usage.openai_usage(usage)
        got = gemini_usage.chat_usage(item)
        assert orjson.dumps(got) == orjson.dumps(expected), item
