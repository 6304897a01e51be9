"""The Gemini and Converse translations' shortcut for the usual conversation (every message
``{"role", "content"}`` with string content) makes exactly what their full walk makes, and
leaves every other conversation — and every error — to the walk."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from providers.adapter import TranslationError
from providers.bedrock import converse
from providers.gemini import contents

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
